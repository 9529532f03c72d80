-- Licensing in private networks: the license signing key, offline fixed-user licenses, licenses
-- moved to on-premise servers (the vendor's side) and the entitlements an on-premise server
-- imported (its side). Twin of migrations/postgres/0011_private_networks.sql.

-- The long-lived Ed25519 key that signs entitlements and offline license files. A superseded key
-- stays published while anything it signed is still valid (`signed_until`).
CREATE TABLE license_keys (
    kid             TEXT PRIMARY KEY,
    sealed_private  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    superseded_at   BIGINT,
    signed_until    BIGINT
);

-- The operator's switches.
ALTER TABLE licenses ADD COLUMN offline_allowed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE licenses ADD COLUMN onprem_allowed BIGINT NOT NULL DEFAULT 0;

-- Vendor: an offline license file issued for one computer. Its seat is the lease `lease_id`
-- (live until the file's expiry or its return), so seat counts and reports see it.
CREATE TABLE offline_licenses (
    jti               TEXT PRIMARY KEY,
    license_id        TEXT NOT NULL REFERENCES licenses(id),
    user_id           TEXT NOT NULL REFERENCES users(id),
    lease_id          TEXT NOT NULL REFERENCES leases(id),
    fingerprint_hash  TEXT NOT NULL,      -- keyed hash of the computer's fingerprint
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    returned_at       BIGINT
);
CREATE INDEX offline_licenses_license ON offline_licenses(license_id);
CREATE INDEX offline_licenses_lease ON offline_licenses(lease_id);

-- Vendor: a license moved to an on-premise server (bound to that server's key).
CREATE TABLE onprem_exports (
    entitlement_jti  TEXT PRIMARY KEY,
    license_id       TEXT NOT NULL REFERENCES licenses(id),
    server_id        TEXT NOT NULL,
    server_host      TEXT NOT NULL,
    server_key       TEXT NOT NULL,       -- the server's public JWK (verifies its usage and return files)
    server_thumb     TEXT NOT NULL,       -- RFC 7638 thumbprint of that key
    seats            BIGINT NOT NULL,
    issued_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    returned_at      BIGINT,
    return_jti       TEXT UNIQUE
);
CREATE INDEX onprem_exports_license ON onprem_exports(license_id);

-- Vendor: usage an on-premise server reported, per license and UTC day.
CREATE TABLE onprem_usage (
    license_id      TEXT NOT NULL REFERENCES licenses(id),
    day             TEXT NOT NULL,
    peak_seats      BIGINT NOT NULL,
    denials         BIGINT NOT NULL,
    distinct_users  BIGINT NOT NULL,
    imported_at     BIGINT NOT NULL,
    PRIMARY KEY (license_id, day)
);

-- On-premise server: its own key pair (one row), made on first use, private half sealed.
CREATE TABLE onprem_server_key (
    id              TEXT PRIMARY KEY,     -- the server id
    sealed_private  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    thumbprint      TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- On-premise server: entitlements imported. The seat limit is read from `token` verified with the
-- vendor's key every time (never from `licenses.seats`); rows are never deleted, so a file
-- cannot be imported twice.
CREATE TABLE onprem_entitlements (
    jti          TEXT PRIMARY KEY,
    license_id   TEXT NOT NULL REFERENCES licenses(id),
    token        TEXT NOT NULL,
    imported_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    removed_at   BIGINT
);
CREATE INDEX onprem_entitlements_license ON onprem_entitlements(license_id);

-- On-premise server with LATCHKEY_ONPREM_ACCESS=everyone: the account that holds every seat of an
-- entity taken without a token (the machine name tells them apart).
CREATE TABLE onprem_everyone (
    entity_id  TEXT PRIMARY KEY REFERENCES entities(id),
    user_id    TEXT NOT NULL REFERENCES users(id)
);
