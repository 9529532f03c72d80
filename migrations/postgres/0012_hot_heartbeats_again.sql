-- Heartbeats as heap-only updates again. 0008 added leases_user_license keyed on
-- (user_id, license_id, last_heartbeat_at) for the portal's "last use" column; since a heartbeat
-- rewrites last_heartbeat_at, every heartbeat again wrote a new entry into each index of the
-- table (what 0005 had removed). Keyed on (user_id, license_id) alone it still finds a user's
-- few leases of a license, and their last heartbeat is read from the heap.
-- Twin of migrations/sqlite/0012_hot_heartbeats_again.sql.
DROP INDEX leases_user_license;
CREATE INDEX leases_user_license ON leases(user_id, license_id);
