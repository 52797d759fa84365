//! The weather input: a region's hourly outdoor temperatures, which grid operators feed
//! (`PUT /v1/regions/{region}/temperatures`) and the regression baseline reads. Stored to the
//! thousandth of a degree, so every oracle measures with the same numbers.

use sqlx::{AssertSqlSafe, Row};

use crate::dispatch::regression::Temperatures;
use crate::store::{statement_chunks, Store, StoreError};
use ovpp_wire::dispatch::weather::HourlyTemperature;

impl Store {
    /// Stores (or replaces) `hours` of `region`.
    pub async fn put_temperatures(&self, region: &str, hours: &[HourlyTemperature]) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        for chunk in statement_chunks(hours, 256) {
            let sql = format!(
                "INSERT INTO temperatures (region, hour_start, millicelsius) VALUES {} \
                 ON CONFLICT (region, hour_start) DO UPDATE SET millicelsius = excluded.millicelsius",
                self.backend.values(chunk.len(), 3, 0)
            );
            let insert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, h| q.bind(region).bind(h.start).bind(h.millicelsius()));
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `region`'s hours starting in `[from, to)`, oldest first.
    pub async fn temperatures(&self, region: &str, from: i64, to: i64) -> Result<Vec<HourlyTemperature>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour_start, millicelsius FROM temperatures WHERE region = $1 AND hour_start >= $2 AND hour_start < $3 ORDER BY hour_start",
        )
        .bind(region)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HourlyTemperature { start: r.try_get("hour_start")?, celsius: r.try_get::<i64, _>("millicelsius")? as f64 / 1000.0 })
            })
            .collect()
    }

    /// As [`Self::temperatures`], by hour start, for a baseline.
    pub async fn temperature_map(&self, region: &str, from: i64, to: i64) -> Result<Temperatures, StoreError> {
        Ok(self.temperatures(region, from, to).await?.into_iter().map(|h| (h.start, h.celsius)).collect())
    }
}
