-- Seats as claimable rows (twin of migrations/sqlite/0009_seat_slots.sql; see src/store/slots.rs).
-- A floating license has one slot per seat; a checkout claims a free one (FOR UPDATE SKIP LOCKED)
-- instead of counting the license's live leases under the license's row lock. The leases table
-- keeps its meaning: it is still the usage record, and a lease is live exactly as before.
CREATE TABLE seat_slots (
    license_id  TEXT NOT NULL REFERENCES licenses(id),
    slot        BIGINT NOT NULL,
    lease_id    TEXT,                      -- the lease holding the seat; NULL when free
    expires_at  BIGINT NOT NULL DEFAULT 0, -- a lower bound of that lease's expiry; 0 when free
    PRIMARY KEY (license_id, slot)
);
-- A claim reads the slots whose bound has passed, lowest first.
CREATE INDEX seat_slots_claimable ON seat_slots(license_id, expires_at);
-- Ending a lease frees its slot.
CREATE UNIQUE INDEX seat_slots_by_lease ON seat_slots(lease_id) WHERE lease_id IS NOT NULL;
-- Slots still held by live leases after the seats were lowered: slots = seats + seat_surplus.
ALTER TABLE licenses ADD COLUMN seat_surplus BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION seat_slot_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE seat_slots SET lease_id = NULL, expires_at = 0 WHERE lease_id = NEW.id;
    RETURN NULL;
END
$$;
-- Fires only for statements that set ended_at (release, disconnect, idle, unassignment, license
-- expiry), never for heartbeats.
CREATE TRIGGER leases_end_frees_slot AFTER UPDATE OF ended_at ON leases FOR EACH ROW
    WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL) EXECUTE FUNCTION seat_slot_free();

-- Existing licenses: the live leases of each floating license take slots 0.., free slots make up
-- the seats, and leases beyond the seats (seats lowered while they ran) count as surplus.
INSERT INTO seat_slots (license_id, slot, lease_id, expires_at)
SELECT license_id, ROW_NUMBER() OVER (PARTITION BY license_id ORDER BY expires_at DESC, id) - 1, id, expires_at
FROM leases
WHERE ended_at IS NULL AND expires_at > (EXTRACT(EPOCH FROM now()) * 1000)::bigint
  AND license_id IN (SELECT id FROM licenses WHERE kind = 'floating');
INSERT INTO seat_slots (license_id, slot, lease_id, expires_at)
SELECT l.id, g.n, NULL, 0 FROM licenses l CROSS JOIN LATERAL generate_series(0, l.seats - 1) AS g(n)
WHERE l.kind = 'floating' AND NOT EXISTS (SELECT 1 FROM seat_slots s WHERE s.license_id = l.id AND s.slot = g.n);
UPDATE licenses SET seat_surplus = (SELECT COUNT(*) FROM seat_slots s WHERE s.license_id = licenses.id) - seats
WHERE kind = 'floating' AND (SELECT COUNT(*) FROM seat_slots s WHERE s.license_id = licenses.id) > seats;
