//! Settings: defaults, then a TOML file, then `OVPP_*` environment variables, then flags
//! (clap reads the last two; later sources win).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use std::str::FromStr;

use anchor_lang::prelude::Pubkey;

use crate::dispatch::DispatchSettings;
use crate::epoch::EpochSettings;
use ovpp_chain::amount::parse_ovpp;
use ovpp_chain::cluster::cluster_url;
use ovpp_chain::keypair::default_keypair_path;
use ovpp_wire::score::ScoringRules;
use ovpp_wire::telemetry::validate::Policy;

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
    /// Keep raw readings this many days, then prune them (never what an open or unposted
    /// epoch or an unmeasured event's baseline still needs); at least the longest baseline
    /// lookback (46) [default: keep everything].
    #[arg(long, env = "OVPP_KEEP_READINGS_DAYS")]
    pub keep_readings_days: Option<i64>,
    /// Solana keypair that pays for posting epochs and auto-claims [default: ~/.config/solana/id.json].
    #[arg(long, short = 'k', env = "OVPP_KEYPAIR")]
    pub keypair: Option<PathBuf>,
    /// This oracle's signing keypair (a member of the on-chain oracle set) [default: --keypair].
    #[arg(long, env = "OVPP_ORACLE_KEYPAIR")]
    pub oracle_keypair: Option<PathBuf>,
    /// Close and sign epochs on the chain's schedule.
    #[arg(long, env = "OVPP_CLOSE_EPOCHS")]
    pub close_epochs: bool,
    /// Co-sign the epochs published by the oracle at this URL (recompute, sign on equality,
    /// hand the signature in), instead of closing on its own.
    #[arg(long, env = "OVPP_COSIGN_FOR", value_name = "URL")]
    pub cosign_for: Option<String>,
    /// Post closed epochs on-chain once enough oracle signatures are collected.
    #[arg(long, env = "OVPP_RELAY")]
    pub relay: bool,
    /// OVPP distributed per epoch (capped by the chain's emission cap) [default: 10000].
    #[arg(long, env = "OVPP_EPOCH_EMISSION")]
    pub epoch_emission: Option<String>,
    /// Seconds after an epoch's end before it is closed (late readings) [default: 120].
    #[arg(long, env = "OVPP_CLOSE_GRACE_SECS")]
    pub close_grace_secs: Option<i64>,
    /// TOML file with the scoring rules [default: the published rules v2; v1 is
    /// `oracle/scoring-rules-v1.toml`].
    #[arg(long, env = "OVPP_SCORING_RULES")]
    pub scoring_rules: Option<PathBuf>,
    /// Seconds between epoch checks [default: 15].
    #[arg(long, env = "OVPP_EPOCH_POLL_SECS")]
    pub epoch_poll_secs: Option<u64>,
    /// Claim on behalf of this owner's devices after each posted epoch (owners who opted
    /// in; repeatable; the relayer pays the fees).
    #[arg(long = "auto-claim-owner", env = "OVPP_AUTO_CLAIM_OWNERS", value_delimiter = ',')]
    pub auto_claim_owners: Vec<String>,
    /// Bearer token a grid operator uses to post programs and events (repeatable; without
    /// one the grid API refuses writes).
    #[arg(long = "grid-token", env = "OVPP_GRID_TOKENS", value_delimiter = ',')]
    pub grid_tokens: Vec<String>,
    /// An OAuth2 client of the OpenADR 3 VTN, `ROLE:ID:SECRET` with ROLE `bl` (business
    /// logic) or `ven`; repeatable (env: comma-separated). Tokens from POST /openadr3/auth/token.
    #[arg(long = "openadr-client", env = "OVPP_OPENADR_CLIENTS", value_delimiter = ',')]
    pub openadr_clients: Vec<String>,
    /// Deliver OpenADR webhook notifications to loopback and private addresses too (a VTN
    /// on a private network); off, a subscriber cannot make the oracle call internal services.
    #[arg(long, env = "OVPP_OPENADR_PRIVATE_CALLBACKS")]
    pub openadr_private_callbacks: bool,
    /// The address people open this oracle's pages at (`https://vpp.example.org`): wallet
    /// sign-in messages name it, so a signature made for another site opens no session here.
    /// Without it, sign-in is off.
    #[arg(long, env = "OVPP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The chain the wallet pages ask wallets for: `solana:mainnet`, `solana:devnet`,
    /// `solana:testnet` or `solana:localnet` [default: the one `--url` names, else localnet].
    #[arg(long, env = "OVPP_WALLET_CHAIN")]
    pub wallet_chain: Option<String>,
    /// Planned above each dispatch target for non-delivery, percent [default: 10].
    #[arg(long, env = "OVPP_DISPATCH_RESERVE_PCT")]
    pub dispatch_reserve_pct: Option<u32>,
    /// Seconds after an event's end before it is measured (late telemetry) [default: 300].
    #[arg(long, env = "OVPP_MEASURE_DELAY_SECS")]
    pub measure_delay_secs: Option<i64>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, env = "OVPP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "OVPP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most client connections served at once; more wait to be accepted [default: 1024].
    #[arg(long, env = "OVPP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a request may take, body included, before it is answered 408 [default: 30].
    #[arg(long, env = "OVPP_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
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
    keep_readings_days: Option<i64>,
    keypair: Option<PathBuf>,
    oracle_keypair: Option<PathBuf>,
    close_epochs: Option<bool>,
    cosign_for: Option<String>,
    relay: Option<bool>,
    epoch_emission: Option<String>,
    close_grace_secs: Option<i64>,
    scoring_rules: Option<PathBuf>,
    epoch_poll_secs: Option<u64>,
    auto_claim_owners: Option<Vec<String>>,
    grid_tokens: Option<Vec<String>>,
    openadr_clients: Option<Vec<String>>,
    /// `[[vtns]]`: the utilities' VTNs this oracle is a VEN of (settings file only).
    vtns: Option<Vec<crate::openadr::ven::VtnSettings>>,
    public_url: Option<String>,
    wallet_chain: Option<String>,
    dispatch_reserve_pct: Option<u32>,
    measure_delay_secs: Option<i64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    request_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub rpc_url: String,
    pub registry_refresh: Duration,
    pub policy: Policy,
    /// Prune readings older than this many days (see `retention`).
    pub keep_readings_days: Option<i64>,
    pub epochs: EpochRole,
    pub dispatch: DispatchSettings,
    pub openadr_clients: Vec<crate::openadr::Client>,
    pub openadr_private_callbacks: bool,
    pub vtns: Vec<crate::openadr::ven::VtnSettings>,
    pub public_url: Option<String>,
    /// The Wallet Standard chain the wallet pages ask for.
    pub wallet_chain: String,
    /// Certificate chain and key files, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub limits: crate::server::listen::Limits,
}

/// What this oracle does about epochs.
#[derive(Debug, Clone)]
pub struct EpochRole {
    pub close: bool,
    pub cosign_for: Option<String>,
    pub relay: bool,
    pub keypair: PathBuf,
    pub oracle_keypair: PathBuf,
    pub settings: EpochSettings,
    pub poll: Duration,
    pub auto_claim_owners: Vec<Pubkey>,
}

impl EpochRole {
    pub fn active(&self) -> bool {
        self.close || self.relay || self.cosign_for.is_some()
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
        let keypair = args.keypair.clone().or(file.keypair).unwrap_or_else(default_keypair_path);
        let rules = load_rules(args.scoring_rules.clone().or(file.scoring_rules).as_deref())?;
        let pays_price_response = rules.price_response_per_kwh.is_some();
        let emission = parse_ovpp(&args.epoch_emission.clone().or(file.epoch_emission).unwrap_or_else(|| "10000".into()))
            .context("--epoch-emission")?;
        let auto_claim_owners =
            if args.auto_claim_owners.is_empty() { file.auto_claim_owners.unwrap_or_default() } else { args.auto_claim_owners.clone() };
        let epochs = EpochRole {
            close: args.close_epochs || file.close_epochs.unwrap_or(false),
            cosign_for: args.cosign_for.clone().or(file.cosign_for),
            relay: args.relay || file.relay.unwrap_or(false),
            oracle_keypair: args.oracle_keypair.clone().or(file.oracle_keypair).unwrap_or_else(|| keypair.clone()),
            keypair,
            settings: EpochSettings { emission, rules, close_grace_secs: args.close_grace_secs.or(file.close_grace_secs).unwrap_or(120) },
            poll: Duration::from_secs(args.epoch_poll_secs.or(file.epoch_poll_secs).unwrap_or(15).max(1)),
            auto_claim_owners: auto_claim_owners
                .iter()
                .map(|o| Pubkey::from_str(o).map_err(|_| anyhow::anyhow!("--auto-claim-owner {o:?} is not a base58 public key")))
                .collect::<anyhow::Result<_>>()?,
        };
        if epochs.settings.close_grace_secs < 0 {
            anyhow::bail!("--close-grace-secs must be 0 or more (an epoch is never closed before it ends)");
        }
        if epochs.close && epochs.cosign_for.is_some() {
            anyhow::bail!("--close-epochs and --cosign-for exclude each other: a co-signer closes by recomputing the primary's report");
        }
        let reserve_pct = args.dispatch_reserve_pct.or(file.dispatch_reserve_pct).unwrap_or(10);
        if reserve_pct > 100 {
            anyhow::bail!("--dispatch-reserve-pct must be 0 to 100, not {reserve_pct}");
        }
        let dispatch = DispatchSettings {
            grid_tokens: if args.grid_tokens.is_empty() { file.grid_tokens.unwrap_or_default() } else { args.grid_tokens.clone() },
            reserve_bps: reserve_pct * 100,
            measure_delay_secs: args.measure_delay_secs.or(file.measure_delay_secs).unwrap_or(300).max(0),
            measure_price_schedules: pays_price_response,
            ..DispatchSettings::default()
        };
        let openadr_clients: Vec<crate::openadr::Client> =
            (if args.openadr_clients.is_empty() { file.openadr_clients.unwrap_or_default() } else { args.openadr_clients.clone() })
                .iter()
                .map(|c| c.parse().map_err(|e| anyhow::anyhow!("--openadr-client: {e}")))
                .collect::<anyhow::Result<_>>()?;
        if let Some(dup) = openadr_clients.iter().enumerate().find(|(i, c)| openadr_clients[..*i].iter().any(|o| o.id == c.id)) {
            anyhow::bail!("--openadr-client: client id {} is given twice", dup.1.id);
        }
        let vtns = file.vtns.unwrap_or_default();
        for (i, v) in vtns.iter().enumerate() {
            v.check_name().map_err(anyhow::Error::msg)?;
            if vtns[..i].iter().any(|o| o.name == v.name) {
                anyhow::bail!("[[vtns]] name {} is given twice", v.name);
            }
            reqwest::Url::parse(&v.url).with_context(|| format!("[[vtns]] {}: url {:?}", v.name, v.url))?;
        }
        let tls = match (args.tls_cert.clone().or(file.tls_cert), args.tls_key.clone().or(file.tls_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let keep_readings_days = args.keep_readings_days.or(file.keep_readings_days);
        if let Some(days) = keep_readings_days.filter(|d| *d < crate::retention::min_keep_days()) {
            anyhow::bail!(
                "--keep-readings-days {days} is too short: an event's baseline looks back {} days",
                crate::retention::min_keep_days()
            );
        }
        let defaults_limits = crate::server::listen::Limits::default();
        let max_connections = args.max_connections.or(file.max_connections).unwrap_or(defaults_limits.max_connections);
        let request_timeout_secs = args.request_timeout_secs.or(file.request_timeout_secs).unwrap_or(30);
        if max_connections == 0 || request_timeout_secs == 0 {
            anyhow::bail!("--max-connections and --request-timeout-secs must be at least 1");
        }
        let limits = crate::server::listen::Limits {
            max_connections,
            request_timeout: Duration::from_secs(request_timeout_secs),
            ..defaults_limits
        };
        let rpc_url = cluster_url(&args.url.clone().or(file.url).unwrap_or_else(|| "localhost".into()));
        let wallet_chain = args.wallet_chain.clone().or(file.wallet_chain).unwrap_or_else(|| crate::service::wallet_chain(&rpc_url));
        const CHAINS: [&str; 4] = ["solana:mainnet", "solana:devnet", "solana:testnet", "solana:localnet"];
        if !CHAINS.contains(&wallet_chain.as_str()) {
            anyhow::bail!("--wallet-chain must be one of {}, got {wallet_chain:?}", CHAINS.join(", "));
        }
        Ok(Self {
            wallet_chain,
            openadr_clients,
            openadr_private_callbacks: args.openadr_private_callbacks,
            public_url: args.public_url.clone().or(file.public_url).map(|u| u.trim_end_matches('/').to_string()),
            vtns,
            tls,
            limits,
            dispatch,
            listen: args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8787))),
            database_url,
            rpc_url,
            registry_refresh: Duration::from_secs(args.registry_refresh_secs.or(file.registry_refresh_secs).unwrap_or(60).max(1)),
            policy: Policy {
                max_clock_skew_secs: args.max_clock_skew_secs.or(file.max_clock_skew_secs).unwrap_or(defaults.max_clock_skew_secs),
                retention_secs: args.retention_secs.or(file.retention_secs).unwrap_or(defaults.retention_secs),
                ..defaults
            },
            keep_readings_days,
            epochs,
        })
    }
}

/// The scoring rules in the TOML file at `path`, or the published default (rules v2).
pub fn load_rules(path: Option<&std::path::Path>) -> anyhow::Result<ScoringRules> {
    let Some(path) = path else { return Ok(ScoringRules::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading scoring rules {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing scoring rules {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<Settings> {
        let all = ["ovpp-oracle", "--database-url", "sqlite::memory:"].iter().chain(args);
        Settings::resolve(&Command::try_parse_from(all).unwrap().args)
    }

    #[test]
    fn readings_are_kept_at_least_as_long_as_a_baseline_looks_back() {
        let e = resolve(&["--keep-readings-days", "10"]).unwrap_err().to_string();
        assert!(e.contains("too short") && e.contains("46"), "{e}");
        assert_eq!(resolve(&["--keep-readings-days", "60"]).unwrap().keep_readings_days, Some(60));
        assert_eq!(resolve(&[]).unwrap().keep_readings_days, None);
    }

    #[test]
    fn the_wallet_chain_follows_the_cluster_unless_set() {
        assert_eq!(resolve(&["--url", "devnet"]).unwrap().wallet_chain, "solana:devnet");
        assert_eq!(resolve(&["--url", "mainnet-beta"]).unwrap().wallet_chain, "solana:mainnet");
        assert_eq!(resolve(&[]).unwrap().wallet_chain, "solana:localnet");
        assert_eq!(resolve(&["--wallet-chain", "solana:testnet"]).unwrap().wallet_chain, "solana:testnet");
        assert!(resolve(&["--wallet-chain", "ethereum:1"]).is_err());
    }
}
