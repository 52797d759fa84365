-- Oracle storage in PostgreSQL: the same tables as the SQLite migrations 0001-0007 end with
-- (see those for what each column means), made for several oracle processes sharing one
-- database. Differences: readings are partitioned by day of `interval_start` (the store
-- creates each day's partition before writing into it; retention drops whole partitions),
-- and they are indexed by `received_at`, which every process follows to keep its live
-- fleet view current with what the others accepted.

CREATE TABLE devices (
    device_key          TEXT PRIMARY KEY,
    owner               TEXT NOT NULL,
    kind                SMALLINT NOT NULL,
    status              SMALLINT NOT NULL,
    region              TEXT NOT NULL,
    rated_power_w       BIGINT NOT NULL,
    energy_capacity_wh  BIGINT NOT NULL,
    location_cell       BIGINT NOT NULL,
    synced_at           BIGINT NOT NULL
);

CREATE TABLE device_cursors (
    device_key          TEXT PRIMARY KEY,
    last_sequence       BIGINT NOT NULL,
    last_interval_end   BIGINT NOT NULL,
    last_signature      TEXT
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
    PRIMARY KEY (interval_start, device_key)
) PARTITION BY RANGE (interval_start);

CREATE INDEX readings_by_received ON readings (received_at);

-- Lifetime rejection counts from before `rejected_batches` (SQLite 0003); never written here,
-- kept so that the queries are the same on both backends.
CREATE TABLE rejection_minutes (
    device_key  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    minute      BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (device_key, reason, minute)
);

CREATE TABLE rejected_batches (
    device_key   TEXT NOT NULL,
    sequence     BIGINT NOT NULL,
    signature    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (device_key, sequence, signature)
);
CREATE INDEX rejected_batches_by_time ON rejected_batches (received_at);

CREATE TABLE epochs (
    epoch             BIGINT PRIMARY KEY,
    start_ts          BIGINT NOT NULL,
    end_ts            BIGINT NOT NULL,
    emission          BIGINT NOT NULL,
    cumulative_total  BIGINT NOT NULL,
    leaf_count        BIGINT NOT NULL,
    root              TEXT NOT NULL,
    report_hash       TEXT NOT NULL,
    report            TEXT NOT NULL,
    closed_at         BIGINT NOT NULL,
    posted_signature  TEXT,
    posted_at         BIGINT
);

CREATE TABLE epoch_leaves (
    epoch                     BIGINT NOT NULL,
    leaf_index                BIGINT NOT NULL,
    device_key                TEXT NOT NULL,
    cumulative_amount         BIGINT NOT NULL,
    reputation_bps            INTEGER NOT NULL,
    epochs_active             BIGINT NOT NULL,
    faults                    BIGINT NOT NULL,
    energy_delivered_wh       BIGINT NOT NULL,
    flexibility_delivered_wh  BIGINT NOT NULL,
    PRIMARY KEY (epoch, device_key)
);

CREATE TABLE epoch_signatures (
    epoch      BIGINT NOT NULL,
    signer     TEXT NOT NULL,
    signature  TEXT NOT NULL,
    PRIMARY KEY (epoch, signer)
);

CREATE TABLE grid_programs (
    id          TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE grid_events (
    id          TEXT PRIMARY KEY,
    program_id  TEXT NOT NULL REFERENCES grid_programs (id),
    region      TEXT NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT NOT NULL,
    cancelled   SMALLINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX grid_events_by_end ON grid_events (end_at);

CREATE TABLE dispatch_commands (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL,
    device_key     TEXT NOT NULL,
    valid_from     BIGINT NOT NULL,
    valid_until    BIGINT NOT NULL,
    setpoint_w     BIGINT NOT NULL,
    issued_at      BIGINT NOT NULL,
    superseded_at  BIGINT,
    accepted       SMALLINT,
    ack_signature  TEXT,
    acked_at       BIGINT
);
CREATE INDEX dispatch_commands_by_event ON dispatch_commands (event_id, device_key);

CREATE TABLE device_preferences (
    device_key  TEXT PRIMARY KEY,
    sequence    BIGINT NOT NULL,
    body        TEXT NOT NULL
);

CREATE TABLE event_reports (
    event_id     TEXT PRIMARY KEY,
    measured_at  BIGINT NOT NULL,
    credited_at  BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX event_reports_by_credit ON event_reports (credited_at);

CREATE TABLE dr_deliveries (
    event_id        TEXT NOT NULL,
    device_key      TEXT NOT NULL,
    interval_start  BIGINT NOT NULL,
    delivered_wh    BIGINT NOT NULL,
    credited_at     BIGINT NOT NULL,
    PRIMARY KEY (event_id, device_key, interval_start)
);
CREATE INDEX dr_deliveries_by_credit ON dr_deliveries (credited_at);
