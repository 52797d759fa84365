//! `ovpp-localnet`: a whole OpenVPP network on one machine, in one command. A local
//! chain (surfpool's Solana JSON-RPC and PubSub over LiteSVM, the program running in it
//! natively; see [`chain`]), initialized with this oracle as its oracle set; the oracle (ingest, fleet view, epochs,
//! relaying, proofs) on SQLite; a simulated fleet registered on-chain by its owners and
//! sending signed telemetry through `ovpp-gateway`, as real devices do; short epochs, so rewards are minted and claimed within minutes.
//! Everything else talks to the chain over JSON-RPC, as it would to a cluster. The state
//! directory keeps the keys, the oracle's database and, at shutdown, the chain's accounts,
//! so a restart continues where it stopped.

pub mod chain;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use serde::{Deserialize, Serialize};
use solana_commitment_config::CommitmentConfig;
use solana_sdk::account::Account;
use solana_sdk::signature::{write_keypair_file, Keypair, Signer};
use solana_sdk::transaction::Transaction;

use crate::chain::{ChainSetup, LocalChain};
use ovpp_chain::{Chain, RpcChain};
use ovpp_gateway::adapter::Adapter;
use ovpp_gateway::config::Config as GatewayConfig;
use ovpp_gateway::sim::SimAdapter;
use ovpp_gateway::Gateway;
use ovpp_oracle::config::EpochRole;
use ovpp_oracle::dispatch::DispatchSettings;
use ovpp_oracle::epoch::EpochSettings;
use ovpp_oracle::epoch_job::EpochJob;
use ovpp_simulator::{self as simulate, Clock, Fleet, Sender};
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::event::Status;
use ovpp_wire::score::ScoringRules;

/// A whole local network in one command: chain, oracle, simulated fleet, epochs.
#[derive(Parser, Debug, Clone)]
#[command(name = "ovpp-localnet", version)]
pub struct LocalnetArgs {
    /// Where keys, the oracle's database and the chain's state are kept.
    #[arg(long, default_value = "ovpp-localnet")]
    pub state_dir: PathBuf,
    /// Simulated devices (first start only; a restart keeps the fleet).
    #[arg(long, short = 'n', default_value_t = 300)]
    pub devices: usize,
    /// Epoch length, seconds (60 or more; first start only).
    #[arg(long, default_value_t = 120)]
    pub epoch_secs: u32,
    /// Metering interval of the simulated devices, seconds.
    #[arg(long, default_value_t = 15)]
    pub interval_secs: u32,
    /// Port of the chain's JSON-RPC endpoint (`ovpp -u localhost` expects 8899).
    #[arg(long, default_value_t = 8899)]
    pub rpc_port: u16,
    /// Port of the oracle's HTTP API.
    #[arg(long, default_value_t = 8787)]
    pub api_port: u16,
    /// Start the epoch schedule this many epochs in the past and replay their telemetry
    /// (first start only): rewards from the first minute.
    #[arg(long, default_value_t = 1)]
    pub backfill_epochs: u32,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long)]
    pub for_secs: Option<u64>,
    /// The demand-response event starts this many seconds after the fleet goes live.
    #[arg(long, default_value_t = 60)]
    pub event_in_secs: u32,
    /// How long the demand-response event lasts, seconds.
    #[arg(long, default_value_t = 180)]
    pub event_secs: u32,
    /// Also send the fleet's telemetry to this oracle: a co-signer needs the same data
    /// (repeatable; README "A second oracle").
    #[arg(long = "cosigner-url", value_name = "URL")]
    pub cosigner_urls: Vec<String>,
    /// Status and metrics port of the gateway the live fleet runs through
    /// (`ovpp-gateway status --url http://127.0.0.1:PORT`).
    #[arg(long, default_value_t = 9101)]
    pub gateway_port: u16,
    /// Make the local oracle a VEN of the utilities' VTNs in this TOML file (`[[vtns]]`
    /// tables, as in the oracle's settings file): their events dispatch the fleet, the
    /// measured delivery is reported back (README "OpenADR 3").
    #[arg(long, value_name = "FILE")]
    pub vtn_config: Option<PathBuf>,
}

/// The `--vtn-config` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VtnFile {
    vtns: Vec<ovpp_oracle::openadr::ven::VtnSettings>,
}

/// What a first start decides, kept for restarts.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Layout {
    devices: usize,
    seed: u64,
    owners: usize,
    epoch_secs: u32,
}

/// What happened during a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub devices_registered: usize,
    pub readings_accepted: u64,
    pub last_epoch: u64,
    pub cumulative_total: u64,
    pub total_claimed: u64,
    /// The demand-response event of this run, and its measured report once it has one.
    pub event_id: Option<String>,
    pub event_report: Option<ovpp_wire::dispatch::view::EventReport>,
    /// Commands issued by this run's cheap-price window.
    pub price_commands: usize,
}

/// Emission cap and emission per epoch: 10,000 OVPP.
const EMISSION: u64 = 10_000_000_000;
const LATITUDE: f64 = 48.14;
const LONGITUDE: f64 = 11.58;

pub fn owner_keypair_path(state_dir: &Path, owner: usize) -> PathBuf {
    state_dir.join("owners").join(format!("owner-{owner}.json"))
}

fn load_or_create_keypair(path: &Path) -> anyhow::Result<Keypair> {
    if path.exists() {
        return Ok(ovpp_chain::keypair::read_keypair(path)?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let keypair = Keypair::new();
    write_keypair_file(&keypair, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(keypair)
}

#[derive(Serialize, Deserialize)]
struct SavedAccount {
    pubkey: String,
    lamports: u64,
    owner: String,
    executable: bool,
    rent_epoch: u64,
    data: String,
}

const ACCOUNTS_FILE: &str = "chain-accounts.jsonl";

fn load_accounts(state_dir: &Path) -> anyhow::Result<Vec<(Pubkey, Account)>> {
    let path = state_dir.join(ACCOUNTS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(vec![]) };
    text.lines()
        .map(|line| {
            let saved: SavedAccount = serde_json::from_str(line).with_context(|| format!("reading {}", path.display()))?;
            let account = Account {
                lamports: saved.lamports,
                data: base64::engine::general_purpose::STANDARD.decode(saved.data)?,
                owner: saved.owner.parse()?,
                executable: saved.executable,
                rent_epoch: saved.rent_epoch,
            };
            Ok((saved.pubkey.parse()?, account))
        })
        .collect()
}

/// Writes the chain's state (see [`LocalChain::state`]) atomically.
fn save_accounts(state_dir: &Path, local: &LocalChain) -> anyhow::Result<usize> {
    let mut out = String::new();
    let accounts = local.state()?;
    for (key, account) in &accounts {
        let saved = SavedAccount {
            pubkey: key.to_string(),
            lamports: account.lamports,
            owner: account.owner.to_string(),
            executable: false,
            rent_epoch: account.rent_epoch,
            data: base64::engine::general_purpose::STANDARD.encode(&account.data),
        };
        out.push_str(&serde_json::to_string(&saved)?);
        out.push('\n');
    }
    let tmp = state_dir.join(format!("{ACCOUNTS_FILE}.tmp"));
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, state_dir.join(ACCOUNTS_FILE))?;
    Ok(accounts.len())
}

async fn send(chain: &dyn Chain, instructions: &[solana_sdk::instruction::Instruction], signers: &[&Keypair]) -> anyhow::Result<()> {
    let blockhash = chain.latest_blockhash().await?;
    let tx = Transaction::new_signed_with_payer(instructions, Some(&signers[0].pubkey()), signers, blockhash);
    chain.send_transaction(&tx).await?;
    Ok(())
}

/// Runs the local network until `stop` resolves (or `--for-secs` passes).
pub async fn run(args: LocalnetArgs, stop: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<Report> {
    // Watch for the stop request from the very start (a Ctrl-C during set-up counts too).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    if args.epoch_secs < ovpp::limits::MIN_EPOCH_LENGTH_SECS {
        bail!("--epoch-secs must be at least {} (the program's minimum)", ovpp::limits::MIN_EPOCH_LENGTH_SECS);
    }
    if !(10..=3600).contains(&args.interval_secs) {
        bail!("--interval-secs must be 10 ..= 3600");
    }
    let dir = &args.state_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let layout_path = dir.join("localnet.json");
    let fresh = !layout_path.exists();
    let layout = if fresh {
        let layout = Layout { devices: args.devices, seed: 1, owners: args.devices.div_ceil(10).clamp(1, 50), epoch_secs: args.epoch_secs };
        std::fs::write(&layout_path, serde_json::to_string_pretty(&layout)?)?;
        layout
    } else {
        let layout: Layout =
            serde_json::from_str(&std::fs::read_to_string(&layout_path)?).with_context(|| format!("reading {}", layout_path.display()))?;
        tracing::info!(devices = layout.devices, epoch_secs = layout.epoch_secs, "continuing the local network in {}", dir.display());
        layout
    };
    let operator = load_or_create_keypair(&dir.join("operator.json"))?;
    let owners: Vec<Keypair> =
        (0..layout.owners).map(|i| load_or_create_keypair(&owner_keypair_path(dir, i))).collect::<anyhow::Result<_>>()?;
    let mut fleet = Fleet::new(layout.devices, layout.seed, LATITUDE, LONGITUDE);

    // The chain, its clock on the wall clock (set back first when backfilling).
    let setup = ChainSetup { rpc_port: args.rpc_port, upgrade_authority: operator.pubkey(), accounts: load_accounts(dir)? };
    let local = Arc::new(chain::start(setup).await?);
    let backfill = if fresh { i64::from(args.backfill_epochs) * i64::from(layout.epoch_secs) } else { 0 };
    if backfill > 0 {
        // On an interval boundary, so that no reading straddles an epoch's start.
        let interval = i64::from(args.interval_secs);
        local.set_clock((unix_now() - backfill).div_euclid(interval) * interval);
    } else {
        local.advance_clock_to(unix_now());
    }
    let rpc_url = local.rpc_url.clone();
    let chain: Arc<dyn Chain> = Arc::new(RpcChain::with_commitment(rpc_url.clone(), CommitmentConfig::confirmed()));

    // Fund the operator and the owners from the chain's faucet.
    let mut airdrops = tokio::task::JoinSet::new();
    for (key, lamports) in
        std::iter::once((operator.pubkey(), 1_000_000_000_000u64)).chain(owners.iter().map(|o| (o.pubkey(), 10_000_000_000)))
    {
        let chain = chain.clone();
        airdrops.spawn(async move {
            let balance = chain.get_account(&key).await?.map_or(0, |a| a.lamports);
            if balance < lamports / 2 {
                chain.request_airdrop(&key, lamports).await?;
            }
            Ok::<_, ovpp_chain::ChainError>(())
        });
    }
    while let Some(funded) = airdrops.join_next().await {
        funded?.context("funding the local keys")?;
    }

    // Initialize with this oracle as the oracle set.
    if chain.get_account(&ovpp::protocol::config_address().0).await?.is_none() {
        let args = ovpp::instructions::InitializeArgs {
            oracles: vec![operator.pubkey()],
            threshold: 1,
            epoch_length_secs: layout.epoch_secs,
            emission_cap_per_epoch: EMISSION,
            metadata_uri: String::new(),
        };
        send(chain.as_ref(), &[ovpp::client::initialize(operator.pubkey(), args)], &[&operator])
            .await
            .context("initializing the program")?;
    }
    // The clock runs on from here, on the wall clock.
    local.advance_clock_to(unix_now());
    let clock_chain = local.clone();
    let clock_task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticker.tick().await;
            clock_chain.advance_clock_to(unix_now());
        }
    });

    // Owners register their devices (three per transaction).
    let addresses: Vec<Pubkey> =
        fleet.devices.iter().map(|d| ovpp::protocol::device_address(&Pubkey::new_from_array(d.device_key())).0).collect();
    let existing = chain.get_accounts(&addresses).await?;
    let missing: Vec<usize> = existing.iter().enumerate().filter(|(_, a)| a.is_none()).map(|(i, _)| i).collect();
    // Sent many at a time, as a wallet backend would: each waits about a slot to confirm.
    let mut sends = tokio::task::JoinSet::new();
    let mut done = 0;
    for (o, owner) in owners.iter().enumerate() {
        // Owners hold ten consecutive devices each: a household's mix of every kind.
        let mine: Vec<usize> = missing.iter().copied().filter(|i| (i / 10).min(owners.len() - 1) == o).collect();
        for group in mine.chunks(3) {
            if *stop_rx.borrow() {
                break;
            }
            let keys: Vec<Keypair> = group.iter().map(|&i| Keypair::new_from_array(fleet.devices[i].key.to_bytes())).collect();
            let ixs: Vec<_> = group
                .iter()
                .zip(&keys)
                .map(|(&i, key)| {
                    ovpp::client::register_device(owner.pubkey(), key.pubkey(), fleet.devices[i].profile.kind, fleet.devices[i].params())
                })
                .collect();
            let signers: Vec<Keypair> = std::iter::once(owner.insecure_clone()).chain(keys).collect();
            let (chain, count) = (chain.clone(), group.len());
            sends.spawn(async move {
                let signers: Vec<&Keypair> = signers.iter().collect();
                send(chain.as_ref(), &ixs, &signers).await.map(|()| count)
            });
            while sends.len() >= IN_FLIGHT {
                let sent = sends.join_next().await.expect("a send is running")?.context("registering devices")?;
                report_registered(&mut done, sent, missing.len());
            }
        }
    }
    while let Some(sent) = sends.join_next().await {
        report_registered(&mut done, sent?.context("registering devices")?, missing.len());
    }
    let still_missing = chain.get_accounts(&addresses).await?.iter().filter(|a| a.is_none()).count();
    let registered = layout.devices - still_missing;

    // The oracle, over JSON-RPC like any client.
    let database = format!("sqlite://{}", dir.join("oracle.db").display());
    let grid_token = load_or_create_token(&dir.join("grid-token"))?;
    let dispatch = DispatchSettings {
        grid_tokens: vec![grid_token.clone()],
        tick_secs: 2,
        // Measured as soon as the event's last readings are in.
        measure_delay_secs: 2 * i64::from(args.interval_secs) + 5,
        ..DispatchSettings::default()
    };
    // The OpenADR 3 VTN's OAuth2 clients: a utility's business logic and a VEN.
    let openadr_clients = [
        format!("bl:localnet-utility:{}", load_or_create_token(&dir.join("openadr-bl-secret"))?),
        format!("ven:localnet-ven:{}", load_or_create_token(&dir.join("openadr-ven-secret"))?),
    ]
    .iter()
    .map(|c| c.parse().map_err(|e: String| anyhow::anyhow!(e)))
    .collect::<anyhow::Result<Vec<_>>>()?;
    let vtns = match &args.vtn_config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<VtnFile>(&text).with_context(|| format!("parsing {}", path.display()))?.vtns
        }
        None => Vec::new(),
    };
    let options = ovpp_oracle::service::Options {
        registry_refresh: Duration::from_secs(30),
        dispatch,
        openadr_clients,
        vtns,
        // Everything of a local network is on this machine.
        openadr_private_callbacks: true,
        public_url: Some(format!("http://127.0.0.1:{}", args.api_port)),
        ..Default::default()
    };
    let state = ovpp_oracle::service::start(&database, chain.clone(), options).await?;
    let chain_epoch = ovpp_oracle::relay::read_config(chain.as_ref()).await?.last_epoch;
    if let Some(latest) = state.store.epochs(1).await?.first().filter(|e| e.epoch > chain_epoch + 1) {
        bail!(
            "the oracle's database has epoch {} but the saved chain only {chain_epoch}: the chain's state in {} is older \
             (the last run did not stop cleanly). Remove the directory to start a new local network.",
            latest.epoch,
            dir.display()
        );
    }
    state.registry.refresh().await?;
    let api_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.api_port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.api_port))?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let router = ovpp_oracle::server::router(state.clone());
    let limits = ovpp_oracle::server::listen::Limits::default();
    tokio::spawn(ovpp_oracle::server::listen::serve(api_listener, router, limits, None, std::future::pending()));
    let role = EpochRole {
        close: true,
        cosign_for: None,
        relay: true,
        keypair: dir.join("operator.json"),
        oracle_keypair: dir.join("operator.json"),
        // A reading arrives at its interval's end: an epoch closes after the last one of it.
        settings: EpochSettings { emission: EMISSION, rules: ScoringRules::default(), close_grace_secs: i64::from(args.interval_secs) + 5 },
        poll: Duration::from_secs(2),
        // Owner 0 claims by hand (`ovpp rewards claim`); the others opted in to auto-claims.
        auto_claim_owners: owners.iter().skip(1).map(Signer::pubkey).collect(),
    };
    let oracle_urls: Vec<String> = std::iter::once(api_url.clone()).chain(args.cosigner_urls.iter().cloned()).collect();
    let sender = Sender::to_all(&oracle_urls);
    let interval = i64::from(args.interval_secs);
    let now_aligned = unix_now().div_euclid(interval) * interval;
    if backfill > 0 {
        // Replay the past epochs first, so they close with their telemetry.
        let config = ovpp_oracle::relay::read_config(chain.as_ref()).await?;
        let start = config.schedule_start_ts.div_euclid(interval) * interval;
        println!("replaying {} s of telemetry into the past epochs", now_aligned - start);
        let past = Clock { start, interval_secs: args.interval_secs, speed: 1e6, end: Some(now_aligned) };
        simulate::run(&mut fleet, &sender, past, 256, std::future::pending()).await?;
    }
    let job = EpochJob::new(chain.clone(), state.clone(), role)?;
    state.tasks.spawn("epoch_job", job.run());
    let mut regions: Vec<&'static str> = fleet.devices.iter().map(|d| d.region).collect();
    regions.sort_unstable();
    regions.dedup();
    state.tasks.spawn("weather", feed_weather(state.store.clone(), regions));
    println!("local chain: {rpc_url} (JSON-RPC), {} (PubSub)   oracle: {api_url}   state: {}", local.ws_url, dir.display());
    println!("operator keypair: {}   owner keypairs: {}", dir.join("operator.json").display(), dir.join("owners").display());
    println!("try: ovpp -k {} --oracle-url {api_url} rewards show", owner_keypair_path(dir, 0).display());
    println!("dashboard: {api_url}/   claim with a browser wallet: {api_url}/ui/claim");
    let (event_id, price_id) = grid_events(&state, now_aligned, &args).await?;
    println!("grid operator token: {grid_token} (POST {api_url}/openadr3/events); live events: {api_url}/v1/events");
    println!(
        "OpenADR 3 VTN: {api_url}/openadr3 (OAuth2 token: POST {api_url}/openadr3/auth/token; clients localnet-utility and \
         localnet-ven, secrets in {})",
        dir.join("openadr-*-secret").display()
    );

    // The fleet, in real time from here, through the gateway: the path real devices take
    // (signed and buffered on disk, sent to every oracle, set points back through it).
    let gateway_config = GatewayConfig {
        state_dir: dir.join("gateway"),
        oracle_urls: oracle_urls.clone(),
        status_listen: ([127, 0, 0, 1], args.gateway_port).into(),
        send_secs: 1,
        command_poll_secs: 1,
        ocpp: None,
        simulator: None,
        meters: Vec::new(),
        sunspec: Vec::new(),
    };
    let adapter: Arc<dyn Adapter> = Arc::new(SimAdapter::new(fleet, args.interval_secs).starting_at(now_aligned));
    let gateway = Gateway::open(gateway_config, vec![adapter]).await.context("opening the fleet's gateway")?;
    println!("gateway: http://127.0.0.1:{}/v1/status (ovpp-gateway status --url ...), /metrics", args.gateway_port);
    let (gateway_stop, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut gateway_task = tokio::spawn(gateway.clone().run(async {
        let _ = gateway_stopped.await;
    }));

    // A status line until told to stop.
    let deadline = args.for_secs.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut stop_watch = stop_rx.clone();
    // One line per metering interval (at least every 5 s), the rate over that interval.
    let period = u64::from(args.interval_secs).max(5);
    let mut ticker = tokio::time::interval(Duration::from_secs(period));
    let mut last_readings = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop_watch.wait_for(|stopped| *stopped) => break,
            ended = &mut gateway_task => {
                let why = match ended {
                    Ok(Ok(())) => "it ended".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => e.to_string(),
                };
                bail!("the fleet's gateway stopped: {why} (is --gateway-port {} in use?)", args.gateway_port);
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
        }
        let readings = state.metrics.readings_accepted.load(Ordering::Relaxed);
        let summary = state.fleet.summary(&state.registry.all().await, unix_now()).await;
        let flex: Vec<String> = summary.by_region.iter().map(|(r, g)| format!("{r} {:.0} kW", g.flex_up_w as f64 / 1000.0)).collect();
        let config = ovpp_oracle::relay::read_config(chain.as_ref()).await.ok();
        let event = event_status(&state, &event_id).await;
        println!(
            "devices online {}/{} | {:.1} readings/s | flexibility up: {} | {event} | epoch {} posted | {} OVPP earned, {} claimed",
            summary.totals.devices_online,
            summary.totals.devices,
            (readings - last_readings) as f64 / period as f64,
            flex.join(", "),
            config.as_ref().map_or(0, |c| c.last_epoch),
            ovpp_chain::amount::format_ovpp(config.as_ref().map_or(0, |c| c.cumulative_total)),
            ovpp_chain::amount::format_ovpp(config.as_ref().map_or(0, |c| c.total_claimed)),
        );
        last_readings = readings;
        // Saved as it goes, so that even a killed run loses at most one interval of chain.
        if let Err(e) = save_accounts(dir, &local) {
            tracing::warn!(error = %e, "could not save the chain's state");
        }
    }

    // Stop cleanly: the fleet (its unsent readings stay in the gateway's buffer for the
    // next run), the epoch work, then save the chain.
    let _ = gateway_stop.send(());
    match gateway_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the fleet's gateway stopped"),
        Err(e) => tracing::warn!(error = %e, "the fleet's gateway failed"),
    }
    state.tasks.stop().await;
    let saved = save_accounts(dir, &local)?;
    clock_task.abort();
    let config = ovpp_oracle::relay::read_config(chain.as_ref()).await?;
    println!("stopped; saved {saved} chain accounts in {} (run again to continue)", dir.display());
    let event_report = match &event_id {
        Some(id) => state.store.event_report(id).await?,
        None => None,
    };
    let price_commands = match &price_id {
        Some(id) => state.store.event_commands(id).await?.len(),
        None => 0,
    };
    Ok(Report {
        devices_registered: registered,
        readings_accepted: state.metrics.readings_accepted.load(Ordering::Relaxed),
        last_epoch: config.last_epoch,
        cumulative_total: config.cumulative_total,
        total_claimed: config.total_claimed,
        event_id,
        event_report,
        price_commands,
    })
}

/// Transactions sent at once while registering the fleet.
const IN_FLIGHT: usize = 100;

/// The simulated regions' temperatures (`ovpp_simulator::temperature_c`), fed to the
/// oracle as a weather service would feed it: every baseline's lookback behind at start,
/// two days ahead (a forecast), topped up every hour.
async fn feed_weather(store: ovpp_oracle::store::Store, regions: Vec<&'static str>) {
    let lookback = ovpp_oracle::dispatch::measure::lookback_secs(&ovpp_oracle::dispatch::baseline::LoadMethod::MostAccurate);
    let mut from = unix_now().div_euclid(3600) * 3600 - lookback;
    loop {
        let to = unix_now().div_euclid(3600) * 3600 + 48 * 3600;
        let mut stored = true;
        for region in &regions {
            let hours: Vec<ovpp_wire::dispatch::weather::HourlyTemperature> = (from..to)
                .step_by(3600)
                .map(|h| ovpp_wire::dispatch::weather::HourlyTemperature {
                    start: h,
                    celsius: (simulate::temperature_c(region, h + 1800, LONGITUDE) * 1000.0).round() / 1000.0,
                })
                .collect();
            if let Err(e) = store.put_temperatures(region, &hours).await {
                tracing::warn!(region, error = %e, "could not store the region's temperatures; retrying in an hour");
                stored = false;
            }
        }
        if stored {
            from = to - 3600;
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Progress every 60 devices, and at the end.
fn report_registered(done: &mut usize, sent: usize, of: usize) {
    let before = *done;
    *done += sent;
    if *done / 60 > before / 60 || *done == of {
        println!("registering devices on-chain: {done} of {of}");
    }
}

/// A random bearer token for the grid API, kept in the state directory (owner-only).
fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::fs::read_to_string(path) {
        return Ok(token.trim().to_string());
    }
    let token = hex::encode(rand::random::<[u8; 16]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path).with_context(|| format!("creating {}", path.display()))?, token.as_bytes())?;
    Ok(token)
}

/// The run's grid events, posted as a grid operator would (same validation as the API): a
/// demand-response event in DE-BY for 30 % of the region's flexibility, starting
/// `--event-in-secs` after now; and a cheap-price window for DE-BW, a price curve over the
/// next hour in 5-minute slots, cheap from 10 to 30 minutes. Returns their ids.
async fn grid_events(
    state: &ovpp_oracle::server::AppState,
    now: i64,
    args: &LocalnetArgs,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    use ovpp_wire::dispatch::event::{rfc3339, WireEvent};
    const PROGRAM: &str = "localnet-demo";
    if !state.dispatch.programs().await.iter().any(|(id, _)| id == PROGRAM) {
        let program = serde_json::from_value(serde_json::json!({"programName": PROGRAM, "programLongName": "OpenVPP local demo"}))?;
        state.dispatch.create_program(program, now).await?;
    }
    let regions = state.fleet.summary(&state.registry.all().await, now).await.by_region;
    let interval = i64::from(args.interval_secs);
    // Event intervals of a whole number of metering intervals, about a minute each.
    let slot = (60 / interval).max(1) * interval;
    let start = (now + i64::from(args.event_in_secs) + slot - 1).div_euclid(slot) * slot;
    let count = (i64::from(args.event_secs) / slot).max(1);
    let event = |region: &str, kind: &str, name: &str, start: i64, duration: i64, values: Vec<f64>| -> anyhow::Result<WireEvent> {
        let intervals: Vec<_> =
            values.iter().enumerate().map(|(i, v)| serde_json::json!({"id": i, "payloads": [{"type": kind, "values": [v]}]})).collect();
        Ok(serde_json::from_value(serde_json::json!({
            "programID": PROGRAM,
            "eventName": name,
            "targets": [{"type": "REGION", "values": [region]}],
            "intervalPeriod": {"start": rfc3339(start), "duration": ovpp_wire::dispatch::event::iso_duration(duration)},
            "intervals": intervals,
        }))?)
    };
    let mut ids = (None, None);
    if let Some(group) = regions.get("DE-BY").filter(|g| g.flex_up_w > 0) {
        let target_kw = (group.flex_up_w as f64 * 0.3 / 1000.0).round().max(1.0);
        match state
            .dispatch
            .put_event(
                &event("DE-BY", "DISPATCH_SETPOINT", "localnet demand response", start, slot, vec![target_kw; count as usize])?,
                None,
                now,
            )
            .await
        {
            Ok(e) => {
                println!(
                    "demand-response event {}: shed {target_kw} kW in DE-BY from {} for {} s",
                    e.id,
                    rfc3339(e.start()),
                    e.end() - e.start()
                );
                ids.0 = Some(e.id);
            }
            Err(e) => println!("no demand-response event this run: {e}"),
        }
    }
    if regions.contains_key("DE-BW") {
        let prices: Vec<f64> = (0..12).map(|i| if (2..6).contains(&i) { 0.05 } else { 0.35 }).collect();
        match state
            .dispatch
            .put_event(&event("DE-BW", "PRICE", "localnet cheap-price window", now.div_euclid(300) * 300, 300, prices)?, None, now)
            .await
        {
            Ok(e) => {
                println!(
                    "cheap-price window {}: DE-BW at 0.05/kWh from {} to {}",
                    e.id,
                    rfc3339(e.intervals[2].start),
                    rfc3339(e.intervals[5].end)
                );
                ids.1 = Some(e.id);
            }
            Err(e) => println!("no cheap-price window this run: {e}"),
        }
    }
    Ok(ids)
}

/// The demand-response event on the status line: live delivery, then its measured result.
async fn event_status(state: &ovpp_oracle::server::AppState, id: &Option<String>) -> String {
    let Some(id) = id else { return "no event".into() };
    let view = state.dispatch.view(unix_now()).await;
    let Some(event) = view.iter().find(|e| e.id == *id) else { return "no event".into() };
    let kw = |w: f64| w / 1000.0;
    match (event.status, &event.report) {
        (_, Some(report)) => format!(
            "event measured: {:.1} of {:.1} kWh ({:.0} %)",
            kw(report.delivered_wh as f64),
            kw(report.target_wh as f64),
            report.delivery_ratio * 100.0
        ),
        (Status::Active, None) => format!(
            "event active: {:.1} kW delivered, target {:.1} kW",
            kw(event.live_delivery_w.unwrap_or(0) as f64),
            kw(event.plan.as_ref().map_or(0, |p| p.target_w) as f64)
        ),
        (status, None) => {
            format!("event {}", serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
        }
    }
}
