//! The registry's table: the devices last synced from chain, loaded at start-up so ingest
//! knows them before the first chain scan answers.

use anchor_lang::prelude::Pubkey;
use ovpp::state::{DeviceKind, DeviceStatus};
use std::str::FromStr;

use sqlx::{AssertSqlSafe, Row};

use ovpp_wire::device::RegisteredDevice;
use ovpp_wire::telemetry::validate::DeviceProfile;

use crate::store::{key_from_text, key_to_text, statement_chunks, Store, StoreError};

fn kind_from(i: i64) -> Option<DeviceKind> {
    use DeviceKind::*;
    [Ev, EvCharger, HomeBattery, CiStorage, RooftopSolar, SmartMeter, EnergyManagementSystem].get(usize::try_from(i).ok()?).copied()
}

fn status_from(i: i64) -> Option<DeviceStatus> {
    [DeviceStatus::Active, DeviceStatus::Suspended, DeviceStatus::Retired].get(usize::try_from(i).ok()?).copied()
}

impl Store {
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

    /// Stores the devices as synced from chain (many rows a statement: a registry sync may
    /// carry a million devices).
    pub async fn upsert_devices(&self, devices: &[RegisteredDevice], synced_at: i64) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        for chunk in statement_chunks(devices, self.backend.rows_per_statement(9)) {
            let sql = format!(
                "INSERT INTO devices (device_key, owner, kind, status, region, rated_power_w, energy_capacity_wh, location_cell, synced_at) \
                 VALUES {} ON CONFLICT (device_key) DO UPDATE SET owner = excluded.owner, status = excluded.status, region = excluded.region, \
                 rated_power_w = excluded.rated_power_w, energy_capacity_wh = excluded.energy_capacity_wh, \
                 location_cell = excluded.location_cell, synced_at = excluded.synced_at",
                self.backend.values(chunk.len(), 9, 0)
            );
            let upsert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, d| {
                q.bind(key_to_text(&d.key))
                    .bind(d.owner.to_string())
                    .bind(d.profile.kind as i64)
                    .bind(d.profile.status as i64)
                    .bind(d.region.clone())
                    .bind(d.profile.rated_power_w as i64)
                    .bind(d.profile.energy_capacity_wh as i64)
                    .bind(d.location_cell as i64)
                    .bind(synced_at)
            });
            upsert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
