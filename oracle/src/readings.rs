//! Stored telemetry: the readings, each device's cursor (what ingest accepted so far) and
//! the rejected batches, written by the ingest writer in one transaction per group.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Sqlite};

use ovpp_wire::device::DeviceKey;
use ovpp_wire::telemetry::validate::DeviceCursor;
use ovpp_wire::telemetry::{GridResponse, Reading, SignedBatch};

use crate::store::{key_from_text, key_to_text, statement_chunks, Store, StoreError};

/// SQLite's default limit is 32766 bound variables per statement; 16 columns per reading.
const READINGS_PER_INSERT: usize = 64;
const CURSORS_PER_UPSERT: usize = 64;

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
                        hex::decode_to_slice(&text, &mut signature)
                            .map_err(|_| StoreError::Corrupt { table: "device_cursors", detail: format!("bad signature {text}") })?;
                        Some(signature)
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

    /// Writes accepted batches (readings and new cursors) and rejected ones (each batch once,
    /// however often it is sent) in one transaction: when this returns `Ok`, all of it is on
    /// disk; on `Err`, none of it is.
    pub async fn commit(
        &self,
        accepted: &[&SignedBatch],
        cursors: &[(DeviceKey, DeviceCursor)],
        rejected: &[(&SignedBatch, &'static str)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        // The key's text once per batch, not per reading.
        let keys: Vec<String> = accepted.iter().map(|b| key_to_text(&b.batch.device_key)).collect();
        let rows: Vec<(&str, u64, &Reading)> = accepted
            .iter()
            .zip(&keys)
            .flat_map(|(b, key)| b.batch.readings.iter().map(move |r| (key.as_str(), b.batch.sequence, r)))
            .collect();
        for chunk in statement_chunks(&rows, READINGS_PER_INSERT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO readings (device_key, interval_start, interval_secs, energy_generated_wh, energy_consumed_wh, \
                 energy_imported_wh, energy_exported_wh, average_power_w, soc_permille, storage_available_wh, flex_up_w, \
                 flex_down_w, grid_response, online, batch_sequence, received_at) ",
            );
            insert.push_values(chunk, |mut row, &(key, sequence, r)| {
                row.push_bind(key)
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
                    .push_bind(sequence as i64)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        // One multi-row upsert per chunk; each device once (its last cursor), as PostgreSQL
        // refuses to update one row twice in a statement.
        for chunk in statement_chunks(cursors, CURSORS_PER_UPSERT) {
            let mut upsert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO device_cursors (device_key, last_sequence, last_interval_end, last_signature) ");
            upsert.push_values(chunk, |mut row, (key, cursor)| {
                row.push_bind(key_to_text(key))
                    .push_bind(cursor.last_sequence.unwrap_or_default() as i64)
                    .push_bind(cursor.last_interval_end.unwrap_or_default())
                    .push_bind(cursor.last_signature.map(hex::encode));
            });
            upsert.push(
                " ON CONFLICT (device_key) DO UPDATE SET last_sequence = excluded.last_sequence, \
                 last_interval_end = excluded.last_interval_end, last_signature = excluded.last_signature",
            );
            upsert.build().execute(&mut *tx).await?;
        }
        for (batch, reason) in rejected {
            sqlx::query(
                "INSERT INTO rejected_batches (device_key, sequence, signature, reason, received_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (device_key, sequence, signature) DO NOTHING",
            )
            .bind(key_to_text(&batch.batch.device_key))
            .bind(batch.batch.sequence as i64)
            .bind(hex::encode(batch.signature))
            .bind(*reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every reading whose interval starts in `[start, end)`, oldest first.
    pub async fn readings_between(&self, start: i64, end: i64) -> Result<Vec<StoredReading>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM readings WHERE interval_start >= $1 AND interval_start < $2 ORDER BY interval_start, device_key")
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(reading_from_row).collect()
    }

    pub async fn reading_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM readings").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Lifetime rejection counts per (device, reason).
    pub async fn rejection_counts(&self) -> Result<Vec<(DeviceKey, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_key, reason, CAST(SUM(count) AS BIGINT) AS count FROM ( \
               SELECT device_key, reason, count FROM rejection_minutes \
               UNION ALL SELECT device_key, reason, 1 AS count FROM rejected_batches \
             ) AS all_rejections GROUP BY device_key, reason ORDER BY device_key, reason",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let key = key_from_text("rejection_minutes", &row.try_get::<String, _>("device_key")?)?;
                Ok((key, row.try_get("reason")?, row.try_get("count")?))
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
