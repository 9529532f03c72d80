-- SCIM 2.0 provisioning (issue 13) and IdP metadata fetched from a URL.
-- Twin of migrations/postgres/0010_scim.sql.

-- Bearer tokens an entity's IdP uses to call /scim/v2/{slug}; only their SHA-256 is stored.
CREATE TABLE scim_tokens (
    id            TEXT PRIMARY KEY,
    entity_id     TEXT NOT NULL REFERENCES entities(id),
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX scim_tokens_entity ON scim_tokens(entity_id);

-- What the IdP knows an account by (its externalId). Names and other profile attributes the IdP
-- sends are not kept (data minimisation): only the address and this identifier.
CREATE TABLE scim_users (
    entity_id    TEXT NOT NULL REFERENCES entities(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    external_id  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT,            -- DELETE /Users/{id}: deactivated and no longer a SCIM resource
    PRIMARY KEY (entity_id, user_id)
);
CREATE INDEX scim_users_external ON scim_users(entity_id, external_id);

-- An account deactivated by its organisation's IdP (SCIM active:false): no sign-in while set.
ALTER TABLE users ADD COLUMN deactivated_at BIGINT;
-- A suspended assignment keeps its seat but gives none until the account is active again.
ALTER TABLE assignments ADD COLUMN suspended_at BIGINT;

CREATE TABLE scim_groups (
    id            TEXT PRIMARY KEY,
    entity_id     TEXT NOT NULL REFERENCES entities(id),
    display_name  TEXT NOT NULL,
    external_id   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (entity_id, display_name)
);

CREATE TABLE scim_group_members (
    group_id  TEXT NOT NULL REFERENCES scim_groups(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_group_members_user ON scim_group_members(user_id);

-- A license whose assignment list follows a SCIM group's membership.
ALTER TABLE licenses ADD COLUMN scim_group_id TEXT REFERENCES scim_groups(id);
-- What the last synchronisation with that group could not do (JSON), for the administrators.
ALTER TABLE licenses ADD COLUMN scim_sync_report TEXT;

-- IdP metadata fetched from a URL: when it was last fetched and what went wrong since, when it is
-- due again, and who is fetching it now (one replica per period: the claim).
ALTER TABLE sso_configs ADD COLUMN idp_metadata_url TEXT;
ALTER TABLE sso_configs ADD COLUMN metadata_fetched_at BIGINT;
ALTER TABLE sso_configs ADD COLUMN metadata_error TEXT;
ALTER TABLE sso_configs ADD COLUMN metadata_error_at BIGINT;
ALTER TABLE sso_configs ADD COLUMN metadata_next_fetch_at BIGINT;
ALTER TABLE sso_configs ADD COLUMN metadata_claimed_until BIGINT;
-- The certificate-expiry warnings already mailed (`<sha256>:<days>` entries, JSON array).
ALTER TABLE sso_configs ADD COLUMN cert_warnings_sent TEXT;
