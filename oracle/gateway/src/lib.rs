//! `ovpp-gateway`: where real devices join the network. Adapters speak each device's own
//! protocol (OCPP 1.6J and 2.0.1 for EV chargers; the simulated fleet); the core keeps one
//! ed25519 key per device, buffers every reading on disk before the device is answered,
//! sends signed batches to every oracle, and turns the dispatching oracle's set points back
//! into the device's protocol, answering each with the device key.
//!
//! The gateway depends on the wire crate only (`ovpp-wire`), never on the oracle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub mod adapter;
pub mod config;
pub mod keys;
pub mod ocpp;
pub mod register;
pub mod sim;
pub mod smartmeter;
pub mod status;
pub mod store;
pub mod sunspec;
pub mod uplink;

use adapter::{Adapter, Sink};
use config::{Config, DeviceSpec};
use keys::KeyStore;
use status::Metrics;
use store::Store;
use uplink::Uplink;

pub struct Gateway {
    pub config: Config,
    pub keys: KeyStore,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub uplink: Uplink,
    pub adapters: Vec<Arc<dyn Adapter>>,
    /// Every device, with the index of its adapter.
    pub devices: Vec<(DeviceSpec, usize)>,
}

/// The adapters `config` asks for.
pub fn adapters(config: &Config) -> anyhow::Result<Vec<Arc<dyn Adapter>>> {
    let mut adapters: Vec<Arc<dyn Adapter>> = Vec::new();
    if let Some(ocpp) = &config.ocpp {
        adapters.push(Arc::new(ocpp::OcppAdapter::new(ocpp.clone())?));
    }
    if let Some(sim) = &config.simulator {
        adapters.push(Arc::new(sim::SimAdapter::from_config(sim)));
    }
    if !config.meters.is_empty() {
        adapters.push(Arc::new(smartmeter::SmartMeterAdapter::new(config.meters.clone())));
    }
    if !config.sunspec.is_empty() {
        adapters.push(Arc::new(sunspec::SunSpecAdapter::new(config.sunspec.clone())));
    }
    Ok(adapters)
}

impl Gateway {
    /// Keys (made for every device that has none), the buffer, and the device list.
    pub async fn open(config: Config, adapters: Vec<Arc<dyn Adapter>>) -> anyhow::Result<Arc<Self>> {
        config.check()?;
        let mut devices = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, adapter) in adapters.iter().enumerate() {
            for spec in adapter.devices() {
                anyhow::ensure!(seen.insert(spec.name.clone()), "two devices are called {}", spec.name);
                devices.push((spec, i));
            }
        }
        std::fs::create_dir_all(&config.state_dir).with_context(|| format!("creating {}", config.state_dir.display()))?;
        // The device keys live here: the owner's only.
        #[cfg(unix)]
        std::fs::set_permissions(&config.state_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", config.state_dir.display()))?;
        let imported: Vec<(String, ed25519_dalek::SigningKey)> = adapters.iter().flat_map(|a| a.own_keys()).collect();
        let imported_names: std::collections::HashSet<&String> = imported.iter().map(|(n, _)| n).collect();
        let made = devices.iter().map(|(s, _)| s.name.clone()).filter(|n| !imported_names.contains(n)).collect::<Vec<_>>();
        let mut keys = KeyStore::open(&config.state_dir, made)?;
        for (name, key) in imported {
            keys.import(&name, key)?;
        }
        let store = Store::open(&config.state_dir.join("buffer.db"), config.oracle_urls.clone()).await?;
        Ok(Arc::new(Self { config, keys, store, metrics: Arc::default(), uplink: Uplink::default(), adapters, devices }))
    }

    /// Every device's public key and declared parameters; with `out`, each keypair copied
    /// there (mode 0600, an existing file kept) with the `ovpp device register` command that
    /// registers it, as its owner runs it.
    pub fn export_keys(&self, out: Option<&std::path::Path>) -> Result<Vec<keys::KeyExport>, keys::KeyError> {
        if let Some(dir) = out {
            std::fs::create_dir_all(dir).map_err(|source| keys::KeyError::Io { path: dir.display().to_string(), source })?;
        }
        let mut rows = Vec::new();
        for (spec, _) in &self.devices {
            let Some(signing) = self.keys.get(&spec.name) else { continue };
            let device_key = bs58::encode(signing.verifying_key().as_bytes()).into_string();
            let kind = ovpp_wire::device::kind_name(spec.kind);
            let (mut keypair, mut register) = (None, None);
            if let Some(dir) = out {
                let file = dir.join(format!("{device_key}.json"));
                if !file.exists() {
                    keys::write_keypair(&file, signing)?;
                }
                // The CLI takes powers and energies with their units only, and kinds in
                // kebab case (`ev-charger`; the wire's JSON says `ev_charger`).
                let cli_kind = kind.replace('_', "-");
                let capacity = match spec.energy_capacity_wh {
                    0 => String::new(),
                    wh => format!(" --capacity {wh}Wh"),
                };
                register = Some(format!(
                    "ovpp -k <owner keypair> device register --device-keypair {} --kind {cli_kind} --power {}W{capacity} --region {}",
                    file.display(),
                    spec.rated_power_w,
                    spec.region
                ));
                keypair = Some(file);
            }
            rows.push(keys::KeyExport {
                name: spec.name.clone(),
                device_key,
                kind,
                power_w: spec.rated_power_w,
                capacity_wh: spec.energy_capacity_wh,
                region: spec.region.clone(),
                keypair,
                register,
            });
        }
        Ok(rows)
    }

    /// Runs the adapters, the senders and the command loop, and serves the status, until
    /// `stop` resolves. Readings in the buffer stay there for the next run.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.config.status_listen)
            .await
            .with_context(|| format!("binding the status address {}", self.config.status_listen))?;
        tracing::info!(address = %listener.local_addr()?, "status and metrics");
        let mut tasks = tokio::task::JoinSet::new();
        let router = status::router(self.clone());
        tasks.spawn(async move { axum::serve(listener, router).await.context("the status server") });
        for adapter in &self.adapters {
            let sink = Sink { store: self.store.clone(), metrics: self.metrics.clone() };
            tasks.spawn(adapter.clone().run(sink));
        }
        for oracle in self.config.oracle_urls.clone() {
            let gw = self.clone();
            tasks.spawn(async move {
                let period = Duration::from_secs(gw.config.send_secs);
                loop {
                    let outcome = gw.uplink.send_round(&gw, &oracle).await;
                    if let Err(e) = &outcome {
                        tracing::warn!(oracle = %oracle, error = %e, "could not send; the readings stay buffered");
                    }
                    gw.metrics.oracle_error(&oracle, outcome.err());
                    tokio::time::sleep(period).await;
                }
            });
        }
        let gw = self.clone();
        tasks.spawn(async move {
            let mut applied = HashMap::new();
            let mut ticker = tokio::time::interval(Duration::from_secs(gw.config.command_poll_secs));
            loop {
                ticker.tick().await;
                if let Err(e) = gw.uplink.command_round(&gw, &mut applied).await {
                    tracing::warn!(error = %e, "could not fetch commands; devices keep what they were told");
                }
            }
        });
        tokio::select! {
            _ = stop => Ok(()),
            Some(ended) = tasks.join_next() => {
                match ended {
                    Ok(Ok(())) => anyhow::bail!("a gateway task ended"),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(anyhow::anyhow!("a gateway task failed: {e}")),
                }
            }
        }
    }
}
