//! Wiring: storage, registry, fleet, ingest and the HTTP API, plus the periodic registry
//! sync. Used by `ovpp-oracle serve` and, with another chain, by tests and the demo.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::fleet::{Fleet, RECENT_WINDOW_SECS};
use crate::ingest::Ingestor;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::server::AppState;
use crate::store::Store;
use crate::tasks::Tasks;
use ovpp_chain::Chain;
use ovpp_wire::clock::unix_now;
use ovpp_wire::telemetry::validate::Policy;

/// Opens the store, restores the cached registry and fleet, starts the ingest writer and
/// the registry sync task.
pub async fn start(
    database_url: &str,
    chain: Arc<dyn Chain>,
    policy: Policy,
    registry_refresh: Duration,
    dispatch: DispatchSettings,
) -> anyhow::Result<AppState> {
    let store = Store::open(database_url).await.with_context(|| format!("opening database {database_url}"))?;
    let registry = Arc::new(Registry::new(chain.clone(), store.devices().await?));
    let fleet = Arc::new(Fleet::from_stored(store.readings_between(unix_now() - RECENT_WINDOW_SECS, i64::MAX).await?));
    let metrics = Arc::new(Metrics::default());
    let tasks = Arc::new(Tasks::default());
    // Ingest refuses intervals of epochs already closed here (their reports are published).
    let closed_until = store.epochs(1).await?.first().map_or(i64::MIN, |e| e.end_ts);
    let ingestor = Ingestor::start(store.clone(), registry.clone(), fleet.clone(), metrics.clone(), policy, closed_until, &tasks).await?;
    tasks.spawn("registry_sync", sync_registry(registry.clone(), store.clone(), registry_refresh));
    let dispatch = Arc::new(Dispatcher::load(store.clone(), registry.clone(), fleet.clone(), dispatch, unix_now()).await?);
    tasks.spawn("dispatch", run_dispatch(dispatch.clone()));
    Ok(AppState { ingestor, registry, fleet, store, metrics, proofs: Default::default(), chain, dispatch, tasks })
}

/// Dispatch rounds every `tick_secs`; a failed round (storage) is logged and retried.
async fn run_dispatch(dispatch: Arc<Dispatcher>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(dispatch.settings.tick_secs.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = dispatch.tick(unix_now()).await {
            tracing::warn!(error = %e, "dispatch round failed; retrying next round");
        }
    }
}

/// Refreshes the registry now and then every `period`; a failed sync keeps the last known
/// registry (ingest goes on with it) and is retried next period.
async fn sync_registry(registry: Arc<Registry>, store: Store, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        match registry.refresh().await {
            Ok(devices) => {
                if let Err(e) = store.upsert_devices(&devices, unix_now()).await {
                    tracing::warn!(error = %e, "could not persist the synced registry");
                }
                tracing::debug!(devices = devices.len(), "registry synced from chain");
            }
            Err(e) => {
                tracing::warn!(error = %e, "registry sync failed; keeping the last known registry")
            }
        }
    }
}
