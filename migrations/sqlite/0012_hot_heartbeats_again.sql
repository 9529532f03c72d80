-- Heartbeats write no index entries. 0008 added leases_user_license keyed on
-- (user_id, license_id, last_heartbeat_at) for the portal's "last use" column; since a heartbeat
-- rewrites last_heartbeat_at, every heartbeat also rewrote that index entry. Keyed on
-- (user_id, license_id) alone it still finds a user's few leases of a license, and their last
-- heartbeat is read from the table. Twin of migrations/postgres/0012_hot_heartbeats_again.sql.
DROP INDEX leases_user_license;
CREATE INDEX leases_user_license ON leases(user_id, license_id);
