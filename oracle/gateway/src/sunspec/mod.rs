//! SunSpec Modbus TCP: the register map most inverter, battery and meter vendors implement.
//! The map is discovered (the `SunS` marker at 40000, 0 or 50000, then the chain of models
//! to the end marker 0xFFFF); used here: model 1 (common: manufacturer, model, serial),
//! inverters 101-103 (power, lifetime energy, state, events), immediate controls 123
//! (output limit in % of rated power, with a revert timeout), storage 124 (state of charge,
//! charge/discharge control and rates, with a revert timeout) and meters 201-204 (energy
//! imported and exported). Point offsets count from the model's ID register, as in the
//! SunSpec model definitions (`pysunspec2`'s JSON, which the tests build their devices from).

mod points;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ovpp::state::DeviceKind;
use ovpp_wire::clock::unix_now;
use ovpp_wire::telemetry::{GridResponse, Reading};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::{Reader, Slave, Writer};

use crate::adapter::{Adapter, Refusal, SetPoint, Sink};
use crate::config::{DeviceSpec, SunSpecConfig, SunSpecKind};
use crate::register::{self, MeterCursor, Sample};
use crate::store::Record;
pub use points::Models;

/// A Modbus request without an answer in this long fails (the device is then offline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A set point's revert timeout runs this much past its end: the device falls back to
/// its own behaviour on its own if the gateway is gone.
const REVERT_MARGIN_SECS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    #[error("{0}")]
    Io(String),
    #[error("the device answered exception {0}")]
    Exception(String),
    #[error("no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("no SunSpec map (no \"SunS\" at 40000, 0 or 50000)")]
    NotSunSpec,
    #[error("{0}")]
    MissingModel(String),
}

/// An open connection and the map found on it.
struct Connection {
    ctx: Context,
    models: Models,
}

async fn read(ctx: &mut Context, address: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, ctx.read_holding_registers(address, count)).await {
        Err(_) => Err(ModbusError::Timeout),
        Ok(Err(e)) => Err(ModbusError::Io(e.to_string())),
        Ok(Ok(Err(code))) => Err(ModbusError::Exception(format!("{code:?}"))),
        // A short answer would otherwise index past its end (tokio-modbus checks the count
        // only with debug assertions).
        Ok(Ok(Ok(words))) if words.len() == usize::from(count) => Ok(words),
        Ok(Ok(Ok(words))) => Err(ModbusError::Io(format!("{} registers answered for {count} asked at {address}", words.len()))),
    }
}

async fn write(ctx: &mut Context, address: u16, words: &[u16]) -> Result<(), ModbusError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, ctx.write_multiple_registers(address, words)).await {
        Err(_) => Err(ModbusError::Timeout),
        Ok(Err(e)) => Err(ModbusError::Io(e.to_string())),
        Ok(Ok(Err(code))) => Err(ModbusError::Exception(format!("{code:?}"))),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

/// The model chain: `SunS`, then (ID, L, L registers) until ID 0xFFFF.
async fn discover(ctx: &mut Context) -> Result<Models, ModbusError> {
    for base in [40_000u16, 0, 50_000] {
        match read(ctx, base, 2).await {
            Ok(marker) if marker == [0x5375, 0x6e53] => {}
            Ok(_) | Err(ModbusError::Exception(_)) => continue,
            Err(e) => return Err(e),
        }
        let mut models = Models::default();
        let mut address = u32::from(base) + 2;
        // A bounded walk: a map cannot make the gateway read for ever.
        for _ in 0..128 {
            let Ok(at) = u16::try_from(address) else { break };
            let header = read(ctx, at, 2).await?;
            let (id, length) = (header[0], header[1]);
            if id == 0xFFFF {
                return Ok(models);
            }
            models.found(id, at, length);
            address += 2 + u32::from(length);
        }
        return Ok(models);
    }
    Err(ModbusError::NotSunSpec)
}

/// What the adapter knows of one device between polls.
#[derive(Default)]
struct Live {
    /// The window of the set point in force, as the device took it (read back).
    setpoint: Option<(i64, i64)>,
    /// Latest power (W, positive out of the device) and energy counters for storage,
    /// integrated from power: discharged, charged (Wh).
    power_w: f64,
    discharged_wh: f64,
    charged_wh: f64,
    last_poll: Option<i64>,
}

/// Cursors of the registers a device's readings come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cursors {
    /// Generation (inverter) or import (meter) or discharge (storage).
    first: Option<MeterCursor>,
    /// Export (meter) or charge (storage).
    second: Option<MeterCursor>,
}

pub struct SunSpecAdapter {
    devices: Vec<SunSpecConfig>,
    connections: HashMap<String, tokio::sync::Mutex<Option<Connection>>>,
    live: HashMap<String, Mutex<Live>>,
    online: HashMap<String, AtomicBool>,
}

impl SunSpecAdapter {
    pub fn new(devices: Vec<SunSpecConfig>) -> Self {
        let names = || devices.iter().map(|d| d.name.clone());
        Self {
            connections: names().map(|n| (n, tokio::sync::Mutex::new(None))).collect(),
            live: names().map(|n| (n, Mutex::default())).collect(),
            online: names().map(|n| (n, AtomicBool::new(false))).collect(),
            devices,
        }
    }

    fn config(&self, name: &str) -> Option<&SunSpecConfig> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Connects and discovers; the models the device's kind needs must be there.
    async fn connect(config: &SunSpecConfig) -> Result<Connection, ModbusError> {
        let address = tokio::net::lookup_host(&config.address)
            .await
            .map_err(|e| ModbusError::Io(format!("{}: {e}", config.address)))?
            .next()
            .ok_or_else(|| ModbusError::Io(format!("{}: no address", config.address)))?;
        let mut ctx = tokio::time::timeout(REQUEST_TIMEOUT, tokio_modbus::client::tcp::connect_slave(address, Slave(config.unit_id)))
            .await
            .map_err(|_| ModbusError::Timeout)?
            .map_err(|e| ModbusError::Io(format!("{}: {e}", config.address)))?;
        let models = discover(&mut ctx).await?;
        models.check(config.kind).map_err(ModbusError::MissingModel)?;
        Ok(Connection { ctx, models })
    }

    /// One device until the task ends: connect, poll, reconnect with backoff.
    async fn device(self: Arc<Self>, config: SunSpecConfig, sink: Sink) {
        let mut cursors: Cursors = sink.saved(&config.name).await.ok().flatten().unwrap_or_default();
        let mut backoff = crate::adapter::Backoff::default();
        loop {
            let outcome = self.session(&config, &sink, &mut cursors).await;
            // A session ends only by failing; one that had polled starts the waits afresh.
            let had_polled = self.online[&config.name].swap(false, Ordering::Relaxed);
            *self.connections[&config.name].lock().await = None;
            let wait = backoff.after(had_polled);
            if let Err(e) = outcome {
                tracing::warn!(device = %config.name, error = %e, retry_in_secs = wait.as_secs(), "SunSpec device unreachable");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Polls one connection until a request fails.
    async fn session(&self, config: &SunSpecConfig, sink: &Sink, cursors: &mut Cursors) -> Result<(), ModbusError> {
        let mut connection = Self::connect(config).await?;
        let identity = connection.models.identity(&mut connection.ctx).await.unwrap_or_default();
        tracing::info!(device = %config.name, identity = %identity, models = ?connection.models, "SunSpec device connected");
        *self.connections[&config.name].lock().await = Some(connection);
        let mut ticker = tokio::time::interval(Duration::from_secs(config.poll_secs));
        loop {
            ticker.tick().await;
            let polled = {
                let mut guard = self.connections[&config.name].lock().await;
                let connection = guard.as_mut().expect("set above");
                connection.models.poll(&mut connection.ctx, config.kind).await?
            };
            self.online[&config.name].store(true, Ordering::Relaxed);
            self.take(config, sink, cursors, polled).await.map_err(ModbusError::Io)?;
        }
    }

    /// One poll: the live state, and the readings it completes, committed with the cursors.
    async fn take(&self, config: &SunSpecConfig, sink: &Sink, cursors: &mut Cursors, p: points::Polled) -> Result<(), String> {
        let t = unix_now();
        let grid = i64::from(config.interval_secs);
        let (first, second) = {
            let mut live = self.live[&config.name].lock().expect("not poisoned");
            if let (Some(last), SunSpecKind::Battery) = (live.last_poll, config.kind) {
                // Storage counters from power (a battery inverter's own counter runs one way).
                let hours = (t - last).max(0) as f64 / 3600.0;
                live.discharged_wh += live.power_w.max(0.0) * hours;
                live.charged_wh += (-live.power_w).max(0.0) * hours;
            }
            live.last_poll = Some(t);
            live.power_w = p.power_w.unwrap_or(0.0);
            match config.kind {
                SunSpecKind::Solar => (p.energy_wh, None),
                SunSpecKind::Meter => (p.import_wh, p.export_wh),
                SunSpecKind::Battery => (Some(live.discharged_wh), Some(live.charged_wh)),
            }
        };
        let Some(first) = first else { return Ok(()) };
        let sample = |wh: f64| Sample { t, energy_wh: Some(wh), ..Sample::default() };
        let (firsts, first_next) = register::advance(cursors.first, &sample(first), grid);
        let (seconds, second_next) = register::advance(cursors.second, &sample(second.unwrap_or(0.0)), grid);
        let next = Cursors { first: first_next, second: second_next };
        if next == *cursors {
            return Ok(());
        }
        let mut records = Vec::new();
        for iv in &firsts {
            let other = seconds.iter().find(|s| s.start == iv.start).map_or(0, |s| s.energy_wh);
            records.push(Record { device: config.name.clone(), reading: Some(self.reading(config, iv, other, &p)), cursor: None });
        }
        records.push(Record::state(&config.name, &next));
        sink.record(records).await.map_err(|e| e.to_string())?;
        *cursors = next;
        Ok(())
    }

    fn reading(&self, config: &SunSpecConfig, iv: &register::Interval, other_wh: u32, p: &points::Polled) -> Reading {
        let live = self.live[&config.name].lock().expect("not poisoned");
        let rated = config.power_w as f64;
        let end = iv.start + i64::from(iv.secs);
        let following = live.setpoint.is_some_and(|(from, until)| from < end && end <= until);
        let grid_response = if p.fault {
            GridResponse::Fault
        } else if following {
            GridResponse::FollowingDispatch
        } else {
            GridResponse::Idle
        };
        let base = Reading { grid_response, ..Reading::empty(iv.start, iv.secs) };
        match config.kind {
            SunSpecKind::Meter => register::connection_reading(iv, other_wh),
            SunSpecKind::Solar => Reading {
                energy_generated_wh: iv.energy_wh,
                energy_exported_wh: iv.energy_wh,
                average_power_w: register::average_w(iv, i64::from(iv.energy_wh)),
                // Curtailable: what it produces now.
                flex_down_w: live.power_w.clamp(0.0, rated) as u32,
                ..base
            },
            SunSpecKind::Battery => {
                let (discharged, charged) = (iv.energy_wh, other_wh);
                let soc = p.soc_percent.map(|s| (s * 10.0).round().clamp(0.0, 1000.0) as u16);
                let (reserve, full) = (p.reserve_percent.unwrap_or(0.0), 100.0);
                let max_w = p.max_rate_w.unwrap_or(rated).min(rated);
                let out_w = live.power_w;
                Reading {
                    energy_imported_wh: charged,
                    energy_consumed_wh: charged,
                    energy_exported_wh: discharged,
                    average_power_w: register::average_w(iv, i64::from(discharged) - i64::from(charged)),
                    state_of_charge_permille: soc,
                    storage_available_wh: u32::try_from(config.capacity_wh).ok(),
                    flex_up_w: if p.soc_percent.is_some_and(|s| s > reserve) { (max_w - out_w.max(0.0)).max(0.0) as u32 } else { 0 },
                    flex_down_w: if p.soc_percent.is_some_and(|s| s < full) { (max_w + out_w.min(0.0)).max(0.0) as u32 } else { 0 },
                    ..base
                }
            }
        }
    }
}

#[async_trait]
impl Adapter for SunSpecAdapter {
    fn devices(&self) -> Vec<DeviceSpec> {
        self.devices
            .iter()
            .map(|d| DeviceSpec {
                name: d.name.clone(),
                kind: match d.kind {
                    SunSpecKind::Solar => DeviceKind::RooftopSolar,
                    SunSpecKind::Battery => DeviceKind::HomeBattery,
                    SunSpecKind::Meter => DeviceKind::SmartMeter,
                },
                rated_power_w: d.power_w,
                energy_capacity_wh: d.capacity_wh,
                region: d.region.clone(),
            })
            .collect()
    }

    async fn run(self: Arc<Self>, sink: Sink) -> anyhow::Result<()> {
        crate::adapter::each_device(self.devices.clone(), |config| self.clone().device(config, sink.clone())).await
    }

    async fn apply(&self, device: &str, setpoint: Option<&SetPoint>) -> Result<(), Refusal> {
        let config = self.config(device).ok_or_else(|| Refusal(format!("no SunSpec device {device}")))?;
        let mut guard = self.connections[device].lock().await;
        let Some(connection) = guard.as_mut() else { return Err(Refusal(format!("{device} is not connected"))) };
        let now = unix_now();
        let power_w = self.live[device].lock().expect("not poisoned").power_w;
        let command = points::Command::for_setpoint(config, power_w, setpoint, now).map_err(Refusal)?;
        connection.models.command(&mut connection.ctx, &command).await.map_err(|e| Refusal(format!("{device}: {e}")))?;
        self.live[device].lock().expect("not poisoned").setpoint = setpoint.map(|sp| (now.max(sp.valid_from), sp.valid_until));
        Ok(())
    }

    fn connected(&self, device: &str) -> bool {
        self.online.get(device).is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

pub(crate) fn revert_secs(until: i64, now: i64) -> u16 {
    u16::try_from((until - now).max(0) + REVERT_MARGIN_SECS).unwrap_or(u16::MAX)
}
