-- Dispatch: grid programs and events (OpenADR 3 shaped), the commands sent to devices and
-- their signed acknowledgements, owner preferences, and the measured delivery per event.

CREATE TABLE grid_programs (
    id          TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- `body` is the validated event (JSON); the other columns are what queries select on.
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
    -- W: positive deliver (discharge / shed), negative absorb (charge / curtail).
    setpoint_w     BIGINT NOT NULL,
    issued_at      BIGINT NOT NULL,
    superseded_at  BIGINT,
    -- NULL until the device answers; 1 accepted, 0 refused. The signature is the device's.
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
    -- The epoch containing this time pays the event's delivery (see dr_deliveries).
    credited_at  BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX event_reports_by_credit ON event_reports (credited_at);

-- Measured delivery per device and event interval, Wh (what scoring pays, capped by the
-- command). An event's delivery counts in the epoch that contains its `credited_at` (its end
-- plus the measurement delay), so it is measured before that epoch closes.
CREATE TABLE dr_deliveries (
    event_id        TEXT NOT NULL,
    device_key      TEXT NOT NULL,
    interval_start  BIGINT NOT NULL,
    delivered_wh    BIGINT NOT NULL,
    credited_at     BIGINT NOT NULL,
    PRIMARY KEY (event_id, device_key, interval_start)
);
CREATE INDEX dr_deliveries_by_credit ON dr_deliveries (credited_at);
