-- A region's hourly outdoor temperatures (°C, thousandths), the weather input of the
-- regression baseline: fed by grid operators, carried to co-signers in event records.
CREATE TABLE temperatures (
    region        TEXT NOT NULL,
    hour_start    BIGINT NOT NULL,
    millicelsius  BIGINT NOT NULL,
    PRIMARY KEY (region, hour_start)
);

-- What each measurement read besides the event, its commands and the readings (JSON: the
-- commands that overrode a price schedule, the temperatures), sent to co-signers with the
-- event's record so they measure with exactly the same.
ALTER TABLE event_reports ADD COLUMN inputs TEXT;
