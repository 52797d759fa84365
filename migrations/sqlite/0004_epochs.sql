-- Epoch close and relaying: each closed epoch with its published report, the leaf of every
-- device in it (the next epoch starts from these), the oracle signatures collected for it,
-- and what the relayer did with it.

CREATE TABLE epochs (
    epoch             BIGINT PRIMARY KEY,
    start_ts          BIGINT NOT NULL,
    end_ts            BIGINT NOT NULL,
    emission          BIGINT NOT NULL,   -- the most this epoch may add (OVPP base units)
    cumulative_total  BIGINT NOT NULL,
    leaf_count        BIGINT NOT NULL,
    root              TEXT NOT NULL,     -- hex
    report_hash       TEXT NOT NULL,     -- hex sha256 of the report bytes
    report            TEXT NOT NULL,     -- the published JSON-lines report
    closed_at         BIGINT NOT NULL,
    posted_signature  TEXT,              -- base58 transaction signature, once confirmed
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
    signer     TEXT NOT NULL,    -- base58 oracle key
    signature  TEXT NOT NULL,    -- base58 ed25519 signature over the epoch message
    PRIMARY KEY (epoch, signer)
);
