-- Seats (PostgreSQL twin of migrations/sqlite/0002_seats.sql): one row per lease (a running product holding a seat). A lease is live while
-- ended_at IS NULL AND expires_at > now: correctness never waits for a sweeper. Ended and lapsed
-- leases stay as the usage record behind reports.
CREATE TABLE leases (
    id                 TEXT PRIMARY KEY,
    license_id         TEXT NOT NULL REFERENCES licenses(id),
    user_id            TEXT NOT NULL REFERENCES users(id),
    machine            TEXT,              -- the machine name, floating licenses only
    machine_hash       TEXT NOT NULL,     -- keyed hash of (user, machine): recognises a re-run
    created_at         BIGINT NOT NULL,
    last_heartbeat_at  BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    idle_seconds       BIGINT NOT NULL DEFAULT 0,
    ended_at           BIGINT,
    end_reason         TEXT               -- released, revoked, idle, unassigned, license_expired
);
CREATE INDEX leases_live_by_license ON leases(license_id, expires_at) WHERE ended_at IS NULL;
CREATE INDEX leases_live_by_user ON leases(user_id, machine_hash) WHERE ended_at IS NULL;
CREATE INDEX leases_by_license_time ON leases(license_id, created_at);

-- Checkouts refused for want of a seat, per license and UTC day.
CREATE TABLE seat_denials (
    license_id  TEXT NOT NULL REFERENCES licenses(id),
    day         TEXT NOT NULL,            -- YYYY-MM-DD
    denials     BIGINT NOT NULL,
    PRIMARY KEY (license_id, day)
);
