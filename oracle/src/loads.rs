//! Daily load profiles (`migrations/sqlite/0010_daily_loads.sql`): per device and UTC day,
//! each reading's net import at its offset in the day. The leader rolls up every finished day
//! once; baselines then read the event's devices' history as one row a day each, and only
//! the days not rolled up (today, the event's own day, a day that took late readings) from the
//! readings. What they read is exactly what the readings say ([`Store::load_history`] equals
//! the readings' net imports; tested on both backends).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};

use crate::leader::Leadership;
use crate::readings::StoredReading;
use crate::store::{key_from_text, key_to_text, statement_chunks, Backend, Store, StoreError};
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::DeviceKey;
use ovpp_wire::telemetry::Reading;

/// One reading as a baseline sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub interval_start: i64,
    pub interval_secs: u32,
    /// Imported minus exported, Wh.
    pub net_wh: i64,
}

impl Load {
    pub fn of(reading: &Reading) -> Self {
        Self {
            interval_start: reading.interval_start,
            interval_secs: reading.interval_secs,
            net_wh: i64::from(reading.energy_imported_wh) - i64::from(reading.energy_exported_wh),
        }
    }

    /// As a stored reading carrying only what baselines read (net import as import or export).
    pub fn as_reading(&self, device_key: DeviceKey) -> StoredReading {
        let mut reading = Reading::empty(self.interval_start, self.interval_secs);
        reading.energy_imported_wh = self.net_wh.max(0) as u32;
        reading.energy_exported_wh = (-self.net_wh).max(0) as u32;
        StoredReading { device_key, reading, batch_sequence: 0, received_at: 0 }
    }
}

fn encode(day: i64, loads: &[Load]) -> String {
    loads.iter().map(|l| format!("{},{},{};", l.interval_start - day * 86_400, l.interval_secs, l.net_wh)).collect()
}

fn decode(day: i64, text: &str) -> Result<Vec<Load>, StoreError> {
    let corrupt = || StoreError::Corrupt { table: "daily_loads", detail: format!("bad profile of day {day}") };
    text.split_terminator(';')
        .map(|entry| {
            let mut parts = entry.split(',');
            let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(corrupt);
            let (offset, secs, net_wh) = (next()?, next()?, next()?);
            Ok(Load { interval_start: day * 86_400 + offset, interval_secs: u32::try_from(secs).map_err(|_| corrupt())?, net_wh })
        })
        .collect()
}

impl Store {
    /// Rolls up day `day` (unix time / 86400) from its readings: a profile for each device
    /// that has none yet (returns how many were made), then the day is marked done. In one transaction that reads the
    /// readings after taking the day's lock, which ingest takes (shared) to write a late
    /// reading of the day: either the reading is in the profile, or its transaction removes
    /// the profile after.
    pub async fn roll_up_day(&self, day: i64) -> Result<usize, StoreError> {
        let mut tx = self.writes.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT CAST(pg_advisory_xact_lock(3, CAST($1 AS INTEGER)) AS TEXT) AS locked").bind(day).execute(&mut *tx).await?;
        }
        let readings =
            sqlx::query("SELECT * FROM readings WHERE interval_start >= $1 AND interval_start < $2 ORDER BY interval_start, device_key")
                .bind(day * 86_400)
                .bind((day + 1) * 86_400)
                .fetch_all(&mut *tx)
                .await?;
        let mut by_device: HashMap<DeviceKey, Vec<Load>> = HashMap::new();
        for row in &readings {
            let r = crate::readings::reading_from_row(row)?;
            by_device.entry(r.device_key).or_default().push(Load::of(&r.reading));
        }
        let rows: Vec<(String, String)> = by_device.iter().map(|(key, loads)| (key_to_text(key), encode(day, loads))).collect();
        let mut made = 0;
        for chunk in statement_chunks(&rows, 256) {
            let sql = format!(
                "INSERT INTO daily_loads (device_key, day, loads) VALUES {} ON CONFLICT (device_key, day) DO NOTHING",
                self.backend.values(chunk.len(), 3, 0)
            );
            let insert =
                chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, (key, loads)| q.bind(key.as_str()).bind(day).bind(loads.as_str()));
            made += insert.execute(&mut *tx).await?.rows_affected();
        }
        sqlx::query("INSERT INTO daily_loads_done (day) VALUES ($1) ON CONFLICT (day) DO NOTHING").bind(day).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(made as usize)
    }

    /// The days with readings not rolled up that ended at least a day before `today` (a day
    /// of margin: ingest decides that a reading is late by its own clock, when its
    /// transaction begins), oldest first.
    pub async fn days_to_roll_up(&self, today: i64) -> Result<Vec<i64>, StoreError> {
        let Some(first) = sqlx::query_scalar::<_, Option<i64>>("SELECT MIN(interval_start) FROM readings").fetch_one(&self.pool).await?
        else {
            return Ok(vec![]);
        };
        let done: BTreeSet<i64> = sqlx::query_scalar("SELECT day FROM daily_loads_done WHERE day >= $1")
            .bind(first.div_euclid(86_400))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        Ok((first.div_euclid(86_400)..today - 1).filter(|d| !done.contains(d)).collect())
    }

    /// Inside ingest's transaction: the profiles of the days that take these readings now
    /// (only days already rolled up can be affected) no longer hold all of them.
    pub(crate) async fn invalidate_profiles(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        device_days: &BTreeSet<(String, i64)>,
    ) -> Result<(), StoreError> {
        let mut by_day: std::collections::BTreeMap<i64, Vec<&str>> = std::collections::BTreeMap::new();
        for (key, day) in device_days {
            by_day.entry(*day).or_default().push(key.as_str());
        }
        for (day, keys) in &by_day {
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT CAST(pg_advisory_xact_lock_shared(3, CAST($1 AS INTEGER)) AS TEXT) AS locked")
                    .bind(*day)
                    .execute(&mut **tx)
                    .await?;
            }
            for chunk in statement_chunks(keys, 256) {
                let sql = format!(
                    "DELETE FROM daily_loads WHERE day = {} AND device_key IN {}",
                    self.backend.param(1),
                    self.backend.values(1, chunk.len(), 1)
                );
                let delete = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)).bind(*day), |q, key| q.bind(*key));
                delete.execute(&mut **tx).await?;
            }
            sqlx::query("DELETE FROM daily_loads_done WHERE day = $1").bind(*day).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Every load of `devices` with an interval starting in `[start, end)`, per device in time
    /// order: from the profiles of rolled-up days, from the readings for the rest. All read in
    /// one snapshot, so a late reading that removes a profile meanwhile is seen either way.
    pub async fn load_history(&self, devices: &[DeviceKey], start: i64, end: i64) -> Result<HashMap<DeviceKey, Vec<Load>>, StoreError> {
        let mut out: HashMap<DeviceKey, Vec<Load>> = devices.iter().map(|k| (*k, Vec::new())).collect();
        if devices.is_empty() || start >= end {
            return Ok(out);
        }
        let mut tx = match self.backend {
            Backend::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
            // A read transaction in WAL mode reads one snapshot.
            Backend::Sqlite => self.pool.begin().await?,
        };
        let (first_day, last_day) = (start.div_euclid(86_400), (end - 1).div_euclid(86_400));
        let done: BTreeSet<i64> = sqlx::query_scalar("SELECT day FROM daily_loads_done WHERE day >= $1 AND day <= $2")
            .bind(first_day)
            .bind(last_day)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let keys: Vec<String> = devices.iter().map(key_to_text).collect();
        let mut loads: Vec<(DeviceKey, Load)> = Vec::new();
        for chunk in statement_chunks(&keys, 256) {
            let sql = format!(
                "SELECT device_key, day, loads FROM daily_loads WHERE day >= {} AND day <= {} AND device_key IN {}",
                self.backend.param(1),
                self.backend.param(2),
                self.backend.values(1, chunk.len(), 2)
            );
            let query = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)).bind(first_day).bind(last_day), |q, k| q.bind(k.as_str()));
            for row in query.fetch_all(&mut *tx).await? {
                let day: i64 = row.try_get("day")?;
                if !done.contains(&day) {
                    continue; // being rolled up again: the readings say it
                }
                let key = key_from_text("daily_loads", &row.try_get::<String, _>("device_key")?)?;
                loads.extend(decode(day, &row.try_get::<String, _>("loads")?)?.into_iter().map(|l| (key, l)));
            }
        }
        // Days not rolled up, read from the readings in runs of consecutive days.
        let mut day = first_day;
        while day <= last_day {
            if done.contains(&day) {
                day += 1;
                continue;
            }
            let run_start = day;
            while day <= last_day && !done.contains(&day) {
                day += 1;
            }
            let rows = sqlx::query(
                "SELECT * FROM readings WHERE interval_start >= $1 AND interval_start < $2 ORDER BY interval_start, device_key",
            )
            .bind((run_start * 86_400).max(start))
            .bind((day * 86_400).min(end))
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let r = crate::readings::reading_from_row(row)?;
                if out.contains_key(&r.device_key) {
                    loads.push((r.device_key, Load::of(&r.reading)));
                }
            }
        }
        tx.commit().await?;
        for (key, load) in loads {
            if load.interval_start >= start && load.interval_start < end {
                out.entry(key).or_default().push(load);
            }
        }
        for loads in out.values_mut() {
            loads.sort_by_key(|l| l.interval_start);
        }
        Ok(out)
    }
}

/// Rolls up the finished days every ten minutes, on the leader (a failure is logged and
/// retried); at most a week of days a round, oldest first, so a first run after an upgrade
/// catches up over a few rounds.
pub async fn run(store: Store, leader: std::sync::Arc<Leadership>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(600));
    loop {
        ticker.tick().await;
        if !leader.is_leader() {
            continue;
        }
        let today = unix_now().div_euclid(86_400);
        let days = match store.days_to_roll_up(today).await {
            Ok(days) => days,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the days to roll up; retrying in ten minutes");
                continue;
            }
        };
        for day in days.into_iter().take(7) {
            match store.roll_up_day(day).await {
                Ok(devices) => tracing::info!(day, devices, "daily load profiles rolled up"),
                Err(e) => {
                    tracing::warn!(day, error = %e, "rolling up daily load profiles failed; retrying in ten minutes");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_exactly() {
        let day = 20_000;
        let loads = vec![
            Load { interval_start: day * 86_400, interval_secs: 300, net_wh: 120 },
            Load { interval_start: day * 86_400 + 300, interval_secs: 300, net_wh: -4_000_000_000 },
            Load { interval_start: day * 86_400 + 86_100, interval_secs: 60, net_wh: 0 },
        ];
        assert_eq!(decode(day, &encode(day, &loads)).unwrap(), loads);
        assert!(decode(day, "1,2;").is_err());
        assert!(decode(day, "x,300,1;").is_err());
    }
}
