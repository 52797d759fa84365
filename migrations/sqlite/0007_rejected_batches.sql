-- One row per refused batch, identified by what the device signed (device, sequence,
-- signature): the same rejected batch sent again, by the device or by anyone replaying it,
-- counts once. An epoch counts the rejections received in [start, end) to the second; the
-- minute buckets of 0003 were up to 59 s off an epoch boundary that is not on a whole minute.
-- `rejection_minutes` stays for the lifetime counts of what came before; it is not written.
CREATE TABLE rejected_batches (
    device_key   TEXT NOT NULL,
    sequence     BIGINT NOT NULL,
    signature    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (device_key, sequence, signature)
);

CREATE INDEX rejected_batches_by_time ON rejected_batches (received_at);
