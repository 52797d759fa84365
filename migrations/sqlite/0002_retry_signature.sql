-- The signature (hex) of each device's latest accepted batch, so that a device retrying
-- a batch whose answer it never received (oracle crash, dropped connection) is told the
-- batch is already stored instead of being counted as a replay against its data quality.
ALTER TABLE device_cursors ADD COLUMN last_signature TEXT;
