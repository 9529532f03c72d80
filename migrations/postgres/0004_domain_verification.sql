-- An email domain claimed by an entity's administrator is only a claim until the vendor (operator
-- key) verifies it; only verified domains route unknown addresses to the entity's IdP and allow
-- just-in-time accounts, so no entity can capture another company's addresses.
ALTER TABLE sso_domains ADD COLUMN verified BIGINT NOT NULL DEFAULT 0;
