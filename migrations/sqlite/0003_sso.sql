-- SSO and browser sign-in: per-entity SAML configuration, claimed email domains, pending
-- AuthnRequests bound to the browser that started them, the replay cache of assertion ids, browser
-- sessions, authorization codes (PKCE) and device codes. Every secret is stored as a hash.

CREATE TABLE sso_configs (
    entity_id                   TEXT PRIMARY KEY REFERENCES entities(id),
    vendor                      TEXT NOT NULL,
    idp_metadata_xml            TEXT NOT NULL,
    idp_entity_id               TEXT NOT NULL,
    idp_sso_redirect_url        TEXT,
    idp_sso_post_url            TEXT,
    idp_certs                   TEXT NOT NULL,     -- JSON array of base64 DER certificates
    want_authn_requests_signed  BIGINT NOT NULL,
    email_attribute             TEXT,
    enabled                     BIGINT NOT NULL,
    allow_idp_initiated         BIGINT NOT NULL,
    jit_accounts                BIGINT NOT NULL,
    allow_sha1                  BIGINT NOT NULL,
    sp_sealed_key               TEXT NOT NULL,     -- the entity's SP private key, sealed
    sp_cert                     TEXT NOT NULL,     -- base64 DER
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);

CREATE TABLE sso_domains (
    domain      TEXT PRIMARY KEY,
    entity_id   TEXT NOT NULL REFERENCES entities(id)
);
CREATE INDEX sso_domains_entity ON sso_domains(entity_id);

CREATE TABLE saml_requests (
    id            TEXT PRIMARY KEY,              -- the AuthnRequest ID
    relay_hash    TEXT NOT NULL UNIQUE,          -- hash of the opaque RelayState handle
    entity_id     TEXT NOT NULL REFERENCES entities(id),
    browser_hash  TEXT NOT NULL,                 -- hash of the binding cookie of the browser that started it
    return_to     TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE saml_assertions_seen (
    entity_id     TEXT NOT NULL,
    assertion_id  TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (entity_id, assertion_id)
);

CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    amr         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);

-- Authorization requests waiting for the user to sign in (their id travels in the return path).
CREATE TABLE authz_requests (
    id                     TEXT PRIMARY KEY,
    client_id              TEXT NOT NULL,
    redirect_uri           TEXT NOT NULL,
    code_challenge         TEXT NOT NULL,
    state                  TEXT,
    login_hint             TEXT,
    created_at             BIGINT NOT NULL,
    expires_at             BIGINT NOT NULL
);

CREATE TABLE auth_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(id),
    amr             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    family_id       TEXT                         -- the session its exchange started (revoked on reuse)
);

CREATE TABLE device_codes (
    device_code_hash  TEXT PRIMARY KEY,
    user_code         TEXT NOT NULL UNIQUE,
    client_id         TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    interval_s        BIGINT NOT NULL,
    last_poll_at      BIGINT,
    user_id           TEXT REFERENCES users(id),
    amr               TEXT,
    approved_at       BIGINT,
    denied_at         BIGINT,
    used_at           BIGINT
);
