-- SSO lifecycle (issue 8); PostgreSQL twin of migrations/sqlite/0006_sso_lifecycle.sql.
--
-- Email domains: any number of entities may claim a domain, but only one may hold it verified
-- (the operator verifies). Only a verified domain routes sign-ins, decides who must use SSO and
-- which IdP may sign an address in; an unverified claim blocks nobody.
CREATE TABLE sso_domain_claims (
    domain      TEXT NOT NULL,
    entity_id   TEXT NOT NULL REFERENCES entities(id),
    verified    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, entity_id)
);
INSERT INTO sso_domain_claims (domain, entity_id, verified) SELECT domain, entity_id, verified FROM sso_domains;
DROP TABLE sso_domains;
ALTER TABLE sso_domain_claims RENAME TO sso_domains;
CREATE UNIQUE INDEX sso_domains_verified ON sso_domains(domain) WHERE verified = 1;
CREATE INDEX sso_domains_entity ON sso_domains(entity_id);

-- An account's home follows its verified domain, whoever created the account first.
UPDATE users SET entity_id = (
    SELECT d.entity_id FROM sso_domains d WHERE d.verified = 1 AND users.email LIKE ('%@' || d.domain)
) WHERE EXISTS (SELECT 1 FROM sso_domains d WHERE d.verified = 1 AND users.email LIKE ('%@' || d.domain));

-- The fingerprint of the IdP configuration that last passed a test sign-in (an administrator may
-- enable only a tested configuration).
ALTER TABLE sso_configs ADD COLUMN tested_hash TEXT;
ALTER TABLE sso_configs ADD COLUMN tested_at BIGINT;

-- A pending request started by a test sign-in: its answer is shown, never signs anyone in.
ALTER TABLE saml_requests ADD COLUMN test BIGINT NOT NULL DEFAULT 0;
CREATE INDEX saml_requests_entity_browser ON saml_requests(entity_id, browser_hash);

-- Refused SAML responses, for the entity's administrators (kept 7 days, bounded per entity).
CREATE TABLE sso_failures (
    id          TEXT PRIMARY KEY,
    entity_id   TEXT NOT NULL REFERENCES entities(id),
    at          BIGINT NOT NULL,
    code        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    issuer      TEXT,
    name_id     TEXT
);
CREATE INDEX sso_failures_entity_at ON sso_failures(entity_id, at);
