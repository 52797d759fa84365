//! Incremental epoch inputs: ingest adds each accepted reading to its device's accumulator
//! for the epoch containing it (same transaction as the reading), so an epoch close reads
//! one row per device instead of every reading. The sums are exactly those of the scan over
//! readings (`Store::epoch_inputs_from_readings`); which path a close may take is decided in
//! `Store::epoch_inputs` (see `migrations/sqlite/0008_epoch_accumulators.sql`).

use std::collections::{HashMap, HashSet};

use sqlx::{Any, AssertSqlSafe, Row};

use ovpp_wire::device::DeviceKey;
use ovpp_wire::score::EpochInputs;
use ovpp_wire::telemetry::{GridResponse, SignedBatch};

use crate::store::{key_from_text, key_to_text, statement_chunks, Store, StoreError};

/// The chain's epoch schedule: epochs are `[s + k * len, s + (k + 1) * len)` for the
/// schedule's start `s` (see `ovpp::state::Config::epoch_end_ts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    pub start_ts: i64,
    pub length_secs: i64,
}

impl EpochSchedule {
    pub fn from_config(config: &ovpp::state::Config) -> Option<Self> {
        (config.epoch_length_secs > 0)
            .then(|| Self { start_ts: config.schedule_start_ts, length_secs: i64::from(config.epoch_length_secs) })
    }

    /// The epoch `[start, end)` containing `t`.
    pub fn bucket(&self, t: i64) -> (i64, i64) {
        let k = (t - self.start_ts).div_euclid(self.length_secs);
        let start = self.start_ts + k * self.length_secs;
        (start, start + self.length_secs)
    }
}

/// What ingest needs to keep accumulators: the schedule (unknown until the chain has been
/// read once: readings are then stored unaccumulated) and the rules' stress window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accumulation {
    pub schedule: Option<EpochSchedule>,
    pub stress_hours_utc: [u8; 2],
}

/// One device's sums in one epoch, in the units of the scan (`EpochInputs` before its
/// divisions by 3600).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub covered_secs: i64,
    pub online_secs: i64,
    pub generated_wh: i64,
    pub discharged_wh: i64,
    pub storage_wh_secs: i64,
    pub stress_flex_w_secs: i64,
    pub fault_intervals: i64,
    pub accepted_batches: i64,
    pub through_sequence: i64,
}

impl Sums {
    pub fn inputs(&self) -> Result<EpochInputs, StoreError> {
        let col = |name: &str, v: i64| {
            u64::try_from(v).map_err(|_| StoreError::Corrupt { table: "epoch_accumulators", detail: format!("negative {name}") })
        };
        Ok(EpochInputs {
            covered_secs: col("covered_secs", self.covered_secs)?,
            online_secs: col("online_secs", self.online_secs)?,
            generated_wh: col("generated_wh", self.generated_wh)?,
            discharged_wh: col("discharged_wh", self.discharged_wh)?,
            storage_available_wh_hours: col("storage_wh_secs", self.storage_wh_secs)? / 3600,
            stress_flex_wh: col("stress_flex_w_secs", self.stress_flex_w_secs)? / 3600,
            fault_intervals: col("fault_intervals", self.fault_intervals)?,
            demand_response_wh: 0,
            price_response_wh: None,
            accepted_batches: col("accepted_batches", self.accepted_batches)?,
            rejected_batches: 0,
            through_sequence: self.through_sequence as u64,
        })
    }
}

/// The accepted batches' readings summed per (epoch, device), exactly as the scan's SQL
/// sums them (integer arithmetic, SQL's `%` truncating toward zero like Rust's).
pub fn accumulate(
    accepted: &[&SignedBatch],
    schedule: &EpochSchedule,
    stress_hours_utc: [u8; 2],
) -> HashMap<((i64, i64), DeviceKey), Sums> {
    let (stress_from, stress_to) = (i64::from(stress_hours_utc[0]) * 3600, i64::from(stress_hours_utc[1]) * 3600);
    let mut out: HashMap<((i64, i64), DeviceKey), Sums> = HashMap::new();
    for batch in accepted {
        let mut touched = HashSet::new();
        for r in &batch.batch.readings {
            let bucket = schedule.bucket(r.interval_start);
            let sums = out.entry((bucket, batch.batch.device_key)).or_default();
            let secs = i64::from(r.interval_secs);
            sums.covered_secs += secs;
            if r.online {
                sums.online_secs += secs;
                if let Some(storage) = r.storage_available_wh {
                    sums.storage_wh_secs += i64::from(storage) * secs;
                }
                let day_secs = r.interval_start % 86_400;
                if day_secs >= stress_from && day_secs < stress_to {
                    sums.stress_flex_w_secs += (i64::from(r.flex_up_w) + i64::from(r.flex_down_w)) * secs;
                }
            }
            sums.generated_wh += i64::from(r.energy_generated_wh);
            sums.discharged_wh += i64::from(r.energy_exported_wh.saturating_sub(r.energy_generated_wh));
            sums.fault_intervals += i64::from(r.grid_response == GridResponse::Fault);
            sums.through_sequence = sums.through_sequence.max(batch.batch.sequence as i64);
            if touched.insert(bucket) {
                sums.accepted_batches += 1;
            }
        }
    }
    out
}

/// Columns of `epoch_accumulators` after the bucket and device.
const SUM_COLUMNS: [&str; 9] = [
    "covered_secs",
    "online_secs",
    "generated_wh",
    "discharged_wh",
    "storage_wh_secs",
    "stress_flex_w_secs",
    "fault_intervals",
    "accepted_batches",
    "through_sequence",
];

fn sums_from_row(row: &sqlx::any::AnyRow) -> Result<Sums, StoreError> {
    Ok(Sums {
        covered_secs: row.try_get("covered_secs")?,
        online_secs: row.try_get("online_secs")?,
        generated_wh: row.try_get("generated_wh")?,
        discharged_wh: row.try_get("discharged_wh")?,
        storage_wh_secs: row.try_get("storage_wh_secs")?,
        stress_flex_w_secs: row.try_get("stress_flex_w_secs")?,
        fault_intervals: row.try_get("fault_intervals")?,
        accepted_batches: row.try_get("accepted_batches")?,
        through_sequence: row.try_get("through_sequence")?,
    })
}

impl Store {
    /// Adds `sums` to the accumulators (inside ingest's transaction), registering each
    /// bucket used.
    pub(crate) async fn add_to_accumulators(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        sums: &HashMap<((i64, i64), DeviceKey), Sums>,
        stress_hours_utc: [u8; 2],
    ) -> Result<(), StoreError> {
        let (stress_from, stress_to) = (i64::from(stress_hours_utc[0]) * 3600, i64::from(stress_hours_utc[1]) * 3600);
        let buckets: HashSet<(i64, i64)> = sums.keys().map(|(bucket, _)| *bucket).collect();
        for (start, end) in buckets {
            sqlx::query(
                "INSERT INTO epoch_buckets (start_ts, end_ts, stress_from_s, stress_to_s) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(start)
            .bind(end)
            .bind(stress_from)
            .bind(stress_to)
            .execute(&mut **tx)
            .await?;
        }
        let rows: Vec<_> = sums.iter().collect();
        let added: String = SUM_COLUMNS[..8].iter().map(|c| format!("{c} = epoch_accumulators.{c} + excluded.{c}, ")).collect();
        let upsert_tail = format!(
            " ON CONFLICT (start_ts, end_ts, stress_from_s, stress_to_s, device_key) DO UPDATE SET {added}through_sequence = \
             CASE WHEN excluded.through_sequence > epoch_accumulators.through_sequence \
             THEN excluded.through_sequence ELSE epoch_accumulators.through_sequence END"
        );
        for chunk in statement_chunks(&rows, self.backend.rows_per_statement(14)) {
            let sql = format!(
                "INSERT INTO epoch_accumulators (start_ts, end_ts, stress_from_s, stress_to_s, device_key, {}) VALUES {}{upsert_tail}",
                SUM_COLUMNS.join(", "),
                self.backend.values(chunk.len(), 14, 0)
            );
            let upsert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, (((start, end), key), s)| {
                q.bind(*start)
                    .bind(*end)
                    .bind(stress_from)
                    .bind(stress_to)
                    .bind(key_to_text(key))
                    .bind(s.covered_secs)
                    .bind(s.online_secs)
                    .bind(s.generated_wh)
                    .bind(s.discharged_wh)
                    .bind(s.storage_wh_secs)
                    .bind(s.stress_flex_w_secs)
                    .bind(s.fault_intervals)
                    .bind(s.accepted_batches)
                    .bind(s.through_sequence)
            });
            upsert.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The accumulators of epoch `[start, end)`, if they hold all of its readings: exactly
    /// one bucket overlaps the epoch, it is the epoch with this stress window, and no reading
    /// of the epoch was stored unaccumulated. `None`: the epoch must be read from readings.
    pub async fn accumulated_inputs(
        &self,
        start: i64,
        end: i64,
        stress_hours_utc: [u8; 2],
    ) -> Result<Option<HashMap<DeviceKey, Sums>>, StoreError> {
        let (stress_from, stress_to) = (i64::from(stress_hours_utc[0]) * 3600, i64::from(stress_hours_utc[1]) * 3600);
        let buckets =
            sqlx::query("SELECT start_ts, end_ts, stress_from_s, stress_to_s FROM epoch_buckets WHERE start_ts < $1 AND end_ts > $2")
                .bind(end)
                .bind(start)
                .fetch_all(&self.pool)
                .await?;
        let only_this = match buckets.as_slice() {
            [] => true, // no reading accumulated in the epoch (checked below that none is unaccumulated either)
            [b] => {
                (b.try_get::<i64, _>(0)?, b.try_get::<i64, _>(1)?, b.try_get::<i64, _>(2)?, b.try_get::<i64, _>(3)?)
                    == (start, end, stress_from, stress_to)
            }
            _ => false,
        };
        if !only_this {
            return Ok(None);
        }
        let unaccumulated =
            sqlx::query("SELECT 1 AS one FROM readings WHERE interval_start >= $1 AND interval_start < $2 AND accumulated = 0 LIMIT 1")
                .bind(start)
                .bind(end)
                .fetch_optional(&self.pool)
                .await?;
        if unaccumulated.is_some() {
            return Ok(None);
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT device_key, {} FROM epoch_accumulators WHERE start_ts = $1 AND end_ts = $2 AND stress_from_s = $3 AND stress_to_s = $4",
            SUM_COLUMNS.join(", ")
        )))
        .bind(start)
        .bind(end)
        .bind(stress_from)
        .bind(stress_to)
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            out.insert(key_from_text("epoch_accumulators", &row.try_get::<String, _>("device_key")?)?, sums_from_row(row)?);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_schedule_on_both_sides_of_its_start() {
        let s = EpochSchedule { start_ts: 1_000, length_secs: 300 };
        assert_eq!(s.bucket(1_000), (1_000, 1_300));
        assert_eq!(s.bucket(1_299), (1_000, 1_300));
        assert_eq!(s.bucket(1_300), (1_300, 1_600));
        assert_eq!(s.bucket(999), (700, 1_000));
        assert_eq!(s.bucket(-5), (-200, 100));
    }
}
