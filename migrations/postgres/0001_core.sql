-- Core (PostgreSQL twin of migrations/sqlite/0001_core.sql): entities, accounts, products, licenses, operator keys, token keys, refresh families, mail.
-- Conventions (shared with migrations/postgres): ids are text UUIDs, times are unix milliseconds
-- (BIGINT), flags are 0/1 integers, secrets are stored only as SHA-256 hashes, private keys and
-- queued mail bodies only sealed with the master key.

CREATE TABLE entities (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL UNIQUE,      -- lower-cased
    entity_id            TEXT NOT NULL REFERENCES entities(id),
    password_hash        TEXT,                      -- argon2id PHC string; NULL until set
    password_changed_at  BIGINT,
    created_at           BIGINT NOT NULL
);
CREATE INDEX users_entity ON users(entity_id);

CREATE TABLE entity_admins (
    entity_id   TEXT NOT NULL REFERENCES entities(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (entity_id, user_id)
);
CREATE INDEX entity_admins_user ON entity_admins(user_id);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE license_groups (
    id          TEXT PRIMARY KEY,
    entity_id   TEXT NOT NULL REFERENCES entities(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (entity_id, name)
);

CREATE TABLE licenses (
    id              TEXT PRIMARY KEY,
    entity_id       TEXT NOT NULL REFERENCES entities(id),
    product_id      TEXT NOT NULL REFERENCES products(id),
    kind            TEXT NOT NULL CHECK (kind IN ('fixed', 'floating')),
    seats           BIGINT NOT NULL CHECK (seats >= 0),
    expires_at      BIGINT,
    group_id        TEXT REFERENCES license_groups(id),
    changes_used    BIGINT NOT NULL DEFAULT 0,      -- revokes/reassignments spent (fixed)
    idle_timeout_s  BIGINT,                          -- disconnect seats idle this long
    version         BIGINT NOT NULL DEFAULT 0,      -- bumped to serialise seat and assignment changes
    created_at      BIGINT NOT NULL
);
CREATE INDEX licenses_entity ON licenses(entity_id);

CREATE TABLE assignments (
    license_id  TEXT NOT NULL REFERENCES licenses(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (license_id, user_id)
);
CREATE INDEX assignments_user ON assignments(user_id);

CREATE TABLE share_links (
    id          TEXT PRIMARY KEY,
    license_id  TEXT NOT NULL REFERENCES licenses(id),
    token_hash  TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX share_links_license ON share_links(license_id);

CREATE TABLE operator_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Password-setup and reset links.
CREATE TABLE account_links (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('setup', 'reset')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX account_links_user ON account_links(user_id);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    sealed_private  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    superseded_at   BIGINT
);

CREATE TABLE refresh_families (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id),
    client_id       TEXT NOT NULL,
    amr             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);

-- One row per refresh token; the family's owner is copied in so a refresh is one indexed UPDATE.
-- Revoking a family deletes its unspent tokens; spent ones stay to detect reuse.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    client_id   TEXT NOT NULL,
    amr         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

CREATE TABLE revoked_access_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

-- Failed-password counters, keyed by a keyed hash of the account or client address.
CREATE TABLE login_throttle (
    key            TEXT PRIMARY KEY,
    failures       BIGINT NOT NULL,
    window_start   BIGINT NOT NULL,
    blocked_until  BIGINT NOT NULL
);

CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    recipient        TEXT NOT NULL,
    template         TEXT NOT NULL,
    sealed_message   TEXT,              -- NULL once sent
    created_at       BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    claimed_until    BIGINT,
    sent_at          BIGINT,
    failed_at        BIGINT,            -- set when the server refused it for good
    last_error       TEXT
);
CREATE INDEX outbox_due ON outbox(sent_at, next_attempt_at);
