//! The owner's wallet: making one, its address, and what it holds (SOL for fees, OVPP).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use solana_sdk::signature::{Keypair, Signer};

use ovpp_chain::amount::{format_sol, parse_sol};

use crate::units::format_ovpp;
use crate::{parse_pubkey, CliError, Context};

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Make a new wallet keypair file (Solana CLI format, readable by you only), then use it
    /// with `-k FILE` or put it at ~/.config/solana/id.json.
    ///
    /// Example: ovpp wallet new -o ~/.config/solana/id.json
    New {
        /// Where to write it [default: ~/.config/solana/id.json].
        #[arg(long, short = 'o')]
        outfile: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// The address (public key) of --keypair.
    ///
    /// Example: ovpp -k owner.json wallet address
    Address,
}

/// `ovpp balance [OWNER]`: SOL and OVPP of a wallet (default: --keypair's).
pub async fn balance(ctx: &mut Context<'_>, owner: &Option<String>) -> Result<(), CliError> {
    let owner = match owner {
        Some(text) => parse_pubkey(text, "wallet")?,
        None => ctx.keypair()?.pubkey(),
    };
    let lamports = ctx.chain.get_account(&owner).await?.map_or(0, |a| a.lamports);
    let ovpp = ovpp_chain::accounts::ovpp_balance(ctx.chain.as_ref(), &owner).await?;
    let mut display = format!("Wallet {owner}\nSOL:  {}\nOVPP: {}", format_sol(lamports), format_ovpp(ovpp));
    if lamports == 0 {
        display += "\n(no SOL: this wallet cannot pay transaction fees until it is funded)";
    }
    ctx.emit(json!({"wallet": owner.to_string(), "sol": format_sol(lamports), "lamports": lamports, "ovpp": format_ovpp(ovpp)}), display)
}

/// `ovpp airdrop AMOUNT [WALLET]`: SOL from the cluster's faucet.
pub async fn airdrop(ctx: &mut Context<'_>, amount: &str, wallet: &Option<String>) -> Result<(), CliError> {
    let lamports = parse_sol(amount).map_err(|e| CliError::Invalid(e.to_string()))?;
    if lamports == 0 {
        return Err(CliError::Invalid("an airdrop of 0 SOL does nothing: ask for e.g. 1".into()));
    }
    let to = match wallet {
        Some(text) => parse_pubkey(text, "wallet")?,
        None => ctx.keypair()?.pubkey(),
    };
    ctx.chain.request_airdrop(&to, lamports).await.map_err(|e| {
        CliError::Invalid(format!(
            "the cluster at {} gave no airdrop: {e} (mainnet has no faucet: send SOL from a funded wallet)",
            ctx.cli.url
        ))
    })?;
    let balance = ctx.chain.get_account(&to).await?.map_or(0, |a| a.lamports);
    ctx.emit(
        json!({"wallet": to.to_string(), "airdropped": format_sol(lamports), "sol": format_sol(balance)}),
        format!("Airdropped {} SOL to {to}\nSOL: {}", format_sol(lamports), format_sol(balance)),
    )
}

pub async fn run(ctx: &mut Context<'_>, command: &WalletCommand) -> Result<(), CliError> {
    match command {
        WalletCommand::New { outfile, force } => {
            let path = outfile.clone().unwrap_or_else(ovpp_chain::keypair::default_keypair_path);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| CliError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
            }
            let keypair = Keypair::new();
            crate::write_keypair(&keypair, &path, *force)?;
            ctx.emit(
                json!({"wallet": keypair.pubkey().to_string(), "path": path.display().to_string()}),
                format!(
                    "Wrote wallet keypair {}\nAddress: {}\nKeep the file secret: it controls the wallet. It needs SOL for fees before it can register devices or claim.",
                    path.display(),
                    keypair.pubkey()
                ),
            )
        }
        WalletCommand::Address => {
            let key = ctx.keypair()?.pubkey();
            ctx.emit(json!({"wallet": key.to_string()}), key.to_string())
        }
    }
}
