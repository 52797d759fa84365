-- (As SQLite 0009.) The end of the latest epoch being closed or closed: ingest refuses earlier intervals, so a
-- closed epoch's inputs never change. In the database, not in one process's memory, so that
-- every oracle process sharing it sees the same fence: each ingest transaction reads it (in
-- PostgreSQL under an advisory lock held shared), and moving it (the lock held exclusively)
-- waits for the transactions that read the old value to commit.
CREATE TABLE ingest_fence (
    id            SMALLINT PRIMARY KEY CHECK (id = 0),
    closed_until  BIGINT NOT NULL
);
INSERT INTO ingest_fence (id, closed_until) SELECT 0, COALESCE(MAX(end_ts), -9223372036854775808) FROM epochs;
