//! `ovpp-oracle`: the OpenVPP oracle service.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ovpp_oracle::chain::RpcChain;
use ovpp_oracle::config::{ServeArgs, Settings};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let chain = Arc::new(RpcChain::new(settings.rpc_url.clone()));
    let state = ovpp_oracle::service::start(&settings.database_url, chain, settings.policy, settings.registry_refresh).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(listen = %listener.local_addr()?, database = %settings.database_url, rpc = %settings.rpc_url, "ovpp-oracle serving");
    axum::serve(listener, ovpp_oracle::server::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
