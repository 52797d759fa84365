-- Incremental epoch inputs: per device and epoch, the sums scoring needs, added to in the
-- same transaction as the readings, so that an epoch close reads one row per device instead
-- of every reading. An accumulator belongs to a bucket: the epoch's bounds on the schedule
-- ingest knew, and the stress window it used. A reading is `accumulated` when it was added
-- to its bucket; an epoch is closed from its accumulators only when exactly one bucket,
-- equal to the epoch and the rules' stress window, overlaps it and none of its readings is
-- unaccumulated (older data, a schedule or rules change, a process that did not know the
-- schedule); otherwise from the readings, with the same result.
ALTER TABLE readings ADD COLUMN accumulated SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX readings_unaccumulated ON readings (interval_start) WHERE accumulated = 0;

CREATE TABLE epoch_buckets (
    start_ts       BIGINT NOT NULL,
    end_ts         BIGINT NOT NULL,
    stress_from_s  BIGINT NOT NULL,   -- seconds of the UTC day
    stress_to_s    BIGINT NOT NULL,
    PRIMARY KEY (start_ts, end_ts, stress_from_s, stress_to_s)
);
CREATE INDEX epoch_buckets_by_end ON epoch_buckets (end_ts);

CREATE TABLE epoch_accumulators (
    start_ts            BIGINT NOT NULL,
    end_ts              BIGINT NOT NULL,
    stress_from_s       BIGINT NOT NULL,
    stress_to_s         BIGINT NOT NULL,
    device_key          TEXT NOT NULL,
    covered_secs        BIGINT NOT NULL,
    online_secs         BIGINT NOT NULL,
    generated_wh        BIGINT NOT NULL,
    discharged_wh       BIGINT NOT NULL,
    storage_wh_secs     BIGINT NOT NULL,
    stress_flex_w_secs  BIGINT NOT NULL,
    fault_intervals     BIGINT NOT NULL,
    accepted_batches    BIGINT NOT NULL,
    through_sequence    BIGINT NOT NULL,
    PRIMARY KEY (start_ts, end_ts, stress_from_s, stress_to_s, device_key)
);
