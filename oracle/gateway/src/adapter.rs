//! The one interface between the gateway's core and a device protocol: an adapter says
//! what its devices are, reads them (handing each reading to the [`Sink`], which returns
//! once it is on disk), and puts the oracle's set points into force in the device's own
//! protocol. One module per protocol implements it (`ocpp`, `sim`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;

use crate::config::DeviceSpec;
use crate::status::Metrics;
use crate::store::{Record, Store, StoreError};

/// A command of the oracle, for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetPoint {
    pub command_id: String,
    /// W: positive deliver (discharge, draw less), negative absorb (charge, draw more).
    pub setpoint_w: i64,
    pub valid_from: i64,
    pub valid_until: i64,
}

/// Why a device did not take a set point; sent to the oracle with the refusal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// Its devices, as their owners register them.
    fn devices(&self) -> Vec<DeviceSpec>;

    /// Keys the adapter brings (the simulated fleet's seeded ones); the gateway makes the
    /// others.
    fn own_keys(&self) -> Vec<(String, SigningKey)> {
        Vec::new()
    }

    /// Reads the devices until the task is dropped, every reading through `sink`.
    async fn run(self: Arc<Self>, sink: Sink) -> anyhow::Result<()>;

    /// Puts `setpoint` into force on `device` (`None`: back to its own behaviour). `Ok` only
    /// once the device itself has taken it.
    async fn apply(&self, device: &str, setpoint: Option<&SetPoint>) -> Result<(), Refusal>;

    /// Whether the device is reachable now.
    fn connected(&self, device: &str) -> bool;
}

/// Where adapters hand their readings over.
#[derive(Clone)]
pub struct Sink {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
}

impl Sink {
    /// Commits the readings (and cursors); returns once they are on disk, so the adapter
    /// may acknowledge them to the device.
    pub async fn record(&self, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let last: Vec<(String, i64)> = records
            .iter()
            .filter_map(|r| r.reading.as_ref().map(|reading| (r.device.clone(), reading.interval_start + i64::from(reading.interval_secs))))
            .collect();
        self.store.record(records).await?;
        self.metrics.recorded(&last);
        Ok(())
    }

    /// The adapter's saved state for `device` (written with its last reading, by
    /// [`Record::state`]); none when there is none or it no longer reads as a `T`.
    pub async fn saved<T: serde::de::DeserializeOwned>(&self, device: &str) -> Result<Option<T>, StoreError> {
        Ok(self.store.cursor(device).await?.and_then(|text| serde_json::from_str(&text).ok()))
    }
}

impl Record {
    /// The adapter's new state for `device`, committed with the readings before it.
    pub fn state(device: &str, state: &impl serde::Serialize) -> Self {
        Record { device: device.to_string(), reading: None, cursor: Some(serde_json::to_string(state).expect("adapter state serializes")) }
    }
}

/// Reconnection waits double from 1 s up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long a networked device's adapter waits before it connects again: 1 s after a
/// connection that ended, twice as long after each failure, up to a minute.
pub(crate) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_secs(1))
    }
}

impl Backoff {
    /// The wait after a connection that ended (`ok`) or failed.
    pub(crate) fn after(&mut self, ok: bool) -> Duration {
        if ok {
            self.0 = Duration::from_secs(1);
        }
        let wait = self.0;
        self.0 = (wait * 2).min(MAX_BACKOFF);
        wait
    }
}

/// One task per configured device, for as long as the adapter runs.
pub(crate) async fn each_device<C, F>(configs: Vec<C>, task: impl Fn(C) -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for config in configs {
        tasks.spawn(task(config));
    }
    while tasks.join_next().await.is_some() {}
    std::future::pending().await
}
