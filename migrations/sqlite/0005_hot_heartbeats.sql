-- Twin of migrations/postgres/0005_hot_heartbeats.sql: leases_live_by_license keyed on license_id
-- alone, so a heartbeat (which rewrites expires_at) updates no index. SQLite has no fillfactor.
DROP INDEX leases_live_by_license;
CREATE INDEX leases_live_by_license ON leases(license_id) WHERE ended_at IS NULL;
