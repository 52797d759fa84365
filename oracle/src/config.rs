//! Settings: defaults, then a TOML file, then `OVPP_*` environment variables, then flags
//! (clap reads the last two; later sources win).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use crate::telemetry::validate::Policy;

#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// TOML settings file (keys as the long flags, with underscores).
    #[arg(long, short = 'c', env = "OVPP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address the HTTP API listens on [default: 127.0.0.1:8787].
    #[arg(long, env = "OVPP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the default SQLite database [default: ./ovpp-data].
    #[arg(long, env = "OVPP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL [default: sqlite://<data-dir>/oracle.db].
    #[arg(long, env = "OVPP_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Solana cluster: mainnet-beta, devnet, testnet, localhost or an RPC URL [default: localhost].
    #[arg(long = "url", short = 'u', env = "OVPP_RPC_URL")]
    pub url: Option<String>,
    /// Seconds between registry syncs from chain [default: 60].
    #[arg(long, env = "OVPP_REGISTRY_REFRESH_SECS")]
    pub registry_refresh_secs: Option<u64>,
    /// Allowed clock skew of device intervals, seconds [default: 30].
    #[arg(long, env = "OVPP_MAX_CLOCK_SKEW_SECS")]
    pub max_clock_skew_secs: Option<i64>,
    /// Oldest accepted interval start, seconds ago [default: 604800].
    #[arg(long, env = "OVPP_RETENTION_SECS")]
    pub retention_secs: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    url: Option<String>,
    registry_refresh_secs: Option<u64>,
    max_clock_skew_secs: Option<i64>,
    retention_secs: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub rpc_url: String,
    pub registry_refresh: Duration,
    pub policy: Policy,
}

/// Solana CLI monikers for `--url`.
pub fn cluster_url(moniker: &str) -> String {
    match moniker {
        "mainnet-beta" | "m" => "https://api.mainnet-beta.solana.com".into(),
        "devnet" | "d" => "https://api.devnet.solana.com".into(),
        "testnet" | "t" => "https://api.testnet.solana.com".into(),
        "localhost" | "l" => "http://127.0.0.1:8899".into(),
        url => url.into(),
    }
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file: FileSettings = match &args.config {
            None => FileSettings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading settings file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing settings file {}", path.display()))?
            }
        };
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("ovpp-data"));
        let database_url = match args.database_url.clone().or(file.database_url) {
            Some(url) => url,
            None => {
                std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data directory {}", data_dir.display()))?;
                format!("sqlite://{}", data_dir.join("oracle.db").display())
            }
        };
        let defaults = Policy::default();
        Ok(Self {
            listen: args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8787))),
            database_url,
            rpc_url: cluster_url(&args.url.clone().or(file.url).unwrap_or_else(|| "localhost".into())),
            registry_refresh: Duration::from_secs(args.registry_refresh_secs.or(file.registry_refresh_secs).unwrap_or(60).max(1)),
            policy: Policy {
                max_clock_skew_secs: args.max_clock_skew_secs.or(file.max_clock_skew_secs).unwrap_or(defaults.max_clock_skew_secs),
                retention_secs: args.retention_secs.or(file.retention_secs).unwrap_or(defaults.retention_secs),
                ..defaults
            },
        })
    }
}
