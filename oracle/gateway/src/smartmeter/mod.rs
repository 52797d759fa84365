//! Smart meters: a site's grid connection as its meter reports it, from the meter's own
//! interface (an optical or P1 port, read through a serial line or a TCP bridge such as
//! ser2net). Two formats: DSMR P1 telegrams (the Netherlands, Belgium, Luxembourg; text
//! with a CRC) and SML (Germany's smart meter language; binary, CRC-checked), each reduced
//! to the same [`Registers`]: import and export energy registers and the net power.

pub mod dsmr;
pub mod sml;

/// What one telegram or frame says about the grid connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Registers {
    /// Energy imported from the grid, all tariffs, Wh (a register: it only grows).
    pub import_wh: Option<f64>,
    /// Energy exported to the grid, all tariffs, Wh.
    pub export_wh: Option<f64>,
    /// Net active power now, W: positive while importing, negative while exporting.
    pub power_w: Option<f64>,
}

/// Why a telegram or frame was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MeterError {
    #[error("checksum mismatch: the telegram says {stated:04X}, its bytes give {computed:04X}")]
    Checksum { stated: u16, computed: u16 },
    #[error("malformed: {0}")]
    Malformed(String),
}

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ovpp::state::DeviceKind;
use ovpp_wire::clock::unix_now;
use tokio::io::AsyncReadExt;

use crate::adapter::{Adapter, Refusal, SetPoint, Sink};
use crate::config::{DeviceSpec, MeterConfig, MeterProtocol};
use crate::register::{self, MeterCursor, Sample};
use crate::store::Record;

/// A silent meter is reconnected after this long (meters send every 1 to 10 s).
const SILENCE: Duration = Duration::from_secs(60);

/// Import and export registers, each on the grid (both advance with the same samples).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cursors {
    import: Option<MeterCursor>,
    export: Option<MeterCursor>,
}

pub struct SmartMeterAdapter {
    meters: Vec<MeterConfig>,
    online: HashMap<String, AtomicBool>,
}

impl SmartMeterAdapter {
    pub fn new(meters: Vec<MeterConfig>) -> Self {
        let online = meters.iter().map(|m| (m.name.clone(), AtomicBool::new(false))).collect();
        Self { meters, online }
    }

    /// One meter until the task ends: connect, read, reconnect with backoff.
    async fn meter(self: Arc<Self>, config: MeterConfig, sink: Sink) {
        let mut cursors: Cursors = sink.saved(&config.name).await.ok().flatten().unwrap_or_default();
        let mut backoff = crate::adapter::Backoff::default();
        loop {
            let outcome = self.read(&config, &sink, &mut cursors).await;
            self.online[&config.name].store(false, Ordering::Relaxed);
            let wait = backoff.after(outcome.is_ok());
            if let Err(e) = outcome {
                tracing::warn!(meter = %config.name, error = %e, retry_in_secs = wait.as_secs(), "meter unreachable");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads one connection until it ends or falls silent; `Ok` if any telegram came.
    async fn read(&self, config: &MeterConfig, sink: &Sink, cursors: &mut Cursors) -> Result<(), String> {
        let mut stream: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match (&config.address, &config.path) {
            (Some(address), _) => Box::new(
                tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(address))
                    .await
                    .map_err(|_| format!("{address}: no connection in 10 s"))?
                    .map_err(|e| format!("{address}: {e}"))?,
            ),
            (None, Some(path)) => Box::new(tokio::fs::File::open(path).await.map_err(|e| format!("{}: {e}", path.display()))?),
            (None, None) => return Err("neither address nor path".into()),
        };
        let (mut dsmr, mut sml) = (dsmr::Reader::default(), sml::Reader::default());
        let mut buffer = vec![0u8; 4096];
        let mut heard = false;
        loop {
            let n = match tokio::time::timeout(SILENCE, stream.read(&mut buffer)).await {
                Ok(Ok(0)) => return if heard { Ok(()) } else { Err("the connection ended".into()) },
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("nothing for {} s", SILENCE.as_secs())),
            };
            let outcomes = match config.protocol {
                MeterProtocol::Dsmr => dsmr.push(&buffer[..n]),
                MeterProtocol::Sml => sml.push(&buffer[..n]),
            };
            for outcome in outcomes {
                match outcome {
                    Ok(registers) => {
                        if !heard {
                            tracing::info!(meter = %config.name, "meter connected");
                        }
                        heard = true;
                        self.online[&config.name].store(true, Ordering::Relaxed);
                        self.take(config, sink, cursors, registers).await?;
                    }
                    // A corrupted telegram is skipped; the next one carries the registers on.
                    Err(e) => tracing::info!(meter = %config.name, error = %e, "telegram refused"),
                }
            }
        }
    }

    /// One telegram's registers: the readings they complete, committed with the cursors.
    async fn take(&self, config: &MeterConfig, sink: &Sink, cursors: &mut Cursors, r: Registers) -> Result<(), String> {
        let Some(import) = r.import_wh else { return Ok(()) };
        let t = unix_now();
        let grid = i64::from(config.interval_secs);
        let sample = |wh: f64| Sample { t, energy_wh: Some(wh), ..Sample::default() };
        let (imports, import_next) = register::advance(cursors.import, &sample(import), grid);
        let (exports, export_next) = register::advance(cursors.export, &sample(r.export_wh.unwrap_or(0.0)), grid);
        let next = Cursors { import: import_next, export: export_next };
        if next == *cursors {
            return Ok(());
        }
        let mut records: Vec<Record> = Vec::new();
        for iv in &imports {
            let exported = exports.iter().find(|e| e.start == iv.start).map_or(0, |e| e.energy_wh);
            records.push(Record { device: config.name.clone(), reading: Some(register::connection_reading(iv, exported)), cursor: None });
        }
        records.push(Record::state(&config.name, &next));
        sink.record(records).await.map_err(|e| e.to_string())?;
        *cursors = next;
        Ok(())
    }
}

#[async_trait]
impl Adapter for SmartMeterAdapter {
    fn devices(&self) -> Vec<DeviceSpec> {
        self.meters
            .iter()
            .map(|m| DeviceSpec {
                name: m.name.clone(),
                kind: DeviceKind::SmartMeter,
                rated_power_w: m.power_w,
                energy_capacity_wh: 0,
                region: m.region.clone(),
            })
            .collect()
    }

    async fn run(self: Arc<Self>, sink: Sink) -> anyhow::Result<()> {
        crate::adapter::each_device(self.meters.clone(), |config| self.clone().meter(config, sink.clone())).await
    }

    async fn apply(&self, device: &str, _setpoint: Option<&SetPoint>) -> Result<(), Refusal> {
        Err(Refusal(format!("{device} is a meter: it measures, it cannot follow a set point")))
    }

    fn connected(&self, device: &str) -> bool {
        self.online.get(device).is_some_and(|f| f.load(Ordering::Relaxed))
    }
}
