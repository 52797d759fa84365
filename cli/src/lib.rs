//! `ovpp`, the OpenVPP command line for device owners and operators. The commands build
//! instructions with `ovpp::client` (shared with the oracle) and go through the chain
//! interface of `ovpp_chain`: JSON-RPC for clusters, the in-process bank in tests.
//! [`main_with`] is the whole program, so tests drive exactly what users run.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use ovpp_chain::Chain;
use serde_json::Value;
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

mod admin;
mod device;
pub mod error;
mod gov;
mod network;
mod oracle;
mod rewards;
pub mod units;
mod wallet;

pub use error::CliError;

#[derive(Parser, Debug)]
#[command(name = "ovpp", version, about = "OpenVPP: register devices, claim OVPP, operate the network")]
pub struct Cli {
    /// Solana cluster: mainnet-beta, devnet, testnet, localhost, or an RPC URL.
    #[arg(help_heading = "Global options", long = "url", short = 'u', global = true, env = "OVPP_RPC_URL", default_value = "localhost")]
    pub url: String,
    /// Keypair that signs and pays (the owner, or the operator) [default: ~/.config/solana/id.json].
    #[arg(help_heading = "Global options", long, short = 'k', global = true, env = "OVPP_KEYPAIR")]
    pub keypair: Option<PathBuf>,
    /// Commitment level of reads and confirmations.
    #[arg(help_heading = "Global options", long, global = true, default_value = "confirmed", value_parser = ["processed", "confirmed", "finalized"])]
    pub commitment: String,
    /// Output format.
    #[arg(help_heading = "Global options", long, global = true, value_enum, default_value_t = OutputFormat::Display)]
    pub output: OutputFormat,
    /// Base URL of an OpenVPP oracle (for rewards and proofs).
    #[arg(help_heading = "Global options", long, global = true, env = "OVPP_ORACLE_URL", default_value = "http://127.0.0.1:8787")]
    pub oracle_url: String,
    /// The program id this CLI talks to; it is built for one program and refuses another.
    #[arg(help_heading = "Global options", long, global = true, env = "OVPP_PROGRAM_ID")]
    pub program_id: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Display,
    Json,
    JsonCompact,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Device identity: keys, registration, changes, listing.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// OVPP earned by devices: what is claimable, and claiming it.
    #[command(subcommand)]
    Rewards(rewards::RewardsCommand),
    /// Posted epochs.
    #[command(subcommand)]
    Epoch(network::EpochCommand),
    /// The network's on-chain configuration.
    #[command(subcommand)]
    Config(network::ConfigCommand),
    /// Operator commands (signed by the authority).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Governance by OVPP holders: lock, propose, vote, execute.
    #[command(subcommand)]
    Gov(gov::GovCommand),
    /// A wallet for owners: make one, show its address.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// SOL from the cluster's faucet, for fees (the local network, devnet, testnet).
    ///
    /// Example: ovpp -k owner.json airdrop 1
    Airdrop {
        /// SOL, e.g. `1` or `0.5` (the local network gives at most 10 at a time).
        amount: String,
        /// The wallet to fund [default: --keypair's].
        wallet: Option<String>,
    },
    /// SOL and OVPP of a wallet [default: --keypair's].
    ///
    /// Example: ovpp -k owner.json balance
    Balance {
        /// The wallet's address.
        wallet: Option<String>,
    },
}

/// What every command works with.
pub struct Context<'a> {
    pub cli: &'a Cli,
    pub chain: Arc<dyn Chain>,
    pub out: &'a mut dyn Write,
}

impl Context<'_> {
    /// `--keypair`, or the Solana CLI's default keypair.
    pub fn keypair(&self) -> Result<Keypair, CliError> {
        let path = self.cli.keypair.clone().unwrap_or_else(ovpp_chain::keypair::default_keypair_path);
        read_keypair(&path)
    }

    /// Prints `json` (with `--output json`) or `display`.
    pub fn emit(&mut self, json: Value, display: impl std::fmt::Display) -> Result<(), CliError> {
        match self.cli.output {
            OutputFormat::Display => writeln!(self.out, "{display}")?,
            OutputFormat::Json => writeln!(self.out, "{}", serde_json::to_string_pretty(&json).expect("JSON values serialize"))?,
            OutputFormat::JsonCompact => writeln!(self.out, "{json}")?,
        }
        Ok(())
    }

    /// An error about the oracle at `--oracle-url`.
    pub fn oracle_error(&self, message: String) -> CliError {
        CliError::Oracle { url: self.cli.oracle_url.trim_end_matches('/').to_string(), message }
    }

    /// Sends `method path` (with a JSON `body`) to the oracle; returns the status and the
    /// JSON answer, whatever the status (callers decide what an error answer means).
    pub async fn oracle(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value), CliError> {
        let url = format!("{}{path}", self.cli.oracle_url.trim_end_matches('/'));
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().map_err(|e| self.oracle_error(e.to_string()))?;
        let mut request = http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.oracle_error(format!("no answer: {e} (choose the oracle with --oracle-url or OVPP_ORACLE_URL)")))?;
        let status = response.status();
        let answer = response.json().await.map_err(|e| self.oracle_error(format!("HTTP {status}, not an oracle's answer: {e}")))?;
        Ok((status, answer))
    }

    /// Signs `instructions` with `signers` (the first pays) and sends them; returns the
    /// transaction signature once confirmed.
    pub async fn send(&self, instructions: &[Instruction], signers: &[&Keypair]) -> Result<String, CliError> {
        let blockhash = self.chain.latest_blockhash().await?;
        let transaction = build_transaction(instructions, signers, blockhash);
        match self.chain.send_transaction(&transaction).await {
            Ok(()) => Ok(transaction.signatures[0].to_string()),
            // The runtime's words ("no record of a prior credit") for a fee payer without SOL.
            Err(ovpp_chain::ChainError::Rejected(
                solana_sdk::transaction::TransactionError::AccountNotFound
                | solana_sdk::transaction::TransactionError::InsufficientFundsForFee,
            )) => Err(CliError::Unfunded { wallet: signers[0].pubkey().to_string() }),
            Err(e) => Err(e.into()),
        }
    }
}

/// The one way this CLI builds a transaction, whatever the chain connection.
pub fn build_transaction(instructions: &[Instruction], signers: &[&Keypair], blockhash: solana_sdk::hash::Hash) -> Transaction {
    Transaction::new_signed_with_payer(instructions, Some(&signers[0].pubkey()), signers, blockhash)
}

/// Writes `keypair` to `path` in the Solana CLI's format, readable by the owner only; never
/// over another key by accident (a new file unless `force`).
pub fn write_keypair(keypair: &Keypair, path: &std::path::Path, force: bool) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    if force {
        options.write(true).create(true).truncate(true);
    } else {
        options.write(true).create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::Invalid(format!("{} exists; pass --force to overwrite it", path.display())),
        _ => CliError::Invalid(format!("cannot write {}: {e}", path.display())),
    })?;
    let write_error = |e: std::io::Error| CliError::Invalid(format!("cannot write {}: {e}", path.display()));
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(write_error)?;
    file.write_all(serde_json::to_string(&keypair.to_bytes().to_vec()).expect("bytes serialize").as_bytes()).map_err(write_error)
}

pub fn read_keypair(path: &std::path::Path) -> Result<Keypair, CliError> {
    Ok(ovpp_chain::keypair::read_keypair(path)?)
}

pub fn parse_pubkey(text: &str, what: &str) -> Result<anchor_lang::prelude::Pubkey, CliError> {
    text.parse().map_err(|_| CliError::Invalid(format!("{what} {text:?} is not a base58 public key")))
}

/// Runs the CLI on `args` (program name first) against `chain` (`None`: JSON-RPC at
/// `--url`), writing to `stdout`/`stderr`. Returns the process exit code: 0, 1 for a
/// failed command, 2 for bad usage.
pub async fn main_with<I, T>(args: I, chain: Option<Arc<dyn Chain>>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = if code == 0 {
                write!(stdout, "{}", e.render())
            } else if wants_json(&args) {
                // A script asked for JSON: a mistyped command is an answer in the error shape too.
                let message = e.render().to_string();
                let message = message.trim().strip_prefix("error: ").unwrap_or(message.trim());
                writeln!(stderr, "{}", serde_json::to_string(&ovpp_wire::http::ErrorBody::new("usage", message)).expect("serializes"))
            } else {
                write!(stderr, "{}", e.render())
            };
            return code;
        }
    };
    let chain = chain.unwrap_or_else(|| {
        let commitment = cli.commitment.parse().unwrap_or_default();
        Arc::new(ovpp_chain::RpcChain::with_commitment(ovpp_chain::cluster::cluster_url(&cli.url), commitment))
    });
    let mut ctx = Context { cli: &cli, chain, out: stdout };
    match run(&mut ctx).await {
        Ok(()) => 0,
        Err(e) => {
            let _ = match cli.output {
                OutputFormat::Display => writeln!(stderr, "error: {e}"),
                // Scripts read errors as they read answers, in the oracle's error shape.
                OutputFormat::Json | OutputFormat::JsonCompact => {
                    writeln!(
                        stderr,
                        "{}",
                        serde_json::to_string(&ovpp_wire::http::ErrorBody::new(e.code(), e.to_string())).expect("serializes")
                    )
                }
            };
            1
        }
    }
}

/// `--output json` (or `json-compact`) among arguments that did not parse.
fn wants_json(args: &[OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.windows(2).any(|pair| pair[0] == "--output" && pair[1].starts_with("json"))
        || args.iter().any(|a| a.strip_prefix("--output=").is_some_and(|v| v.starts_with("json")))
}

async fn run(ctx: &mut Context<'_>) -> Result<(), CliError> {
    if let Some(id) = &ctx.cli.program_id {
        if parse_pubkey(id, "--program-id")? != ovpp::ID {
            return Err(CliError::Invalid(format!("this ovpp CLI is built for program {}, not {id}", ovpp::ID)));
        }
    }
    let cli = ctx.cli;
    match &cli.command {
        Command::Device(command) => device::run(ctx, command).await,
        Command::Rewards(command) => rewards::run(ctx, command).await,
        Command::Epoch(command) => network::run_epoch(ctx, command).await,
        Command::Config(command) => network::run_config(ctx, command).await,
        Command::Admin(command) => admin::run(ctx, command).await,
        Command::Gov(command) => gov::run(ctx, command).await,
        Command::Wallet(command) => wallet::run(ctx, command).await,
        Command::Balance { wallet } => wallet::balance(ctx, wallet).await,
        Command::Airdrop { amount, wallet } => wallet::airdrop(ctx, amount, wallet).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        // Clap checks names, conflicts and defaults of every subcommand here, not at run time
        // in release builds.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    /// `--help` is where a newcomer learns the CLI: every flag says what it is, every command
    /// shows an example, and the global options stand apart from a command's own.
    #[test]
    fn every_flag_is_described_and_every_command_has_an_example() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>: no description"));
                }
                if path == "ovpp" && arg.is_global_set() && arg.get_help_heading() != Some("Global options") {
                    missing.push(format!("{path} <{id}>: a global option outside \"Global options\""));
                }
            }
            let subcommands: Vec<&clap::Command> = command.get_subcommands().filter(|c| c.get_name() != "help").collect();
            if subcommands.is_empty() && !command.get_long_about().is_some_and(|a| a.to_string().contains("Example: ovpp ")) {
                missing.push(format!("{path}: no example"));
            }
            for sub in subcommands {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&<super::Cli as clap::CommandFactory>::command(), "ovpp", &mut missing);
        assert!(missing.is_empty(), "{} gaps in --help:\n{}", missing.len(), missing.join("\n"));
    }
}
