//! The reading buffer on disk (SQLite, WAL, `synchronous = FULL`): an adapter's reading is
//! acknowledged to it (for OCPP: the charger's CALLRESULT) only once committed here, and
//! leaves only when each oracle has answered for it. Schema: `migrations/gateway`.
//!
//! Per device and oracle, one batch is in flight at a time, stored with its sequence and
//! signature before it is first sent, and sent again byte for byte until that oracle
//! answers: the oracle recognises a retry of a device's latest batch (`already_stored`),
//! so a lost answer, an oracle restart or a gateway crash neither loses nor doubles a
//! reading.

use std::str::FromStr;

use borsh::BorshDeserialize;
use ed25519_dalek::SigningKey;
use ovpp_wire::telemetry::{Reading, SignedBatch, TelemetryBatch};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

/// The most readings a batch holds (the oracle's limit).
pub const MAX_READINGS_PER_BATCH: usize = 1440;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the gateway's buffer {0}: {1}")]
    Database(String, sqlx::Error),
    #[error("the gateway's buffer is closed (the gateway is stopping)")]
    Closed,
}

/// One adapter hand-over: a device's reading and/or the adapter's new state for it,
/// committed together.
pub struct Record {
    pub device: String,
    pub reading: Option<Reading>,
    pub cursor: Option<String>,
}

/// Records to commit, and who waits for the commit.
type Write = (Vec<Record>, oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    writes: mpsc::Sender<Write>,
    oracles: std::sync::Arc<Vec<String>>,
}

/// A batch on its way to one oracle.
pub struct Outgoing {
    pub device: String,
    pub sequence: u64,
    pub batch: SignedBatch,
    pub readings: usize,
}

impl Store {
    /// Opens (or creates) `<state dir>/buffer.db` for readings to `oracles`.
    pub async fn open(path: &std::path::Path, oracles: Vec<String>) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let db = |e| StoreError::Database(shown.clone(), e);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{shown}"))
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        // One connection: every write is serialized anyway, and reads are small.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(db)?;
        sqlx::migrate!("../../migrations/gateway").run(&pool).await.map_err(|e| db(e.into()))?;
        let oracles = std::sync::Arc::new(oracles);
        let (writes, queue) = mpsc::channel(4096);
        tokio::spawn(group_commit(pool.clone(), oracles.clone(), queue));
        Ok(Self { pool, writes, oracles })
    }

    pub fn oracles(&self) -> &[String] {
        &self.oracles
    }

    fn error(&self, e: sqlx::Error) -> StoreError {
        StoreError::Database("buffer.db".into(), e)
    }

    /// Commits readings (with their cursors) for every oracle; returns once on disk.
    pub async fn record(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        self.writes.send((records, done)).await.map_err(|_| StoreError::Closed)?;
        committed.await.map_err(|_| StoreError::Closed)?.map_err(|e| StoreError::Database("buffer.db".into(), sqlx::Error::Protocol(e)))
    }

    /// An adapter's saved state for `device`.
    pub async fn cursor(&self, device: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM cursors WHERE device = ?")
            .bind(device)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Signs the oldest waiting readings of each device with no batch in flight to `oracle`
    /// into its next batch (with the key `key_of` gives; none: not now), and stores them as
    /// in flight, the readings leaving `pending`, all in one transaction: one commit a round,
    /// not one a device. The sequence is the unix time in milliseconds, or one more than the
    /// last if that is not above it: it grows across restarts, and above a sender's that used
    /// seconds. Returns how many batches it formed.
    pub async fn form_batches<'k>(
        &self,
        oracle: &str,
        now_ms: u64,
        key_of: impl Fn(&str) -> Option<&'k SigningKey>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let rows = sqlx::query(
            "SELECT id, device, reading FROM pending WHERE oracle = ?1 \
             AND device NOT IN (SELECT device FROM in_flight WHERE oracle = ?1) ORDER BY device, id",
        )
        .bind(oracle)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        let lasts: std::collections::HashMap<String, i64> = sqlx::query("SELECT device, last FROM sequences WHERE oracle = ?")
            .bind(oracle)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.error(e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut formed = 0;
        for device_rows in rows.chunk_by(|a, b| a.get::<&str, _>(1) == b.get::<&str, _>(1)) {
            let device: &str = device_rows[0].get(1);
            let Some(key) = key_of(device) else { continue };
            let device_rows = &device_rows[..device_rows.len().min(MAX_READINGS_PER_BATCH)];
            let mut readings = Vec::with_capacity(device_rows.len());
            for row in device_rows {
                let bytes: &[u8] = row.get(2);
                readings.push(Reading::try_from_slice(bytes).map_err(|e| self.error(sqlx::Error::Decode(Box::new(e))))?);
            }
            // Time order (adapters hand over in order; a reconnecting device may not).
            readings.sort_by_key(|r| r.interval_start);
            let sequence = now_ms.max(lasts.get(device).map_or(0, |&l| l as u64 + 1));
            let batch = TelemetryBatch { device_key: key.verifying_key().to_bytes(), sequence, readings }.sign(key);
            let max_id: i64 = device_rows.last().expect("a chunk is never empty").get(0);
            sqlx::query("DELETE FROM pending WHERE oracle = ? AND device = ? AND id <= ?")
                .bind(oracle)
                .bind(device)
                .bind(max_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
            sqlx::query("INSERT INTO in_flight (device, oracle, sequence, batch, readings) VALUES (?, ?, ?, ?, ?)")
                .bind(device)
                .bind(oracle)
                .bind(sequence as i64)
                .bind(batch.encode())
                .bind(device_rows.len() as i64)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
            sqlx::query(
                "INSERT INTO sequences (device, oracle, last) VALUES (?, ?, ?) \
                 ON CONFLICT (device, oracle) DO UPDATE SET last = excluded.last",
            )
            .bind(device)
            .bind(oracle)
            .bind(sequence as i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
            formed += 1;
        }
        if formed > 0 {
            tx.commit().await.map_err(|e| self.error(e))?;
        }
        Ok(formed)
    }

    /// The batches in flight to `oracle`, at most `limit`.
    pub async fn in_flight(&self, oracle: &str, limit: usize) -> Result<Vec<Outgoing>, StoreError> {
        let rows = sqlx::query("SELECT device, sequence, batch, readings FROM in_flight WHERE oracle = ? ORDER BY sequence LIMIT ?")
            .bind(oracle)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        rows.iter()
            .map(|r| {
                let bytes: Vec<u8> = r.get(2);
                let batch = SignedBatch::decode(&bytes).map_err(|e| self.error(sqlx::Error::Protocol(e.to_string())))?;
                Ok(Outgoing { device: r.get(0), sequence: r.get::<i64, _>(1) as u64, batch, readings: r.get::<i64, _>(3) as usize })
            })
            .collect()
    }

    /// `oracle` has answered for these batches (stored, or refused for good).
    pub async fn done(&self, oracle: &str, batches: &[(String, u64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        for (device, sequence) in batches {
            sqlx::query("DELETE FROM in_flight WHERE oracle = ? AND device = ? AND sequence = ?")
                .bind(oracle)
                .bind(device)
                .bind(*sequence as i64)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    /// Readings not yet stored by `oracle` (waiting or in flight).
    pub async fn depth(&self, oracle: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM pending WHERE oracle = ?1) + \
             (SELECT COALESCE(SUM(readings), 0) FROM in_flight WHERE oracle = ?1)",
        )
        .bind(oracle)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(n as u64)
    }
}

/// Commits whatever adapters handed over meanwhile in one transaction (one fsync for many
/// chargers), then tells each of them.
async fn group_commit(pool: SqlitePool, oracles: std::sync::Arc<Vec<String>>, mut queue: mpsc::Receiver<Write>) {
    let mut work = Vec::new();
    while queue.recv_many(&mut work, 512).await > 0 {
        let (records, waiters): (Vec<_>, Vec<_>) = work.drain(..).unzip();
        let outcome = commit(&pool, &oracles, records.iter().flatten()).await.map_err(|e| e.to_string());
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

async fn commit<'a>(pool: &SqlitePool, oracles: &[String], records: impl Iterator<Item = &'a Record>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for record in records {
        if let Some(reading) = &record.reading {
            let bytes = borsh::to_vec(reading).expect("borsh into Vec");
            for oracle in oracles {
                sqlx::query("INSERT INTO pending (device, oracle, reading) VALUES (?, ?, ?)")
                    .bind(&record.device)
                    .bind(oracle)
                    .bind(&bytes)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(state) = &record.cursor {
            sqlx::query("INSERT INTO cursors (device, state) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET state = excluded.state")
                .bind(&record.device)
                .bind(state)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}
