//! Durable storage, the infrastructure only (SQLite through sqlx; WAL, `synchronous = FULL`,
//! so a commit survives a crash): the connection pools, the schema (`migrations/`, applied
//! at start-up) and the encodings every table shares. Each domain owns its SQL in its own
//! module (`registry::db`, `readings`, `epoch::db`, `dispatch::records`); the SQL is
//! portable so that a PostgreSQL backend can follow.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use ovpp_wire::device::DeviceKey;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

#[derive(Clone)]
pub struct Store {
    /// Reads.
    pub(crate) pool: SqlitePool,
    /// Writes: one connection.
    pub(crate) writes: SqlitePool,
}

/// Splits `rows` into statement-sized chunks of power-of-two lengths up to `max`: SQLite
/// spends more time preparing a many-row statement than running it, so the statements
/// come in a handful of shapes that stay in sqlx's prepared-statement cache.
pub(crate) fn statement_chunks<T>(mut rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = max.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

pub fn key_to_text(key: &DeviceKey) -> String {
    bs58::encode(key).into_string()
}

pub(crate) fn key_from_text(table: &'static str, text: &str) -> Result<DeviceKey, StoreError> {
    let mut out = [0u8; 32];
    match bs58::decode(text).onto(&mut out) {
        Ok(32) => Ok(out),
        _ => Err(StoreError::Corrupt { table, detail: format!("bad key {text}") }),
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10))
            // Memory-mapped reads: pages come from the OS cache without a copy.
            .pragma("mmap_size", "1073741824");
        // All writes go through one connection whose 64 MiB page cache stays valid from one
        // commit to the next (a pool of writers would each re-read what the others changed).
        let writes = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone().pragma("cache_size", "-65536")).await?;
        sqlx::migrate!("../migrations").run(&writes).await?;
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        Ok(Self { pool, writes })
    }

    /// Waits for every connection to close (a later open sees all commits).
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }
}
