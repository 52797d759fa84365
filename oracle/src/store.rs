//! Durable storage, the infrastructure only: the connection pools, the schema (per backend,
//! `migrations/sqlite` and `migrations/postgres`, applied at start-up) and the encodings
//! every table shares. The backend is chosen by the database URL: SQLite (`sqlite://`, the
//! embedded default: WAL, `synchronous = FULL`, one writer) or PostgreSQL (`postgres://`,
//! shared by several oracle processes). Each domain owns its SQL in its own module
//! (`registry::db`, `readings`, `epoch::db`, `dispatch::records`, `accumulate`, `loads`); it
//! is one portable text for both backends except where a function says otherwise.
//!
//! PostgreSQL advisory locks, all in the two-key form: `(1, first 4 key bytes)` an ingest
//! transaction's devices, `(2, 0)` partition DDL, `(2, 1)` the leader (session-held),
//! `(3, day)` a day's load profiles (exclusive to roll up, shared to write late readings),
//! `(4, 0)` the ingest fence (shared by ingest, exclusive to move it).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe};

use ovpp_wire::device::DeviceKey;

/// Which database server a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One process owns the file.
    Sqlite,
    /// Any number of oracle processes share the database.
    Postgres,
}

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
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
}

#[derive(Clone)]
pub struct Store {
    /// Reads.
    pub(crate) pool: AnyPool,
    /// Writes: one connection in SQLite, the same pool as reads in PostgreSQL.
    pub(crate) writes: AnyPool,
    pub backend: Backend,
    /// The URL, for connections outside the pools (the leader lock).
    pub(crate) url: String,
    /// PostgreSQL: the days (unix time / 86400) whose `readings` partition is known to exist.
    partitions: Arc<Mutex<BTreeSet<i64>>>,
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

/// Per SQLite connection: WAL, a commit is on disk when it returns, wait for a busy file,
/// memory-mapped reads (pages come from the OS cache without a copy), and the page cache.
fn sqlite_pragmas(
    cache_size: &'static str,
) -> impl for<'c> Fn(&'c mut AnyConnection, PoolConnectionMetadata) -> BoxFuture<'c, Result<(), sqlx::Error>> + Send + Sync + 'static {
    move |conn, _| {
        let sql = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; \
             PRAGMA mmap_size = 1073741824; PRAGMA cache_size = {cache_size}; PRAGMA foreign_keys = ON"
        );
        Box::pin(async move {
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await?;
            Ok(())
        })
    }
}

/// The `readings` partition of one day (unix time / 86400).
pub(crate) fn partition_name(day: i64) -> String {
    match day < 0 {
        true => format!("readings_dm{}", day.unsigned_abs()),
        false => format!("readings_d{day}"),
    }
}

fn day_of_partition(name: &str) -> Option<i64> {
    let day = name.strip_prefix("readings_d")?;
    match day.strip_prefix('m') {
        Some(negative) => negative.parse::<i64>().ok().map(|d| -d),
        None => day.parse().ok(),
    }
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

impl Backend {
    /// Parameter `n` (from 1) of a statement built at run time: `$n` in PostgreSQL; `?` in
    /// SQLite, which looks numbered parameters up by name in a list, a cost quadratic in
    /// their count (measured: a third of ingest's CPU with 1088 parameters a statement).
    /// Statements built with it bind their parameters in the order they appear.
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Backend::Postgres => format!("${n}"),
            Backend::Sqlite => "?".to_string(),
        }
    }

    /// How many rows of `columns` parameters one statement takes. SQLite spends more time
    /// preparing a many-row statement than running it (64 rows measured best); PostgreSQL
    /// gains from fewer round trips, up to its 65535 parameters.
    pub(crate) fn rows_per_statement(self, columns: usize) -> usize {
        match self {
            Backend::Sqlite => 64,
            Backend::Postgres => (65_535 / columns.max(1)).min(1024),
        }
    }

    /// `(p, p, ..), (..), ..`: the VALUES of `rows` rows of `columns` parameters, numbered
    /// after `before` earlier ones. (sqlx's `QueryBuilder` writes `?` for `Any` whatever the
    /// server, which PostgreSQL refuses.)
    pub(crate) fn values(self, rows: usize, columns: usize, before: usize) -> String {
        let mut out = String::with_capacity(rows * columns * 6);
        for row in 0..rows {
            out.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    out.push_str(", ");
                }
                out.push_str(&self.param(before + row * columns + column + 1));
            }
            out.push(')');
        }
        out
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::open_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url).await
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    async fn open_sqlite(url: &str) -> Result<Self, StoreError> {
        // Created if missing, unless the URL says otherwise.
        let url = match url.contains("mode=") {
            true => url.to_string(),
            false => format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' }),
        };
        let options: AnyConnectOptions = url.parse()?;
        // All writes go through one connection whose 64 MiB page cache stays valid from one
        // commit to the next (a pool of writers would each re-read what the others changed).
        let writes = AnyPoolOptions::new().max_connections(1).after_connect(sqlite_pragmas("-65536")).connect_with(options.clone()).await?;
        sqlx::migrate!("../migrations/sqlite").run(&writes).await?;
        let pool = AnyPoolOptions::new().max_connections(4).after_connect(sqlite_pragmas("-2000")).connect_with(options).await?;
        Ok(Self { pool, writes, backend: Backend::Sqlite, url, partitions: Default::default() })
    }

    async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let pool = AnyPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(30)).connect(url).await?;
        // Several processes may start at once: the migrator takes PostgreSQL's advisory lock.
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self { pool: pool.clone(), writes: pool, backend: Backend::Postgres, url: url.to_string(), partitions: Default::default() })
    }

    /// Whether other oracle processes may write to this database too.
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// PostgreSQL: creates the daily partitions of `readings` that rows starting at these
    /// times need. Each in its own short transaction (creating a partition locks the whole
    /// table), under an advisory lock so that processes starting the same day do not race.
    pub(crate) async fn ensure_partitions(&self, interval_starts: &[i64]) -> Result<(), StoreError> {
        let days: BTreeSet<i64> = interval_starts.iter().map(|t| t.div_euclid(86_400)).collect();
        let missing: Vec<i64> = {
            let known = self.partitions.lock().expect("partition cache");
            days.into_iter().filter(|d| !known.contains(d)).collect()
        };
        for day in missing {
            let mut tx = self.writes.begin().await?;
            sqlx::query("SELECT CAST(pg_advisory_xact_lock(2, 0) AS TEXT) AS locked").execute(&mut *tx).await?;
            let name = partition_name(day);
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings FOR VALUES FROM ({}) TO ({})",
                day * 86_400,
                (day + 1) * 86_400
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.partitions.lock().expect("partition cache").insert(day);
        }
        Ok(())
    }

    /// PostgreSQL: the days that have a `readings` partition.
    pub(crate) async fn partition_days(&self) -> Result<Vec<i64>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = 'readings' AND p.relnamespace = current_schema()::regnamespace",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut days: Vec<i64> = names.iter().filter_map(|n| day_of_partition(n)).collect();
        days.sort_unstable();
        Ok(days)
    }

    /// PostgreSQL: drops one day's `readings` partition.
    pub(crate) async fn drop_partition(&self, day: i64) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("SELECT CAST(pg_advisory_xact_lock(2, 0) AS TEXT) AS locked").execute(&mut *tx).await?;
        sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {}", partition_name(day)))).execute(&mut *tx).await?;
        tx.commit().await?;
        self.partitions.lock().expect("partition cache").remove(&day);
        Ok(())
    }

    /// Waits for every connection to close (a later open sees all commits).
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }
}
