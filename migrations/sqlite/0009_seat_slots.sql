-- Seats as claimable rows (twin of migrations/postgres/0009_seat_slots.sql; see src/store/slots.rs).
-- A floating license has one slot per seat; a checkout claims a free one instead of counting the
-- license's live leases. The leases table keeps its meaning: it is still the usage record, and a
-- lease is live exactly as before.
CREATE TABLE seat_slots (
    license_id  TEXT NOT NULL REFERENCES licenses(id),
    slot        BIGINT NOT NULL,
    lease_id    TEXT,                      -- the lease holding the seat; NULL when free
    expires_at  BIGINT NOT NULL DEFAULT 0, -- a lower bound of that lease's expiry; 0 when free
    PRIMARY KEY (license_id, slot)
);
CREATE INDEX seat_slots_claimable ON seat_slots(license_id, expires_at);
CREATE UNIQUE INDEX seat_slots_by_lease ON seat_slots(lease_id) WHERE lease_id IS NOT NULL;
ALTER TABLE licenses ADD COLUMN seat_surplus BIGINT NOT NULL DEFAULT 0;

-- Ending a lease (release, disconnect, idle, unassignment, license expiry) frees its slot; a
-- heartbeat does not set ended_at and does not fire it.
CREATE TRIGGER leases_end_frees_slot AFTER UPDATE OF ended_at ON leases
WHEN OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL
BEGIN
    UPDATE seat_slots SET lease_id = NULL, expires_at = 0 WHERE lease_id = NEW.id;
END;

-- Existing licenses: live leases take slots 0.., free slots make up the seats, leases beyond the
-- seats count as surplus.
INSERT INTO seat_slots (license_id, slot, lease_id, expires_at)
SELECT license_id, ROW_NUMBER() OVER (PARTITION BY license_id ORDER BY expires_at DESC, id) - 1, id, expires_at
FROM leases
WHERE ended_at IS NULL AND expires_at > CAST(strftime('%s', 'now') AS INTEGER) * 1000
  AND license_id IN (SELECT id FROM licenses WHERE kind = 'floating');
WITH RECURSIVE g(n) AS (
    SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < (SELECT MAX(seats) FROM licenses WHERE kind = 'floating')
)
INSERT INTO seat_slots (license_id, slot, lease_id, expires_at)
SELECT l.id, g.n, NULL, 0 FROM licenses l JOIN g ON g.n < l.seats
WHERE l.kind = 'floating' AND NOT EXISTS (SELECT 1 FROM seat_slots s WHERE s.license_id = l.id AND s.slot = g.n);
UPDATE licenses SET seat_surplus = (SELECT COUNT(*) FROM seat_slots s WHERE s.license_id = licenses.id) - seats
WHERE kind = 'floating' AND (SELECT COUNT(*) FROM seat_slots s WHERE s.license_id = licenses.id) > seats;
