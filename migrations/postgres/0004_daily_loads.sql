-- (As SQLite 0010.) Daily load profiles: per device and UTC day, every reading's net import (imported -
-- exported, Wh) at its offset in the day, so that a day-matching baseline reads the event's
-- devices' 30-45 days as one row a day each instead of scanning every device's readings.
-- The leader rolls up each finished day once (`daily_loads_done`); a reading accepted later
-- for a rolled-up day removes that device's profile of the day and marks the day to be
-- rolled up again, so a profile always equals the readings it was made from.
CREATE TABLE daily_loads (
    device_key  TEXT NOT NULL,
    day         BIGINT NOT NULL,   -- unix time / 86400
    loads       TEXT NOT NULL,     -- "offset_secs,interval_secs,net_wh;" per reading, in time order
    PRIMARY KEY (device_key, day)
);

CREATE TABLE daily_loads_done (
    day  BIGINT PRIMARY KEY
);
