-- The cost of the audit log (issue 10): events wait for the sealer in a table of their own, and
-- seal marks let a page filtered by time start where that time is. Twin of
-- migrations/sqlite/0013_audit_pending.sql.
--
-- Writers append an event to `audit_pending`, in the transaction of the change it records: one
-- row, one index (the primary key, which only grows). The sealer takes a batch in `pos` order,
-- deletes it there and inserts it into `audit_events` with its `seq`, `hash` and `seal_order`, in
-- one transaction: each event is written into the read indexes once, by the sealer, instead of by
-- every request (and again when it was sealed). Readers list `audit_events` only, as before: they always saw sealed
-- events only, and each read seals first.
CREATE TABLE audit_pending (
    pos         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL,
    chain       TEXT NOT NULL,
    entity      TEXT,
    at          BIGINT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT,
    action      TEXT NOT NULL,
    targets     TEXT NOT NULL,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    details     TEXT NOT NULL
);

-- Events written before this migration and not sealed yet wait here now, in the order the sealer
-- took them (`at`, then `id`).
INSERT INTO audit_pending (id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, user_agent,
                           request_id, details)
SELECT id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, user_agent, request_id, details
FROM audit_events WHERE seal_order IS NULL ORDER BY at, id;
DELETE FROM audit_events WHERE seal_order IS NULL;

-- Every row of audit_events is sealed from now on (`latchkey audit verify` reports one that is not).
DROP INDEX audit_events_unsealed;

-- Where in the read order a time lands, for the `from` filter: each row says that every event from
-- seal order `first_order` (up to the next row's) happened at or before `max_at`, and `max_at` only
-- grows with `first_order`. The first row whose `max_at` reaches `from` is where a page filtered by
-- `from` starts: every event before it happened earlier. The sealer writes them (about one a
-- minute of event time); without them, a page of one day among millions of events scanned the read
-- order from its start, its index knowing nothing of time. Events already sealed get one row.
CREATE TABLE audit_seal_marks (
    first_order BIGINT PRIMARY KEY,
    max_at      BIGINT NOT NULL
);
CREATE INDEX audit_seal_marks_at ON audit_seal_marks(max_at, first_order);
INSERT INTO audit_seal_marks (first_order, max_at)
SELECT f, m FROM (SELECT MIN(seal_order) AS f, MAX(at) AS m FROM audit_events WHERE seal_order IS NOT NULL) sealed
WHERE f IS NOT NULL;
