-- Oracle storage, v1: the device registry cache, accepted telemetry, ingest cursors and
-- rejection counts. Portable SQL (SQLite and PostgreSQL): BIGINT for u64 values stored as
-- their i64 bit pattern where they can exceed i64::MAX (sequence numbers).

CREATE TABLE devices (
    device_key          TEXT PRIMARY KEY,   -- base58 ed25519 public key
    owner               TEXT NOT NULL,
    kind                SMALLINT NOT NULL,  -- ovpp::state::DeviceKind index
    status              SMALLINT NOT NULL,  -- 0 active, 1 suspended, 2 retired
    region              TEXT NOT NULL,
    rated_power_w       BIGINT NOT NULL,
    energy_capacity_wh  BIGINT NOT NULL,
    location_cell       BIGINT NOT NULL,
    synced_at           BIGINT NOT NULL     -- unix s of the chain read
);

CREATE TABLE device_cursors (
    device_key          TEXT PRIMARY KEY,
    last_sequence       BIGINT NOT NULL,
    last_interval_end   BIGINT NOT NULL
);

CREATE TABLE readings (
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
    PRIMARY KEY (device_key, interval_start)
);

CREATE TABLE rejections (
    device_key  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    count       BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (device_key, reason)
);
