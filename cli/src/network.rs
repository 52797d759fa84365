//! `ovpp epoch ...` and `ovpp config show`: what the chain says about the network.

use anchor_lang::AccountDeserialize;
use clap::Subcommand;
use ovpp::protocol::{config_address, epoch_address};
use ovpp::state::{Config, Epoch};
use serde_json::{json, Value};

use crate::units::format_ovpp;
use crate::{CliError, Context};

#[derive(Subcommand, Debug)]
pub enum EpochCommand {
    /// The most recent posted epochs.
    ///
    /// Example: ovpp epoch list --limit 5
    List {
        /// How many, newest first.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
    },
    /// One posted epoch.
    ///
    /// Example: ovpp epoch show 3
    Show {
        /// The epoch number.
        epoch: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// The network's parameters, oracle set and totals.
    ///
    /// Example: ovpp config show --output json
    Show,
}

pub async fn fetch_config(ctx: &Context<'_>) -> Result<Config, CliError> {
    let account = ctx
        .chain
        .get_account(&config_address().0)
        .await?
        .filter(|a| a.owner == ovpp::ID)
        .ok_or_else(|| CliError::NotFound(format!("the ovpp program {} is not initialized on {}", ovpp::ID, ctx.cli.url)))?;
    Config::try_deserialize(&mut account.data.as_slice()).map_err(|e| CliError::Rpc(format!("config account: {e}")))
}

fn epoch_json(e: &Epoch) -> Value {
    json!({
        "epoch": e.epoch,
        "address": epoch_address(e.epoch).0.to_string(),
        "root": hex::encode(e.root),
        "cumulative_total": format_ovpp(e.cumulative_total),
        "leaf_count": e.leaf_count,
        "report_hash": hex::encode(e.report_hash),
        "signers": e.signers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "posted_slot": e.posted_slot,
        "posted_at": e.posted_at,
    })
}

async fn fetch_epochs(ctx: &Context<'_>, epochs: &[u64]) -> Result<Vec<Epoch>, CliError> {
    let addresses: Vec<_> = epochs.iter().map(|&e| epoch_address(e).0).collect();
    Ok(ctx
        .chain
        .get_accounts(&addresses)
        .await?
        .into_iter()
        .flatten()
        .filter(|a| a.owner == ovpp::ID)
        .filter_map(|a| Epoch::try_deserialize(&mut a.data.as_slice()).ok())
        .collect())
}

pub async fn run_epoch(ctx: &mut Context<'_>, command: &EpochCommand) -> Result<(), CliError> {
    match command {
        EpochCommand::List { limit } => {
            let last = fetch_config(ctx).await?.last_epoch;
            let first = last.saturating_sub(limit.saturating_sub(1)).max(1);
            let epochs: Vec<u64> = (first..=last).rev().collect();
            let epochs = fetch_epochs(ctx, &epochs).await?;
            let mut display = format!("{:>6}  {:>22}  {:>8}  {:>7}  {}", "EPOCH", "CUMULATIVE OVPP", "LEAVES", "SIGNERS", "ROOT");
            for e in &epochs {
                display += &format!(
                    "\n{:>6}  {:>22}  {:>8}  {:>7}  {}",
                    e.epoch,
                    format_ovpp(e.cumulative_total),
                    e.leaf_count,
                    e.signers.len(),
                    hex::encode(e.root)
                );
            }
            if epochs.is_empty() {
                display = "No epoch posted yet".into();
            }
            ctx.emit(Value::Array(epochs.iter().map(epoch_json).collect()), display)
        }
        EpochCommand::Show { epoch } => {
            let e = fetch_epochs(ctx, &[*epoch]).await?.pop().ok_or_else(|| CliError::NotFound(format!("epoch {epoch} is not posted")))?;
            let display = format!(
                "Epoch {}\n  Root:             {}\n  Cumulative total: {} OVPP\n  Leaves:           {}\n  Report hash:      {}\n  Signed by:        {}\n  Posted:           {} (slot {})",
                e.epoch,
                hex::encode(e.root),
                format_ovpp(e.cumulative_total),
                e.leaf_count,
                hex::encode(e.report_hash),
                e.signers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                crate::units::format_time(e.posted_at, ovpp_wire::clock::unix_now()),
                e.posted_slot
            );
            ctx.emit(epoch_json(&e), display)
        }
    }
}

pub async fn run_config(ctx: &mut Context<'_>, ConfigCommand::Show: &ConfigCommand) -> Result<(), CliError> {
    let c = fetch_config(ctx).await?;
    let json = json!({
        "program_id": ovpp::ID.to_string(),
        "config": config_address().0.to_string(),
        "authority": c.authority.to_string(),
        "pending_authority": c.pending_authority.map(|a| a.to_string()),
        "mint": c.mint.to_string(),
        "oracles": c.oracles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "threshold": c.threshold,
        "epoch_length_secs": c.epoch_length_secs,
        "emission_cap_per_epoch": format_ovpp(c.emission_cap_per_epoch),
        "last_epoch": c.last_epoch,
        "next_epoch_ends_at": c.epoch_end_ts(c.last_epoch + 1),
        "cumulative_total": format_ovpp(c.cumulative_total),
        "total_claimed": format_ovpp(c.total_claimed),
        "paused": c.paused,
    });
    let display = format!(
        "Program:          {}\nAuthority:        {}{}\nOVPP mint:        {}\nOracles:          {} of {}: {}\nEpoch length:     {} s (epoch {} ends at {})\nEmission cap:     {} OVPP per epoch\nLast epoch:       {}\nEarned in total:  {} OVPP ({} claimed)\nPaused:           {}",
        ovpp::ID,
        c.authority,
        c.pending_authority.map_or(String::new(), |p| format!(" (proposed: {p})")),
        c.mint,
        c.threshold,
        c.oracles.len(),
        c.oracles.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        c.epoch_length_secs,
        c.last_epoch + 1,
        c.epoch_end_ts(c.last_epoch + 1).map_or("-".into(), |t| crate::units::format_time(t, ovpp_wire::clock::unix_now())),
        format_ovpp(c.emission_cap_per_epoch),
        c.last_epoch,
        format_ovpp(c.cumulative_total),
        format_ovpp(c.total_claimed),
        c.paused
    );
    ctx.emit(json, display)
}
