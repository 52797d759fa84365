//! `ovpp-gateway`: run the gateway, export its device keys for registration, show its status.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use ovpp_gateway::config::Config;
use ovpp_gateway::status::Status;
use ovpp_gateway::Gateway;

/// Connect real devices (EV chargers over OCPP 1.6J and 2.0.1) to OpenVPP oracles.
#[derive(Parser)]
#[command(name = "ovpp-gateway", version)]
struct Cli {
    /// The gateway's TOML config.
    #[arg(long, short = 'c', env = "OVPP_GATEWAY_CONFIG", default_value = "ovpp-gateway.toml", global = true)]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "display", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Display,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the devices until Ctrl-C.
    Run {
        /// Oracle URL; repeat for co-signers (overrides oracle_urls; commands come from the first).
        #[arg(long, env = "OVPP_ORACLE_URL", value_delimiter = ',')]
        oracle_url: Vec<String>,
        /// State directory (overrides state_dir).
        #[arg(long, env = "OVPP_GATEWAY_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Status and metrics address (overrides status_listen).
        #[arg(long, env = "OVPP_GATEWAY_STATUS_LISTEN")]
        status_listen: Option<SocketAddr>,
    },
    /// Device keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The running gateway's devices, queues and commands.
    Status {
        /// The gateway's status address [default: status_listen of the config].
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Each device's public key and declared parameters (keys made for new devices).
    List,
    /// Copy each device's keypair file into DIR (mode 0600) with the `ovpp device
    /// register` command that registers it.
    Export {
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(&cli.config)?;
    match cli.command {
        Command::Run { oracle_url, state_dir, status_listen } => {
            if !oracle_url.is_empty() {
                config.oracle_urls = oracle_url;
            }
            config.state_dir = state_dir.unwrap_or(config.state_dir);
            config.status_listen = status_listen.unwrap_or(config.status_listen);
            let adapters = ovpp_gateway::adapters(&config)?;
            if adapters.is_empty() {
                bail!(
                    "{}: no [ocpp], [simulator], [[meters]] or [[sunspec]] section: the gateway has no devices to serve",
                    cli.config.display()
                );
            }
            let gateway = Gateway::open(config, adapters).await?;
            gateway
                .run(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
        }
        Command::Keys(keys) => {
            let adapters = ovpp_gateway::adapters(&config)?;
            let gateway = Gateway::open(config, adapters).await?;
            let out = match &keys {
                KeysCommand::Export { out } => Some(out.clone()),
                KeysCommand::List => None,
            };
            let rows = gateway.export_keys(out.as_deref())?;
            match cli.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Output::Display => {
                    for row in &rows {
                        println!("{}  {}  {}", row.name, row.device_key, row.kind);
                        if let Some(register) = &row.register {
                            println!("    {register}");
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Status { url } => {
            let url = url.unwrap_or_else(|| format!("http://{}", config.status_listen));
            let status: Status = reqwest::get(format!("{}/v1/status", url.trim_end_matches('/')))
                .await
                .with_context(|| format!("is the gateway running? no answer from {url}"))?
                .error_for_status()?
                .json()
                .await?;
            match cli.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Output::Display => print_status(&status),
            }
            Ok(())
        }
    }
}

fn print_status(s: &Status) {
    println!("{:<20} {:<18} {:<8} {:<10} {:<10} last reading", "device", "kind", "region", "connected", "registered");
    for d in &s.devices {
        let last =
            d.last_reading.map(|t| chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().to_rfc3339()).unwrap_or_else(|| "-".into());
        println!("{:<20} {:<18} {:<8} {:<10} {:<10} {last}", d.name, d.kind, d.region, d.connected, d.registered);
    }
    for o in &s.oracles {
        println!(
            "oracle {}: {} readings queued{}",
            o.url,
            o.queue_depth,
            o.last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
        );
    }
    println!(
        "readings: {} recorded, {} stored by the oracles, {} refused | commands: {} applied, {} refused",
        s.readings_recorded, s.readings_stored, s.readings_refused, s.commands_applied, s.commands_refused
    );
}
