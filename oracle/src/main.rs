//! `ovpp-oracle`: the OpenVPP oracle service, and the fleet simulator that drives it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use ovpp_oracle::chain::RpcChain;
use ovpp_oracle::config::{ServeArgs, Settings};
use ovpp_oracle::fleet::kind_name;
use ovpp_oracle::ingest::unix_now;
use ovpp_oracle::simulate::{self, Clock, Fleet, Sender};

#[derive(Parser)]
#[command(name = "ovpp-oracle", version, about = "OpenVPP oracle: signed telemetry ingest and fleet view")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingest and fleet API.
    Serve(ServeArgs),
    /// Simulate a fleet of devices sending signed telemetry to an oracle.
    Simulate(SimulateArgs),
    /// A whole local network in one command: chain, oracle, simulated fleet, epochs.
    Localnet(ovpp_oracle::localnet::LocalnetArgs),
    /// One-shot epoch work (what `serve` does on a schedule).
    #[command(subcommand)]
    Epoch(EpochCommand),
}

#[derive(Subcommand)]
enum EpochCommand {
    /// Post every closed epoch that has enough signatures (idempotent: safe to re-run).
    Relay(ServeArgs),
    /// Recompute the epoch published by the oracle at URL from this oracle's telemetry and,
    /// only if the report is byte-identical, sign it and hand the signature in. Run it with
    /// this oracle's `serve` stopped, or use `serve --cosign-for URL`.
    /// Take in a posted epoch published by the oracle at URL, checked against the chain
    /// (hash, root, totals), to start from it: how an oracle joins a running network or
    /// recovers a lost database. (`serve --cosign-for` does this by itself.)
    Import {
        #[arg(long = "from", value_name = "URL")]
        from: String,
        /// The epoch [default: the chain's last posted epoch].
        #[arg(long)]
        epoch: Option<u64>,
        #[command(flatten)]
        settings: ServeArgs,
    },
    Cosign {
        /// The primary oracle's base URL.
        #[arg(long = "from", value_name = "URL")]
        from: String,
        #[command(flatten)]
        settings: ServeArgs,
    },
}

#[derive(Args)]
struct SimulateArgs {
    /// Base URL of the oracle's HTTP API.
    #[arg(long, env = "OVPP_ORACLE_URL", default_value = "http://127.0.0.1:8787")]
    oracle: String,
    /// Number of devices (a residential mix of every kind across three regions).
    #[arg(long, short = 'n', default_value_t = 300)]
    devices: usize,
    /// Seed of the device keys: the same seed gives the same fleet, so a registered fleet
    /// can be restarted.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Metering interval, seconds (10 ..= 3600).
    #[arg(long, default_value_t = 60)]
    interval_secs: u32,
    /// Simulated seconds per wall-clock second while catching up with the present.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start this many hours in the past (at most the oracle's retention, 7 days by
    /// default); the past is replayed at --speed, then the fleet follows real time.
    #[arg(long, default_value_t = 0.0)]
    backfill_hours: f64,
    /// Stop after this many simulated hours [default: run until Ctrl-C].
    #[arg(long)]
    hours: Option<f64>,
    /// Site latitude, degrees (for the sun).
    #[arg(long, default_value_t = 48.14, allow_negative_numbers = true)]
    latitude: f64,
    /// Site longitude, degrees east.
    #[arg(long, default_value_t = 11.58, allow_negative_numbers = true)]
    longitude: f64,
    /// Batches per HTTP request.
    #[arg(long, default_value_t = 256)]
    batches_per_request: usize,
    /// Print the fleet (device key, kind, declared parameters, region) as JSON lines and exit.
    #[arg(long)]
    list: bool,
    /// Write each device's keypair (Solana JSON format, mode 0600) into this directory and
    /// exit, so that owners can register the devices on-chain.
    #[arg(long, value_name = "DIR")]
    export_keys: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The in-process chain's own crates are chatty at info; the local network has its own
    // status line instead of the simulator's line per interval.
    let mut filter = "info,tarpc=error,solana_runtime=warn,solana_program_test=warn,solana_metrics=warn,solana_banks_server=warn,solana_accounts_db=warn".to_string();
    if matches!(cli.command, Command::Localnet(_)) {
        filter.push_str(",ovpp_oracle::simulate=warn");
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .init();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Simulate(args) => run_simulation(args).await,
        Command::Localnet(args) => {
            let report = ovpp_oracle::localnet::run(args, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            println!(
                "{} devices, {} readings accepted this run, last epoch {}, {} OVPP earned, {} claimed",
                report.devices_registered,
                report.readings_accepted,
                report.last_epoch,
                ovpp_oracle::config::format_ovpp(report.cumulative_total),
                ovpp_oracle::config::format_ovpp(report.total_claimed)
            );
            Ok(())
        }
        Command::Epoch(EpochCommand::Relay(args)) => {
            let settings = Settings::resolve(&args)?;
            let chain = RpcChain::new(settings.rpc_url.clone());
            let store = ovpp_oracle::store::Store::open(&settings.database_url).await?;
            let payer = ovpp_oracle::config::read_keypair(&settings.epochs.keypair)?;
            let done = ovpp_oracle::relay::relay_pending(&chain, &store, &payer).await?;
            if done.is_empty() {
                println!("nothing to relay");
            }
            for (epoch, outcome) in done {
                println!("epoch {epoch}: {}", ovpp_oracle::epoch_job::describe(&outcome));
            }
            Ok(())
        }
        Command::Epoch(EpochCommand::Import { from, epoch, settings }) => {
            let settings = Settings::resolve(&settings)?;
            let chain = RpcChain::new(settings.rpc_url.clone());
            let store = ovpp_oracle::store::Store::open(&settings.database_url).await?;
            let epoch = match epoch {
                Some(epoch) => epoch,
                None => ovpp_oracle::relay::read_config(&chain).await?.last_epoch,
            };
            let on_chain =
                ovpp_oracle::relay::posted_epoch(&chain, epoch).await?.with_context(|| format!("epoch {epoch} is not posted on-chain"))?;
            let url = format!("{}/v1/epochs/{epoch}/report", from.trim_end_matches('/'));
            let report = reqwest::get(&url).await?.error_for_status().with_context(|| format!("fetching {url}"))?.bytes().await?;
            let closed = ovpp_oracle::epoch::import_posted(&store, &report, &on_chain, ovpp_oracle::ingest::unix_now()).await?;
            println!(
                "imported epoch {epoch} ({} leaves, root {}), checked against the chain",
                closed.header.leaf_count,
                hex::encode(closed.root)
            );
            Ok(())
        }
        Command::Epoch(EpochCommand::Cosign { from, settings }) => {
            let mut settings = Settings::resolve(&settings)?;
            settings.epochs.cosign_for = Some(from);
            settings.epochs.relay = false;
            let chain: Arc<dyn ovpp_oracle::chain::Chain> = Arc::new(RpcChain::new(settings.rpc_url.clone()));
            let state = start_service(&settings, chain.clone()).await?;
            state.registry.refresh().await.context("reading the device registry from chain")?;
            let job = ovpp_oracle::epoch_job::EpochJob::new(chain, state.clone(), settings.epochs)?;
            job.step().await?;
            match state.store.epochs(1).await?.first() {
                Some(e) => println!("co-signed up to epoch {} (root {})", e.epoch, hex::encode(e.root)),
                None => println!("nothing to co-sign yet"),
            }
            Ok(())
        }
    }
}

async fn start_service(settings: &Settings, chain: Arc<dyn ovpp_oracle::chain::Chain>) -> anyhow::Result<ovpp_oracle::server::AppState> {
    ovpp_oracle::service::start(&settings.database_url, chain, settings.policy, settings.registry_refresh, settings.dispatch.clone()).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let chain: Arc<dyn ovpp_oracle::chain::Chain> = Arc::new(RpcChain::new(settings.rpc_url.clone()));
    let state = start_service(&settings, chain.clone()).await?;
    if settings.epochs.active() {
        let job = ovpp_oracle::epoch_job::EpochJob::new(chain, state.clone(), settings.epochs.clone())?;
        tracing::info!(oracle = %job.oracle_key(), close = settings.epochs.close, cosign_for = ?settings.epochs.cosign_for, relay = settings.epochs.relay, "epoch work enabled");
        state.tasks.spawn("epoch_job", job.run());
    }
    let tls = match &settings.tls {
        None => None,
        Some((cert, key)) => Some(ovpp_oracle::server::listen::tls_acceptor(cert, key)?),
    };
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %listener.local_addr()?, scheme, database = %settings.database_url, rpc = %settings.rpc_url, "ovpp-oracle serving");
    ovpp_oracle::server::listen::serve(listener, ovpp_oracle::server::router(state.clone()), settings.limits, tls, shutdown_signal())
        .await?;
    // No request is in flight any more: stop the background work (the epoch job and the
    // relayer resume where they were on the next start).
    state.tasks.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM (what service managers and container runtimes send).
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("shutting down: no new connections, finishing the requests in flight");
}

async fn run_simulation(args: SimulateArgs) -> anyhow::Result<()> {
    if !(10..=3600).contains(&args.interval_secs) {
        bail!("--interval-secs must be 10 ..= 3600, got {}", args.interval_secs);
    }
    if !(args.speed.is_finite() && args.speed >= 1.0) {
        bail!("--speed must be a number >= 1 (simulated time never runs slower than real time), got {}", args.speed);
    }
    // The first backfilled reading must still be inside the oracle's retention (7 days by
    // default): it is the oldest one when sent, the lag shrinking from there.
    if !(0.0..=167.0).contains(&args.backfill_hours) {
        bail!("--backfill-hours must be 0 ..= 167 (the oracle refuses readings older than 7 days), got {}", args.backfill_hours);
    }
    if args.backfill_hours > 0.0 && args.speed <= 1.0 {
        bail!("--backfill-hours needs --speed above 1, or the fleet would never catch up with the present");
    }
    if let Some(hours) = args.hours {
        if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0 * 100.0) {
            bail!("--hours must be a positive number of hours (at most a century), got {hours}");
        }
    }
    if !(-90.0..=90.0).contains(&args.latitude) || !(-180.0..=180.0).contains(&args.longitude) {
        bail!("--latitude must be -90 ..= 90 and --longitude -180 ..= 180");
    }
    let mut fleet = Fleet::new(args.devices, args.seed, args.latitude, args.longitude);
    if args.list {
        let mut out = std::io::stdout().lock();
        for d in &fleet.devices {
            let line = serde_json::json!({
                "device_key": bs58::encode(d.device_key()).into_string(),
                "kind": kind_name(d.profile.kind),
                "rated_power_w": d.profile.rated_power_w,
                "energy_capacity_wh": d.profile.energy_capacity_wh,
                "region": d.region,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    if let Some(dir) = &args.export_keys {
        let written = simulate::export_keys(&fleet, dir).with_context(|| format!("writing device keypairs into {}", dir.display()))?;
        println!("wrote {written} device keypairs into {}", dir.display());
        return Ok(());
    }
    let interval = i64::from(args.interval_secs);
    let now = unix_now();
    let start = (now - (args.backfill_hours * 3600.0) as i64).div_euclid(interval) * interval;
    let clock = Clock { start, interval_secs: args.interval_secs, speed: args.speed, end: args.hours.map(|h| start + (h * 3600.0) as i64) };
    tracing::info!(devices = args.devices, oracle = %args.oracle, start, "simulating");
    let sender = Sender::new(&args.oracle);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let totals = simulate::run(&mut fleet, &sender, clock, args.batches_per_request, stop).await?;
    println!("accepted {} batches, rejected {} {:?}", totals.accepted, totals.rejected, totals.reasons);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
