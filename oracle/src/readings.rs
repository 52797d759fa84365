//! Stored telemetry: the readings, each device's cursor (what ingest accepted so far) and
//! the rejected batches, written by the ingest writer in one transaction per group.

use std::collections::HashMap;

use sqlx::{Any, AssertSqlSafe, Row};

use ovpp_wire::device::DeviceKey;
use ovpp_wire::telemetry::validate::DeviceCursor;
use ovpp_wire::telemetry::{GridResponse, Reading, SignedBatch};

use crate::accumulate::{accumulate, Accumulation};
use crate::store::{key_from_text, key_to_text, statement_chunks, Backend, Store, StoreError};

/// What one ingest transaction writes, as decided against the cursors it read.
#[derive(Default)]
pub struct GroupWrite<'a> {
    pub accepted: Vec<&'a SignedBatch>,
    /// Each device once, with its cursor after this group.
    pub cursors: Vec<(DeviceKey, DeviceCursor)>,
    /// Rejected batches held against their device, with the reason code.
    pub rejected: Vec<(&'a SignedBatch, &'static str)>,
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
    /// Commits one group of ingest requests. Inside one transaction: reads the ingest fence
    /// (the end of the latest epoch closed, see `fence_epoch`), locks the devices of
    /// `devices` against every other oracle process sharing the database (PostgreSQL; in
    /// SQLite the one writer connection already is the lock), reads their cursors, lets
    /// `decide` judge the batches against them and the fence, and writes what it decided: the accepted
    /// readings with their epoch accumulators, the new cursors, and the rejected batches
    /// (each once, however often it is sent). When this returns `Ok`, all of it is on disk;
    /// on `Err`, none of it is. A transaction that lost a race (deadlock, serialization) is
    /// retried with fresh cursors, which is why `decide` may run more than once.
    pub async fn commit_group<'a, T>(
        &self,
        devices: &[DeviceKey],
        now: i64,
        accumulation: &Accumulation,
        mut decide: impl FnMut(&HashMap<DeviceKey, DeviceCursor>, i64) -> (GroupWrite<'a>, T),
    ) -> Result<(GroupWrite<'a>, T), StoreError> {
        // Lock ids: the first four bytes of each key (sorted, so one global order; two devices
        // sharing an id only share a lock).
        let mut lock_ids: Vec<i32> = devices.iter().map(|k| i32::from_le_bytes([k[0], k[1], k[2], k[3]])).collect();
        lock_ids.sort_unstable();
        lock_ids.dedup();
        let mut keys: Vec<String> = devices.iter().map(key_to_text).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_commit_group(&keys, &lock_ids, now, accumulation, &mut decide).await {
                Err(StoreError::Database(e)) if attempt < 5 && is_lost_race(&e) => {
                    tracing::debug!(error = %e, attempt, "ingest transaction lost a race with another process; retrying");
                }
                result => return result,
            }
        }
    }

    async fn try_commit_group<'a, T>(
        &self,
        keys: &[String],
        lock_ids: &[i32],
        now: i64,
        accumulation: &Accumulation,
        decide: &mut impl FnMut(&HashMap<DeviceKey, DeviceCursor>, i64) -> (GroupWrite<'a>, T),
    ) -> Result<(GroupWrite<'a>, T), StoreError> {
        let mut tx = self.writes.begin().await?;
        if self.backend == Backend::Postgres {
            // Shared with every other ingest transaction, exclusive to moving the fence, in
            // the server's fair lock queue (see `fence_epoch`).
            sqlx::query("SELECT CAST(pg_advisory_xact_lock_shared(4, 0) AS TEXT) AS locked").execute(&mut *tx).await?;
            // Per-device locks in one global order (see `commit_group`).
            for chunk in statement_chunks(lock_ids, 1024) {
                let sql = format!(
                    "SELECT COUNT(pg_advisory_xact_lock(1, id)) FROM (SELECT id FROM (VALUES {}) AS v (id) ORDER BY id) AS sorted",
                    self.backend.values(chunk.len(), 1, 0)
                );
                let lock = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, id| q.bind(*id));
                lock.execute(&mut *tx).await?;
            }
        }
        let closed_until: i64 = sqlx::query_scalar("SELECT closed_until FROM ingest_fence WHERE id = 0").fetch_one(&mut *tx).await?;
        let mut cursors = HashMap::with_capacity(keys.len());
        // Key lists: one parameter a key, cheap to prepare in SQLite too.
        let keys_per_select = if self.backend == Backend::Sqlite { 256 } else { 1024 };
        for chunk in statement_chunks(keys, keys_per_select) {
            let sql = format!(
                "SELECT device_key, last_sequence, last_interval_end, last_signature FROM device_cursors WHERE device_key IN {}",
                self.backend.values(1, chunk.len(), 0)
            );
            let select = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, key| q.bind(key.as_str()));
            for row in select.fetch_all(&mut *tx).await? {
                let (key, cursor) = cursor_from_row(&row)?;
                cursors.insert(key, cursor);
            }
        }
        let (write, decided) = decide(&cursors, closed_until);
        if self.backend == Backend::Postgres {
            let starts: Vec<i64> = write.accepted.iter().flat_map(|b| b.batch.readings.iter().map(|r| r.interval_start)).collect();
            self.ensure_partitions(&starts).await?;
        }
        self.write_group(&mut tx, &write, now, accumulation).await?;
        tx.commit().await?;
        Ok((write, decided))
    }

    async fn write_group(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        write: &GroupWrite<'_>,
        now: i64,
        accumulation: &Accumulation,
    ) -> Result<(), StoreError> {
        // The key's text once per batch, not per reading.
        let keys: Vec<String> = write.accepted.iter().map(|b| key_to_text(&b.batch.device_key)).collect();
        let accumulated = i64::from(accumulation.schedule.is_some());
        let rows: Vec<(&str, u64, &Reading)> = write
            .accepted
            .iter()
            .zip(&keys)
            .flat_map(|(b, key)| b.batch.readings.iter().map(move |r| (key.as_str(), b.batch.sequence, r)))
            .collect();
        for chunk in statement_chunks(&rows, self.backend.rows_per_statement(17)) {
            let sql = format!(
                "INSERT INTO readings (device_key, interval_start, interval_secs, energy_generated_wh, energy_consumed_wh, \
                 energy_imported_wh, energy_exported_wh, average_power_w, soc_permille, storage_available_wh, flex_up_w, \
                 flex_down_w, grid_response, online, batch_sequence, received_at, accumulated) VALUES {}",
                self.backend.values(chunk.len(), 17, 0)
            );
            let insert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, &(key, sequence, r)| {
                q.bind(key)
                    .bind(r.interval_start)
                    .bind(i64::from(r.interval_secs))
                    .bind(i64::from(r.energy_generated_wh))
                    .bind(i64::from(r.energy_consumed_wh))
                    .bind(i64::from(r.energy_imported_wh))
                    .bind(i64::from(r.energy_exported_wh))
                    .bind(i64::from(r.average_power_w))
                    .bind(r.state_of_charge_permille.map(i64::from))
                    .bind(r.storage_available_wh.map(i64::from))
                    .bind(i64::from(r.flex_up_w))
                    .bind(i64::from(r.flex_down_w))
                    .bind(r.grid_response as i64)
                    .bind(i64::from(r.online))
                    .bind(sequence as i64)
                    .bind(now)
                    .bind(accumulated)
            });
            insert.execute(&mut **tx).await?;
        }
        // One multi-row upsert per chunk; each device once (its last cursor), as PostgreSQL
        // refuses to update one row twice in a statement.
        for chunk in statement_chunks(&write.cursors, self.backend.rows_per_statement(4)) {
            let sql = format!(
                "INSERT INTO device_cursors (device_key, last_sequence, last_interval_end, last_signature) VALUES {} \
                 ON CONFLICT (device_key) DO UPDATE SET last_sequence = excluded.last_sequence, \
                 last_interval_end = excluded.last_interval_end, last_signature = excluded.last_signature",
                self.backend.values(chunk.len(), 4, 0)
            );
            let upsert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, (key, cursor)| {
                q.bind(key_to_text(key))
                    .bind(cursor.last_sequence.unwrap_or_default() as i64)
                    .bind(cursor.last_interval_end.unwrap_or_default())
                    .bind(cursor.last_signature.map(hex::encode))
            });
            upsert.execute(&mut **tx).await?;
        }
        for (batch, reason) in &write.rejected {
            sqlx::query(
                "INSERT INTO rejected_batches (device_key, sequence, signature, reason, received_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (device_key, sequence, signature) DO NOTHING",
            )
            .bind(key_to_text(&batch.batch.device_key))
            .bind(batch.batch.sequence as i64)
            .bind(hex::encode(batch.signature))
            .bind(*reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        // Readings for a finished day: its rolled-up load profile of the device no longer
        // holds them all (see `loads`).
        let today = now.div_euclid(86_400);
        let late: std::collections::BTreeSet<(String, i64)> =
            rows.iter().map(|(key, _, r)| (key.to_string(), r.interval_start.div_euclid(86_400))).filter(|(_, day)| *day < today).collect();
        if !late.is_empty() {
            self.invalidate_profiles(tx, &late).await?;
        }
        if let Some(schedule) = &accumulation.schedule {
            let sums = accumulate(&write.accepted, schedule, accumulation.stress_hours_utc);
            self.add_to_accumulators(tx, &sums, accumulation.stress_hours_utc).await?;
        }
        Ok(())
    }

    /// Moves the ingest fence to `end_ts` (never backwards): once this returns, no process
    /// stores a reading starting before it. In PostgreSQL it waits for every ingest
    /// transaction that read the old fence; in SQLite it queues behind them on the writer.
    pub async fn fence_epoch(&self, end_ts: i64) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        self.move_fence(&mut tx, end_ts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the fence inside `tx`. PostgreSQL: under the fence lock held exclusively, which
    /// waits for the ingest transactions holding it shared and goes ahead of those that ask
    /// after it (a fair queue: a busy ingest cannot starve an epoch close).
    pub(crate) async fn move_fence(&self, tx: &mut sqlx::Transaction<'static, Any>, end_ts: i64) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT CAST(pg_advisory_xact_lock(4, 0) AS TEXT) AS locked").execute(&mut **tx).await?;
        }
        sqlx::query("UPDATE ingest_fence SET closed_until = $1 WHERE id = 0 AND closed_until < $1").bind(end_ts).execute(&mut **tx).await?;
        Ok(())
    }

    /// Where the ingest fence is now.
    pub async fn fence(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT closed_until FROM ingest_fence WHERE id = 0").fetch_one(&self.pool).await?)
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

    /// One device's readings whose interval starts in `[start, end)`, oldest first.
    pub async fn device_readings(&self, device: &DeviceKey, start: i64, end: i64) -> Result<Vec<StoredReading>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM readings WHERE device_key = $1 AND interval_start >= $2 AND interval_start < $3 ORDER BY interval_start",
        )
        .bind(key_to_text(device))
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(reading_from_row).collect()
    }

    /// Each device's latest reading among those received (by any process) at or after
    /// `since` (PostgreSQL: the server picks them, so a busy window is not sent over).
    pub async fn latest_received_since(&self, since: i64) -> Result<Vec<StoredReading>, StoreError> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT DISTINCT ON (device_key) * FROM readings WHERE received_at >= $1 ORDER BY device_key, interval_start DESC"
            }
            Backend::Sqlite => {
                "SELECT r.* FROM readings r JOIN (SELECT device_key, MAX(interval_start) AS latest FROM readings \
                 WHERE received_at >= $1 GROUP BY device_key) l ON r.device_key = l.device_key AND r.interval_start = l.latest"
            }
        };
        let rows = sqlx::query(sql).bind(since).fetch_all(&self.pool).await?;
        rows.iter().map(reading_from_row).collect()
    }

    /// Removes readings starting before `horizon` (a day boundary, from
    /// `retention::horizon`), the accumulators of epochs ended by then and the load profiles
    /// of the days before it. PostgreSQL drops
    /// whole day partitions. Returns how many readings (SQLite) or day partitions
    /// (PostgreSQL) were removed.
    pub async fn prune_readings(&self, horizon: i64) -> Result<u64, StoreError> {
        let removed = match self.backend {
            Backend::Sqlite => {
                sqlx::query("DELETE FROM readings WHERE interval_start < $1").bind(horizon).execute(&self.writes).await?.rows_affected()
            }
            Backend::Postgres => {
                let days = self.partition_days().await?;
                let mut dropped = 0;
                for day in days.into_iter().filter(|day| (day + 1) * 86_400 <= horizon) {
                    self.drop_partition(day).await?;
                    dropped += 1;
                }
                dropped
            }
        };
        sqlx::query("DELETE FROM epoch_accumulators WHERE end_ts <= $1").bind(horizon).execute(&self.writes).await?;
        // Load profiles of the pruned days too (a baseline never looks back past the horizon:
        // `retention::horizon` holds it for events still to be measured).
        let day = horizon.div_euclid(86_400);
        sqlx::query("DELETE FROM daily_loads WHERE day < $1").bind(day).execute(&self.writes).await?;
        sqlx::query("DELETE FROM daily_loads_done WHERE day < $1").bind(day).execute(&self.writes).await?;
        sqlx::query("DELETE FROM epoch_buckets WHERE end_ts <= $1").bind(horizon).execute(&self.writes).await?;
        Ok(removed)
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

fn cursor_from_row(row: &sqlx::any::AnyRow) -> Result<(DeviceKey, DeviceCursor), StoreError> {
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
}

/// A transaction that another process's transaction beat: PostgreSQL's deadlock and
/// serialization failures, and a unique violation (two processes inserting the same row).
fn is_lost_race(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code());
    matches!(code.as_deref(), Some("40001" | "40P01" | "23505"))
}

pub(crate) fn reading_from_row(row: &sqlx::any::AnyRow) -> Result<StoredReading, StoreError> {
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
