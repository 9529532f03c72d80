-- Portal (issue 11): operator users, TOTP second factors with their recovery codes, and the index
-- behind the "last use" column of a license's assignees.

-- Accounts that may use the operator console (`latchkey operator add`).
CREATE TABLE operator_users (
    user_id     TEXT PRIMARY KEY REFERENCES users(id),
    created_at  BIGINT NOT NULL
);

-- One TOTP authenticator per account: its secret sealed with the master key. Until the first code
-- confirms it, the row is only an enrolment in progress. `last_step` is the last time step whose
-- code was accepted: a code works once.
CREATE TABLE totp_factors (
    user_id        TEXT PRIMARY KEY REFERENCES users(id),
    sealed_secret  TEXT NOT NULL,
    confirmed_at   BIGINT,
    last_step      BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

-- Single-use recovery codes, as keyed hashes.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE INDEX leases_user_license ON leases(user_id, license_id, last_heartbeat_at);
