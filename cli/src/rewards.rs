//! `ovpp rewards ...`: what a device earned (the oracle's latest leaf) against what it has
//! claimed (its on-chain account), and claiming the difference with proofs checked locally
//! against the chain's roots before anything is sent.

use anchor_lang::prelude::Pubkey;
use clap::Subcommand;
use ovpp::protocol::{leaf_hash, root_from_proof};
use ovpp::state::{Config, Device, DeviceStatus};
use serde_json::{json, Value};
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::Signer;

use crate::device::{fetch_device, list_devices};
use crate::oracle::{fetch_earned, Earned};
use crate::units::format_ovpp;
use crate::{parse_pubkey, CliError, Context};

#[derive(Subcommand, Debug)]
pub enum RewardsCommand {
    /// Earned, claimed and claimable OVPP of a device, or of all your devices.
    ///
    /// Example: ovpp -k owner.json rewards show
    Show {
        /// Device key [default: every device owned by --keypair].
        device: Option<String>,
    },
    /// Claim for a device, or for all your devices with --all (several per transaction).
    ///
    /// Example: ovpp -k owner.json rewards claim --all
    Claim {
        /// Device key.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        device: Option<String>,
        /// Every device owned by --keypair.
        #[arg(long)]
        all: bool,
    },
}

/// The proof must lead to the root the chain holds for the leaf's epoch.
fn check_proof(config: &Config, device: &Pubkey, earned: &Earned) -> Result<(), CliError> {
    let root = config.root_for(earned.leaf.epoch).ok_or_else(|| {
        CliError::Invalid(format!(
            "the oracle's leaf is for epoch {}, which is not among the chain's recent roots (the oracle is out of date)",
            earned.leaf.epoch
        ))
    })?;
    if root_from_proof(leaf_hash(&ovpp::ID, device, &earned.leaf), &earned.proof) != root {
        return Err(CliError::Invalid(format!(
            "the oracle's proof for {device} does not lead to the chain's root of epoch {}: not sending it",
            earned.leaf.epoch
        )));
    }
    Ok(())
}

async fn devices_of(ctx: &Context<'_>, device: &Option<String>) -> Result<Vec<Device>, CliError> {
    match device {
        Some(key) => Ok(vec![fetch_device(ctx, &parse_pubkey(key, "device")?).await?]),
        None => list_devices(ctx, Some(ctx.keypair()?.pubkey()), None, None).await,
    }
}

pub async fn run(ctx: &mut Context<'_>, command: &RewardsCommand) -> Result<(), CliError> {
    match command {
        RewardsCommand::Show { device } => {
            let devices = devices_of(ctx, device).await?;
            let mut rows = Vec::new();
            // The oracle's proofs are older than the chain's latest epoch (it is behind).
            let mut behind = None;
            let mut display =
                format!("{:<44}  {:>6}  {:>20}  {:>20}  {:>20}", "DEVICE", "EPOCH", "EARNED OVPP", "CLAIMED OVPP", "CLAIMABLE OVPP");
            for d in &devices {
                let earned = fetch_earned(ctx, &d.device_key).await?;
                let total = earned.as_ref().map_or(0, |e| e.leaf.cumulative_amount);
                let claimable = if d.status == DeviceStatus::Active { total.saturating_sub(d.claimed) } else { 0 };
                let epoch = earned.as_ref().map(|e| e.leaf.epoch);
                if let Some(e) = earned.as_ref().filter(|e| e.chain_last_epoch > e.leaf.epoch) {
                    behind = Some((e.leaf.epoch, e.chain_last_epoch));
                }
                let row = json!({
                    "device_key": d.device_key.to_string(),
                    "epoch": epoch,
                    "earned": format_ovpp(total),
                    "claimed": format_ovpp(d.claimed),
                    "claimable": format_ovpp(claimable),
                });
                rows.push((row, total, d.claimed, claimable));
                display += &format!(
                    "\n{:<44}  {:>6}  {:>20}  {:>20}  {:>20}",
                    d.device_key.to_string(),
                    epoch.map_or("-".into(), |e| e.to_string()),
                    format_ovpp(total),
                    format_ovpp(d.claimed),
                    format_ovpp(claimable)
                );
            }
            let earned: u64 = rows.iter().map(|r| r.1).sum();
            let claimed: u64 = rows.iter().map(|r| r.2).sum();
            let claimable: u64 = rows.iter().map(|r| r.3).sum();
            display += &format!(
                "\n{:<44}  {:>6}  {:>20}  {:>20}  {:>20}",
                format!("TOTAL ({} devices)", rows.len()),
                "",
                format_ovpp(earned),
                format_ovpp(claimed),
                format_ovpp(claimable)
            );
            if let Some((leaf_epoch, chain_epoch)) = behind {
                display += &format!(
                    "\n(the oracle's latest proofs are from epoch {leaf_epoch}; the chain has posted up to epoch {chain_epoch}: this oracle has not closed the newer ones, so more may be claimable from another oracle)"
                );
            }
            let devices: Vec<Value> = rows.into_iter().map(|r| r.0).collect();
            let json = json!({
                "devices": devices,
                "total": {"earned": format_ovpp(earned), "claimed": format_ovpp(claimed), "claimable": format_ovpp(claimable)},
            });
            ctx.emit(json, display)
        }
        RewardsCommand::Claim { device, all: _ } => {
            let payer = ctx.keypair()?;
            let mut config = crate::network::fetch_config(ctx).await?;
            let devices = devices_of(ctx, device).await?;
            let mut claims: Vec<(Pubkey, u64, Instruction)> = Vec::new();
            let mut epochs = std::collections::HashMap::new();
            // Claimed tokens go to each device's owner, whoever pays the fee.
            let mut owners = std::collections::HashMap::new();
            for d in &devices {
                if d.status != DeviceStatus::Active {
                    if device.is_some() {
                        let status = if d.status == DeviceStatus::Retired { "retired" } else { "suspended" };
                        return Err(CliError::Invalid(format!("device {} is {status}: it cannot claim", d.device_key)));
                    }
                    continue;
                }
                let Some(earned) = fetch_earned(ctx, &d.device_key).await? else { continue };
                if earned.leaf.cumulative_amount <= d.claimed {
                    continue;
                }
                if check_proof(&config, &d.device_key, &earned).is_err() {
                    // An epoch may have been posted since the configuration was read.
                    config = crate::network::fetch_config(ctx).await?;
                    check_proof(&config, &d.device_key, &earned)?;
                }
                let amount = earned.leaf.cumulative_amount - d.claimed;
                epochs.insert(d.device_key, earned.leaf.epoch);
                let ix = ovpp::client::claim(payer.pubkey(), &d.device_key, d.owner, earned.leaf, earned.proof);
                owners.insert(d.device_key, d.owner);
                claims.push((d.device_key, amount, ix));
            }
            if claims.is_empty() {
                return ctx.emit(json!({"claims": []}), "Nothing to claim");
            }
            let mut results = Vec::new();
            for batch in ovpp_chain::packing::pack(&claims, &payer.pubkey(), |(_, _, ix)| ix) {
                let ixs: Vec<Instruction> = batch.iter().map(|(_, _, ix)| ix.clone()).collect();
                let signature = match ctx.send(&ixs, &[&payer]).await {
                    Ok(signature) => signature,
                    Err(e) => {
                        // What landed before stays landed: say so, then why this batch failed.
                        let devices: Vec<String> = batch.iter().map(|(key, _, _)| key.to_string()).collect();
                        if !results.is_empty() {
                            ctx.emit(json!({"claims": results}), "(the claims above landed)")?;
                        }
                        return Err(CliError::Invalid(format!("claiming for {}: {e}", devices.join(", "))));
                    }
                };
                let mut display = String::new();
                for (key, amount, _) in batch {
                    let owner = owners[key];
                    results.push(json!({"device_key": key.to_string(), "owner": owner.to_string(), "amount": format_ovpp(*amount), "epoch": epochs.get(key), "signature": signature}));
                    if owner == payer.pubkey() {
                        display += &format!("Claimed {} OVPP for {key}\n", format_ovpp(*amount));
                    } else {
                        display += &format!("Claimed {} OVPP for {key}: paid to its owner {owner}, not to you\n", format_ovpp(*amount));
                    }
                }
                if ctx.cli.output == crate::OutputFormat::Display {
                    writeln!(ctx.out, "{display}Signature: {signature}")?;
                }
            }
            let total: u64 = claims.iter().map(|(_, amount, _)| amount).sum();
            let mut recipients: Vec<Pubkey> = owners.values().copied().collect();
            recipients.sort();
            recipients.dedup();
            let mut balances = Vec::new();
            let mut display = format!("Claimed {} OVPP in total", format_ovpp(total));
            for owner in &recipients {
                let balance = ovpp_chain::accounts::ovpp_balance(ctx.chain.as_ref(), owner).await?;
                balances.push(json!({"owner": owner.to_string(), "ovpp": format_ovpp(balance)}));
                display += &format!("\nBalance of {owner}: {} OVPP", format_ovpp(balance));
            }
            if ctx.cli.output == crate::OutputFormat::Display {
                return ctx.emit(Value::Null, display);
            }
            ctx.emit(json!({"claims": results, "total": format_ovpp(total), "balances": balances}), "")
        }
    }
}
