//! `ovpp-oracle`: the OpenVPP oracle service and its one-shot epoch commands.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ovpp_chain::RpcChain;
use ovpp_oracle::config::{ServeArgs, Settings};
use ovpp_wire::clock::unix_now;

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
    /// One-shot epoch work (what `serve` does on a schedule).
    #[command(subcommand)]
    Epoch(EpochCommand),
    /// Print the scoring rules' version and hash (what `ovpp gov propose scoring-rules-hash`
    /// takes) and the rules themselves.
    Rules {
        /// TOML file with the scoring rules [default: the published rules].
        #[arg(long, env = "OVPP_SCORING_RULES")]
        scoring_rules: Option<std::path::PathBuf>,
        /// `display` or `json`.
        #[arg(long, short = 'o', default_value = "display")]
        output: Output,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Output {
    Display,
    Json,
}

#[derive(Subcommand)]
enum EpochCommand {
    /// Post every closed epoch that has enough signatures (idempotent: safe to re-run).
    Relay(ServeArgs),
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
    /// Recompute the epoch published by the oracle at URL from this oracle's telemetry and,
    /// only if the report is byte-identical, sign it and hand the signature in. Run it with
    /// this oracle's `serve` stopped, or use `serve --cosign-for URL`.
    Cosign {
        /// The primary oracle's base URL.
        #[arg(long = "from", value_name = "URL")]
        from: String,
        #[command(flatten)]
        settings: ServeArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = "info";
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .init();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Rules { scoring_rules, output } => {
            let rules = ovpp_oracle::config::load_rules(scoring_rules.as_deref())?;
            let (version, hash) = (rules.version(), hex::encode(rules.hash()));
            match output {
                Output::Json => println!("{}", serde_json::json!({"version": version, "hash": hash, "rules": rules})),
                Output::Display => println!("{version}\nhash {hash}\n\n{}", toml::to_string(&rules)?),
            }
            Ok(())
        }
        Command::Epoch(EpochCommand::Relay(args)) => {
            let settings = Settings::resolve(&args)?;
            let chain = RpcChain::new(settings.rpc_url.clone());
            let store = ovpp_oracle::store::Store::open(&settings.database_url).await?;
            let payer = ovpp_chain::keypair::read_keypair(&settings.epochs.keypair)?;
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
            let on_chain = ovpp_chain::accounts::posted_epoch(&chain, epoch)
                .await?
                .with_context(|| format!("epoch {epoch} is not posted on-chain"))?;
            let url = format!("{}/v1/epochs/{epoch}/report", from.trim_end_matches('/'));
            let report = reqwest::get(&url).await?.error_for_status().with_context(|| format!("fetching {url}"))?.bytes().await?;
            let closed = ovpp_oracle::epoch::import_posted(&store, &report, &on_chain, unix_now()).await?;
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
            let chain: Arc<dyn ovpp_chain::Chain> = Arc::new(RpcChain::new(settings.rpc_url.clone()));
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

async fn start_service(settings: &Settings, chain: Arc<dyn ovpp_chain::Chain>) -> anyhow::Result<ovpp_oracle::server::AppState> {
    let options = ovpp_oracle::service::Options {
        policy: settings.policy,
        registry_refresh: settings.registry_refresh,
        dispatch: settings.dispatch.clone(),
        stress_hours_utc: settings.epochs.settings.rules.stress_hours_utc,
        keep_readings_days: settings.keep_readings_days,
        openadr_clients: settings.openadr_clients.clone(),
        vtns: settings.vtns.clone(),
        openadr_private_callbacks: settings.openadr_private_callbacks,
        wallet_chain: settings.wallet_chain.clone(),
        public_url: settings.public_url.clone(),
    };
    ovpp_oracle::service::start(&settings.database_url, chain, options).await
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let chain: Arc<dyn ovpp_chain::Chain> = Arc::new(RpcChain::new(settings.rpc_url.clone()));
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
