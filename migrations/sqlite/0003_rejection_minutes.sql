-- Rejections per device, reason and minute, so that an epoch's data-quality score counts
-- exactly the rejections that happened inside it (epochs may be as short as a minute).
-- Replaces the lifetime totals of 0001 (kept as their sums).
CREATE TABLE rejection_minutes (
    device_key  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    minute      BIGINT NOT NULL,   -- unix time / 60 of the rejection
    count       BIGINT NOT NULL,
    PRIMARY KEY (device_key, reason, minute)
);

INSERT INTO rejection_minutes (device_key, reason, minute, count)
SELECT device_key, reason, last_at / 60, count FROM rejections;

DROP TABLE rejections;
