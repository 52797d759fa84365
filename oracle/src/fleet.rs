//! The live fleet map: each device's latest accepted reading, aggregated by region and by
//! kind on request.

use std::collections::{HashMap, VecDeque};

use tokio::sync::RwLock;

use crate::readings::StoredReading;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::telemetry::{Reading, SignedBatch};

use ovpp_wire::device::kind_name;
use ovpp_wire::http::{FleetGroup, FleetSummary};

#[derive(Clone, Copy, Debug)]
pub struct Latest {
    pub reading: Reading,
    pub received_at: i64,
}

/// Readings kept in memory per device for the device view (two hours of 5-minute ones).
pub const RECENT_READINGS: usize = 24;
/// How far back start-up reloads readings into memory.
pub const RECENT_WINDOW_SECS: i64 = 2 * 3600;

struct DeviceState {
    /// Oldest first, at most `RECENT_READINGS`.
    recent: VecDeque<Reading>,
    received_at: i64,
}

#[derive(Default)]
pub struct Fleet {
    devices: RwLock<HashMap<DeviceKey, DeviceState>>,
}

impl Fleet {
    /// From stored readings, oldest first (see `RECENT_WINDOW_SECS`).
    pub fn from_stored(readings: Vec<StoredReading>) -> Self {
        let mut devices = HashMap::new();
        for r in readings {
            push(&mut devices, r.device_key, std::iter::once(&r.reading), r.received_at);
        }
        Self { devices: RwLock::new(devices) }
    }

    pub async fn record(&self, accepted: &[&SignedBatch], now: i64) {
        let mut devices = self.devices.write().await;
        for batch in accepted {
            push(&mut devices, batch.batch.device_key, batch.batch.readings.iter(), now);
        }
    }

    /// Readings stored by any process (oldest first per device); those not newer than a
    /// device's latest are already here.
    pub async fn record_stored(&self, readings: Vec<StoredReading>) {
        if readings.is_empty() {
            return;
        }
        let mut devices = self.devices.write().await;
        for r in readings {
            push(&mut devices, r.device_key, std::iter::once(&r.reading), r.received_at);
        }
    }

    pub async fn latest(&self, key: &DeviceKey) -> Option<Latest> {
        let devices = self.devices.read().await;
        let state = devices.get(key)?;
        Some(Latest { reading: *state.recent.back()?, received_at: state.received_at })
    }

    /// The latest reading of each of `keys` (one lock for all of them).
    pub async fn latest_readings<'a>(&self, keys: impl Iterator<Item = &'a DeviceKey>) -> Vec<Option<Reading>> {
        let devices = self.devices.read().await;
        keys.map(|k| devices.get(k).and_then(|s| s.recent.back().copied())).collect()
    }

    /// The device's recent readings, newest first.
    pub async fn recent(&self, key: &DeviceKey) -> Vec<Reading> {
        self.devices.read().await.get(key).map(|s| s.recent.iter().rev().copied().collect()).unwrap_or_default()
    }

    /// Aggregates the active ones of `devices` (already filtered by the caller) as of `now`.
    pub async fn summary(&self, devices: &[RegisteredDevice], now: i64) -> FleetSummary {
        let devices_state = self.devices.read().await;
        let mut summary = FleetSummary { as_of: now, ..FleetSummary::default() };
        for device in devices.iter().filter(|d| d.profile.status == ovpp::state::DeviceStatus::Active) {
            let state = devices_state.get(&device.key).and_then(|s| s.recent.back()).filter(|r| is_online(r, now));
            for group in [
                &mut summary.totals,
                summary.by_region.entry(device.region.clone()).or_default(),
                summary.by_kind.entry(kind_name(device.kind()).to_string()).or_default(),
            ] {
                add(group, device, state);
            }
        }
        summary
    }
}

fn push<'a>(devices: &mut HashMap<DeviceKey, DeviceState>, key: DeviceKey, readings: impl Iterator<Item = &'a Reading>, received_at: i64) {
    let state = devices.entry(key).or_insert_with(|| DeviceState { recent: VecDeque::with_capacity(RECENT_READINGS), received_at });
    for reading in readings {
        // Intervals only move forward per device: an older or equal one was seen already.
        if state.recent.back().is_some_and(|last| last.interval_start >= reading.interval_start) {
            continue;
        }
        if state.recent.len() == RECENT_READINGS {
            state.recent.pop_front();
        }
        state.recent.push_back(*reading);
    }
    state.received_at = state.received_at.max(received_at);
}

/// Online: the device said so in a reading whose interval ended no more than two interval
/// lengths ago (silence means offline).
pub fn is_online(reading: &Reading, now: i64) -> bool {
    let end = reading.interval_start.saturating_add(i64::from(reading.interval_secs));
    reading.online && end >= now.saturating_sub(2 * i64::from(reading.interval_secs))
}

fn add(group: &mut FleetGroup, device: &RegisteredDevice, online: Option<&Reading>) {
    group.devices += 1;
    group.rated_power_w = group.rated_power_w.saturating_add(device.profile.rated_power_w);
    group.energy_capacity_wh = group.energy_capacity_wh.saturating_add(device.profile.energy_capacity_wh);
    let Some(r) = online else { return };
    group.devices_online += 1;
    group.flex_up_w = group.flex_up_w.saturating_add(u64::from(r.flex_up_w));
    group.flex_down_w = group.flex_down_w.saturating_add(u64::from(r.flex_down_w));
    let to_watts = |wh: u32| u64::from(wh) * 3600 / u64::from(r.interval_secs.max(1));
    group.generation_w = group.generation_w.saturating_add(to_watts(r.energy_generated_wh));
    group.load_w = group.load_w.saturating_add(to_watts(r.energy_consumed_wh));
    if let Some(soc) = r.state_of_charge_permille {
        let usable = r.storage_available_wh.map(u64::from).unwrap_or(device.profile.energy_capacity_wh);
        group.stored_energy_wh = group.stored_energy_wh.saturating_add(usable * u64::from(soc.min(1000)) / 1000);
        group.soc_histogram[usize::from(soc.min(999) / 200)] += 1;
    }
}
