//! Wiring: storage, registry, fleet, ingest and the HTTP API, plus the periodic registry
//! sync. Used by `ovpp-oracle serve` and, with another chain, by tests and the demo.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::accumulate::EpochSchedule;
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::fleet::{Fleet, RECENT_WINDOW_SECS};
use crate::ingest::Ingestor;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::server::AppState;
use crate::store::Store;
use crate::tasks::Tasks;
use ovpp_chain::Chain;
use ovpp_wire::clock::unix_now;
use ovpp_wire::telemetry::validate::Policy;

/// What a service runs with besides its database and chain.
#[derive(Clone, Debug)]
pub struct Options {
    pub policy: Policy,
    pub registry_refresh: Duration,
    pub dispatch: DispatchSettings,
    /// The scoring rules' stress window, for the epoch accumulators ingest keeps.
    pub stress_hours_utc: [u8; 2],
    /// Prune readings older than this many days (on the leader; see `retention`).
    pub keep_readings_days: Option<i64>,
    /// OAuth2 clients of the OpenADR 3 VTN.
    pub openadr_clients: Vec<crate::openadr::Client>,
    /// The VTNs this oracle is a VEN of.
    pub vtns: Vec<crate::openadr::ven::VtnSettings>,
    /// Webhook notifications may go to loopback and private addresses.
    pub openadr_private_callbacks: bool,
    /// The Wallet Standard chain the wallet pages ask wallets for (`solana:localnet`,
    /// `solana:devnet`, `solana:mainnet`): the cluster this oracle reads.
    pub wallet_chain: String,
    /// Where people open the pages (`--public-url`); without it wallet sign-in is off.
    pub public_url: Option<String>,
}

/// The Wallet Standard chain of a cluster URL.
pub fn wallet_chain(rpc_url: &str) -> String {
    let chain = ["devnet", "testnet", "mainnet"].into_iter().find(|c| rpc_url.contains(c)).unwrap_or("localnet");
    format!("solana:{chain}")
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            registry_refresh: Duration::from_secs(60),
            dispatch: DispatchSettings::default(),
            stress_hours_utc: ovpp_wire::score::ScoringRules::default().stress_hours_utc,
            keep_readings_days: None,
            openadr_clients: vec![],
            vtns: vec![],
            openadr_private_callbacks: false,
            wallet_chain: "solana:localnet".into(),
            public_url: None,
        }
    }
}

/// Opens the store, restores the cached registry and fleet, starts the ingest writer, the
/// registry sync and the dispatch rounds; with a shared (PostgreSQL) database also the
/// contest for leadership and the fleet's follow of what other processes accept.
pub async fn start(database_url: &str, chain: Arc<dyn Chain>, options: Options) -> anyhow::Result<AppState> {
    let store = Store::open(database_url).await.with_context(|| format!("opening database {database_url}"))?;
    let registry = Arc::new(Registry::new(chain.clone(), store.devices().await?));
    let fleet = Arc::new(Fleet::from_stored(store.readings_between(unix_now() - RECENT_WINDOW_SECS, i64::MAX).await?));
    let metrics = Arc::new(Metrics::default());
    let tasks = Arc::new(Tasks::default());
    // Ingest refuses intervals of epochs already closed (their reports are published).
    let closed_until = store.fence().await?;
    let ingestor = Ingestor::start(
        store.clone(),
        registry.clone(),
        fleet.clone(),
        metrics.clone(),
        options.policy,
        closed_until,
        options.stress_hours_utc,
        &tasks,
    );
    tasks.spawn("registry_sync", sync_registry(registry.clone(), store.clone(), ingestor.clone(), chain.clone(), options.registry_refresh));
    let leader = Arc::new(match store.is_shared() {
        false => Leadership::sole(),
        true => Leadership::contended(),
    });
    if store.is_shared() {
        let (contender, store_for_lock) = (leader.clone(), store.clone());
        tasks.spawn("leadership", async move { contender.run(store_for_lock).await });
        tasks.spawn("fleet_follow", follow_readings(fleet.clone(), store.clone()));
    }
    tasks.spawn("load_profiles", crate::loads::run(store.clone(), leader.clone()));
    if let Some(days) = options.keep_readings_days {
        tasks.spawn("retention", crate::retention::run(store.clone(), leader.clone(), days));
    }
    let dispatch = Arc::new(Dispatcher::load(store.clone(), registry.clone(), fleet.clone(), options.dispatch, unix_now()).await?);
    tasks.spawn("dispatch", run_dispatch(dispatch.clone(), leader.clone(), store.is_shared()));
    let openadr = Arc::new(crate::openadr::Vtn::new(
        store.clone(),
        options.openadr_clients.clone(),
        options.vtns.clone(),
        options.openadr_private_callbacks,
    ));
    for ven in &openadr.vens {
        tasks.spawn("openadr_ven", crate::openadr::ven::run(ven.clone(), dispatch.clone(), store.clone(), leader.clone()));
    }
    let sessions = Arc::new(crate::sessions::Sessions::load(&store).await?);
    Ok(AppState {
        ingestor,
        registry,
        fleet,
        store,
        metrics,
        proofs: Default::default(),
        chain,
        dispatch,
        tasks,
        leader,
        openadr,
        sessions,
        ui: Default::default(),
        wallet_chain: options.wallet_chain,
        public_url: options.public_url,
    })
}

/// How often a process sharing its database reads the readings others accepted, and how far
/// back each read reaches (a reading's `received_at` is taken when its transaction begins,
/// which may commit a little later).
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
const FOLLOW_OVERLAP_SECS: i64 = 10;

/// Keeps the live fleet view current with the latest reading of each device, whichever
/// process accepted it.
async fn follow_readings(fleet: Arc<Fleet>, store: Store) {
    let mut since = unix_now();
    let mut ticker = tokio::time::interval(FOLLOW_EVERY);
    loop {
        ticker.tick().await;
        let now = unix_now();
        match store.latest_received_since(since - FOLLOW_OVERLAP_SECS).await {
            Ok(readings) => {
                fleet.record_stored(readings).await;
                since = now;
            }
            Err(e) => tracing::warn!(error = %e, "could not read the readings other processes accepted; retrying"),
        }
    }
}

/// Dispatch rounds every `tick_secs`, on the leader; a failed round (storage) is logged and
/// retried. With a shared database every process first takes in what the others stored
/// (events and programs from the grid, acks, preferences, the leader's commands), so that it
/// answers devices and the grid API like the leader.
async fn run_dispatch(dispatch: Arc<Dispatcher>, leader: Arc<Leadership>, shared: bool) {
    let mut ticker = tokio::time::interval(Duration::from_secs(dispatch.settings.tick_secs.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = unix_now();
        if shared {
            if let Err(e) = dispatch.sync_from_store(now).await {
                tracing::warn!(error = %e, "could not read dispatch state from the database; retrying next round");
                continue;
            }
        }
        if leader.is_leader() {
            if let Err(e) = dispatch.tick(now).await {
                tracing::warn!(error = %e, "dispatch round failed; retrying next round");
            }
        }
    }
}

/// Refreshes the registry (and the epoch schedule ingest accumulates by) now and then every
/// `period`; a failed sync keeps the last known registry (ingest goes on with it) and is
/// retried next period.
async fn sync_registry(registry: Arc<Registry>, store: Store, ingestor: Ingestor, chain: Arc<dyn Chain>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        match ovpp_chain::accounts::config(chain.as_ref()).await {
            Ok(Some(config)) => {
                if let Some(schedule) = EpochSchedule::from_config(&config) {
                    ingestor.set_schedule(schedule);
                }
            }
            Ok(None) => tracing::debug!("no program config on chain yet: readings are stored without epoch accumulators"),
            Err(e) => tracing::warn!(error = %e, "could not read the epoch schedule from chain; retrying next sync"),
        }
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
