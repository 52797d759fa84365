-- A region's hourly outdoor temperatures (°C, thousandths), the weather input of the
-- regression baseline: fed by grid operators, carried to co-signers in event records.
CREATE TABLE temperatures (
    region        TEXT NOT NULL,
    hour_start    BIGINT NOT NULL,
    millicelsius  BIGINT NOT NULL,
    PRIMARY KEY (region, hour_start)
);
