//! Durable storage (SQLite through sqlx; WAL, `synchronous = FULL`, so a commit survives a
//! crash). The schema is `migrations/`, applied at start-up; the SQL is portable so that a
//! PostgreSQL backend can follow.

use std::collections::HashMap;
use std::str::FromStr;

use anchor_lang::prelude::Pubkey;
use ovpp::state::{DeviceKind, DeviceStatus};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::registry::{DeviceKey, RegisteredDevice};
use crate::telemetry::validate::{DeviceCursor, DeviceProfile};
use crate::telemetry::{GridResponse, Reading, SignedBatch};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// SQLite's default limit is 32766 bound variables per statement; 16 columns per reading.
const READINGS_PER_INSERT: usize = 1_000;

pub fn key_to_text(key: &DeviceKey) -> String {
    bs58::encode(key).into_string()
}

fn key_from_text(table: &'static str, text: &str) -> Result<DeviceKey, StoreError> {
    let mut out = [0u8; 32];
    match bs58::decode(text).onto(&mut out) {
        Ok(32) => Ok(out),
        _ => Err(StoreError::Corrupt { table, detail: format!("bad key {text}") }),
    }
}

fn kind_from(i: i64) -> Option<DeviceKind> {
    use DeviceKind::*;
    [Ev, EvCharger, HomeBattery, CiStorage, RooftopSolar, SmartMeter, EnergyManagementSystem].get(usize::try_from(i).ok()?).copied()
}

fn status_from(i: i64) -> Option<DeviceStatus> {
    [DeviceStatus::Active, DeviceStatus::Suspended, DeviceStatus::Retired].get(usize::try_from(i).ok()?).copied()
}

pub fn grid_response_from(i: i64) -> Option<GridResponse> {
    use GridResponse::*;
    [Idle, FollowingDispatch, OptedOut, Fault].get(usize::try_from(i).ok()?).copied()
}

/// A stored reading with its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReading {
    pub device_key: DeviceKey,
    pub reading: Reading,
    pub batch_sequence: u64,
    pub received_at: i64,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Waits for every connection to close (a later open sees all commits).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn devices(&self) -> Result<Vec<RegisteredDevice>, StoreError> {
        let rows =
            sqlx::query("SELECT device_key, owner, kind, status, region, rated_power_w, energy_capacity_wh, location_cell FROM devices")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let corrupt = |detail: &str| StoreError::Corrupt { table: "devices", detail: detail.to_string() };
                let owner: String = row.try_get("owner")?;
                Ok(RegisteredDevice {
                    key: key_from_text("devices", &row.try_get::<String, _>("device_key")?)?,
                    owner: Pubkey::from_str(&owner).map_err(|_| corrupt("owner"))?,
                    profile: DeviceProfile {
                        kind: kind_from(row.try_get("kind")?).ok_or_else(|| corrupt("kind"))?,
                        status: status_from(row.try_get("status")?).ok_or_else(|| corrupt("status"))?,
                        rated_power_w: row.try_get::<i64, _>("rated_power_w")? as u64,
                        energy_capacity_wh: row.try_get::<i64, _>("energy_capacity_wh")? as u64,
                    },
                    region: row.try_get("region")?,
                    location_cell: row.try_get::<i64, _>("location_cell")? as u64,
                })
            })
            .collect()
    }

    pub async fn upsert_devices(&self, devices: &[RegisteredDevice], synced_at: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for d in devices {
            sqlx::query(
                "INSERT INTO devices (device_key, owner, kind, status, region, rated_power_w, energy_capacity_wh, location_cell, synced_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (device_key) DO UPDATE SET owner = excluded.owner, status = excluded.status, region = excluded.region, \
                 rated_power_w = excluded.rated_power_w, energy_capacity_wh = excluded.energy_capacity_wh, \
                 location_cell = excluded.location_cell, synced_at = excluded.synced_at",
            )
            .bind(key_to_text(&d.key))
            .bind(d.owner.to_string())
            .bind(d.profile.kind as i64)
            .bind(d.profile.status as i64)
            .bind(&d.region)
            .bind(d.profile.rated_power_w as i64)
            .bind(d.profile.energy_capacity_wh as i64)
            .bind(d.location_cell as i64)
            .bind(synced_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn cursors(&self) -> Result<HashMap<DeviceKey, DeviceCursor>, StoreError> {
        let rows = sqlx::query("SELECT device_key, last_sequence, last_interval_end, last_signature FROM device_cursors")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let key = key_from_text("device_cursors", &row.try_get::<String, _>("device_key")?)?;
                let last_signature = match row.try_get::<Option<String>, _>("last_signature")? {
                    None => None,
                    Some(text) => {
                        let mut signature = [0u8; 64];
                        match bs58::decode(&text).onto(&mut signature) {
                            Ok(64) => Some(signature),
                            _ => return Err(StoreError::Corrupt { table: "device_cursors", detail: format!("bad signature {text}") }),
                        }
                    }
                };
                let cursor = DeviceCursor {
                    last_sequence: Some(row.try_get::<i64, _>("last_sequence")? as u64),
                    last_interval_end: Some(row.try_get("last_interval_end")?),
                    last_signature,
                };
                Ok((key, cursor))
            })
            .collect()
    }

    /// Writes accepted batches (readings and new cursors) and rejection counts in one
    /// transaction: when this returns `Ok`, all of it is on disk; on `Err`, none of it is.
    pub async fn commit(&self, accepted: &[&SignedBatch], rejected: &[(DeviceKey, &'static str)], now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(&SignedBatch, &Reading)> = accepted.iter().flat_map(|b| b.batch.readings.iter().map(move |r| (*b, r))).collect();
        for chunk in rows.chunks(READINGS_PER_INSERT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO readings (device_key, interval_start, interval_secs, energy_generated_wh, energy_consumed_wh, \
                 energy_imported_wh, energy_exported_wh, average_power_w, soc_permille, storage_available_wh, flex_up_w, \
                 flex_down_w, grid_response, online, batch_sequence, received_at) ",
            );
            insert.push_values(chunk, |mut row, (batch, r)| {
                row.push_bind(key_to_text(&batch.batch.device_key))
                    .push_bind(r.interval_start)
                    .push_bind(i64::from(r.interval_secs))
                    .push_bind(i64::from(r.energy_generated_wh))
                    .push_bind(i64::from(r.energy_consumed_wh))
                    .push_bind(i64::from(r.energy_imported_wh))
                    .push_bind(i64::from(r.energy_exported_wh))
                    .push_bind(i64::from(r.average_power_w))
                    .push_bind(r.state_of_charge_permille.map(i64::from))
                    .push_bind(r.storage_available_wh.map(i64::from))
                    .push_bind(i64::from(r.flex_up_w))
                    .push_bind(i64::from(r.flex_down_w))
                    .push_bind(r.grid_response as i64)
                    .push_bind(i64::from(r.online))
                    .push_bind(batch.batch.sequence as i64)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for batch in accepted {
            let last = batch.batch.readings.last().map(|r| r.interval_start + i64::from(r.interval_secs)).unwrap_or_default();
            sqlx::query(
                "INSERT INTO device_cursors (device_key, last_sequence, last_interval_end, last_signature) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (device_key) DO UPDATE SET last_sequence = excluded.last_sequence, \
                 last_interval_end = excluded.last_interval_end, last_signature = excluded.last_signature",
            )
            .bind(key_to_text(&batch.batch.device_key))
            .bind(batch.batch.sequence as i64)
            .bind(last)
            .bind(bs58::encode(batch.signature).into_string())
            .execute(&mut *tx)
            .await?;
        }
        for (key, reason) in rejected {
            sqlx::query(
                "INSERT INTO rejections (device_key, reason, count, last_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (device_key, reason) DO UPDATE SET count = rejections.count + 1, last_at = excluded.last_at",
            )
            .bind(key_to_text(key))
            .bind(*reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The most recent readings of a device, newest first.
    pub async fn recent_readings(&self, key: &DeviceKey, limit: i64) -> Result<Vec<StoredReading>, StoreError> {
        let rows = sqlx::query("SELECT * FROM readings WHERE device_key = $1 ORDER BY interval_start DESC LIMIT $2")
            .bind(key_to_text(key))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(reading_from_row).collect()
    }

    /// The latest reading of every device (to rebuild the fleet view at start-up).
    pub async fn latest_readings(&self) -> Result<Vec<StoredReading>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.* FROM readings r JOIN (SELECT device_key, MAX(interval_start) AS latest FROM readings GROUP BY device_key) m \
             ON r.device_key = m.device_key AND r.interval_start = m.latest",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(reading_from_row).collect()
    }

    pub async fn reading_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM readings").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Rejection counts per (device, reason): the input of data-quality scoring.
    pub async fn rejection_counts(&self) -> Result<Vec<(DeviceKey, String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT device_key, reason, count FROM rejections ORDER BY device_key, reason").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((key_from_text("rejections", &row.try_get::<String, _>("device_key")?)?, row.try_get("reason")?, row.try_get("count")?))
            })
            .collect()
    }
}

fn reading_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredReading, StoreError> {
    let corrupt = |detail: &str| StoreError::Corrupt { table: "readings", detail: detail.to_string() };
    let u32_col = |name: &str| -> Result<u32, StoreError> { u32::try_from(row.try_get::<i64, _>(name)?).map_err(|_| corrupt(name)) };
    Ok(StoredReading {
        device_key: key_from_text("readings", &row.try_get::<String, _>("device_key")?)?,
        reading: Reading {
            interval_start: row.try_get("interval_start")?,
            interval_secs: u32_col("interval_secs")?,
            energy_generated_wh: u32_col("energy_generated_wh")?,
            energy_consumed_wh: u32_col("energy_consumed_wh")?,
            energy_imported_wh: u32_col("energy_imported_wh")?,
            energy_exported_wh: u32_col("energy_exported_wh")?,
            average_power_w: i32::try_from(row.try_get::<i64, _>("average_power_w")?).map_err(|_| corrupt("average_power_w"))?,
            state_of_charge_permille: row
                .try_get::<Option<i64>, _>("soc_permille")?
                .map(|v| u16::try_from(v).map_err(|_| corrupt("soc_permille")))
                .transpose()?,
            storage_available_wh: row
                .try_get::<Option<i64>, _>("storage_available_wh")?
                .map(|v| u32::try_from(v).map_err(|_| corrupt("storage_available_wh")))
                .transpose()?,
            flex_up_w: u32_col("flex_up_w")?,
            flex_down_w: u32_col("flex_down_w")?,
            grid_response: grid_response_from(row.try_get("grid_response")?).ok_or_else(|| corrupt("grid_response"))?,
            online: row.try_get::<i64, _>("online")? != 0,
        },
        batch_sequence: row.try_get::<i64, _>("batch_sequence")? as u64,
        received_at: row.try_get("received_at")?,
    })
}
