-- Checkouts refused for want of a seat, per license and quarter of an hour (`at`: its first
-- instant, unix ms). seat_denials kept them per UTC day, which cannot be split into the days of
-- another zone: a refusal just after midnight in Berlin (before midnight UTC) was reported on the
-- day before, or not at all when the license was made that night. Every zone's offset is a whole
-- number of quarter hours, so a quarter hour lies within one local day of any zone. A day's count
-- kept before this migration moves to that UTC day's noon, the date it was reported on before.
-- Twin of migrations/sqlite/0014_refusals_by_quarter_hour.sql.
CREATE TABLE seat_refusals (
    license_id  TEXT NOT NULL REFERENCES licenses(id),
    at          BIGINT NOT NULL,
    denials     BIGINT NOT NULL,
    PRIMARY KEY (license_id, at)
);
INSERT INTO seat_refusals (license_id, at, denials)
    SELECT license_id, (CAST(EXTRACT(EPOCH FROM CAST(day AS TIMESTAMP)) AS BIGINT) + 43200) * 1000, denials FROM seat_denials;
DROP TABLE seat_denials;
