-- The gateway's buffer (ovpp-gateway): every reading waits here, once per oracle, until that
-- oracle has stored it. Separate from the oracle's migrations (one directory up).

-- Readings an adapter handed over, not yet in a batch for this oracle.
CREATE TABLE pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    oracle TEXT NOT NULL,
    reading BLOB NOT NULL -- borsh Reading (ovpp-wire)
);
CREATE INDEX pending_by_device ON pending (oracle, device, id);

-- The one batch per device and oracle on its way: sent again, byte for byte, until the
-- oracle answers for it (a retry of the latest batch is `already_stored`, never stored twice).
CREATE TABLE in_flight (
    device TEXT NOT NULL,
    oracle TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    batch BLOB NOT NULL, -- borsh SignedBatch
    readings INTEGER NOT NULL,
    PRIMARY KEY (device, oracle)
);

-- The last sequence signed per device and oracle: sequences only grow.
CREATE TABLE sequences (
    device TEXT NOT NULL,
    oracle TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (device, oracle)
);

-- An adapter's state for one device (an OCPP charger's last meter register), written in the
-- same transaction as the readings derived from it.
CREATE TABLE cursors (
    device TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
