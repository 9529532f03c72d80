-- Heartbeats as heap-only (HOT) updates. A heartbeat rewrites last_heartbeat_at, expires_at and
-- idle_seconds; while expires_at was a key of leases_live_by_license, every heartbeat also wrote a
-- new entry into each of the table's four indexes, and after every checkpoint a full-page image of
-- each index page it touched: with 100,000 live leases PostgreSQL spent minutes bound on WAL writes
-- at a few hundred heartbeats/s. Keyed on license_id alone, no index covers a heartbeat's columns,
-- and free space left on each page lets the new row version stay beside the old one. Counting a
-- license's live seats reads expires_at from the heap (a few hundred rows for a large pool).
DROP INDEX leases_live_by_license;
CREATE INDEX leases_live_by_license ON leases(license_id) WHERE ended_at IS NULL;
ALTER TABLE leases SET (fillfactor = 80);
