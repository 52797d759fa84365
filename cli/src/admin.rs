//! `ovpp admin ...`: operator commands, signed by the authority (--keypair). Parameters
//! are checked locally with the program's own rules before anything is sent.

use clap::Subcommand;
use ovpp::instructions::InitializeArgs;
use serde_json::json;
use solana_sdk::signature::Signer;

use crate::error::local_check;
use crate::units::parse_ovpp;
use crate::{parse_pubkey, CliError, Context};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Initialize the program (signed by its upgrade authority): config, OVPP mint, oracle set.
    ///
    /// Example: ovpp -k authority.json admin init --oracle De6175nq1Zsgbc8bVV6NTyh2Fu5c8fEWUPQL1qUoAuaH --threshold 1 --epoch-length 3600 --emission-cap 10000
    Init {
        /// An oracle key (repeat for each).
        #[arg(long = "oracle", required = true)]
        oracles: Vec<String>,
        /// Signatures needed to post an epoch.
        #[arg(long)]
        threshold: u8,
        /// Epoch length in seconds.
        #[arg(long, default_value_t = 86_400)]
        epoch_length: u32,
        /// Most OVPP one epoch may add.
        #[arg(long, value_parser = parse_ovpp)]
        emission_cap: u64,
        /// Token metadata JSON URI for wallets.
        #[arg(long, default_value = "")]
        metadata_uri: String,
    },
    /// Replace the oracle set and threshold.
    ///
    /// Example: ovpp -k authority.json admin set-oracles --oracle De6175nq1Zsgbc8bVV6NTyh2Fu5c8fEWUPQL1qUoAuaH --oracle 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv --threshold 2
    SetOracles {
        /// An oracle key (repeat for each).
        #[arg(long = "oracle", required = true)]
        oracles: Vec<String>,
        /// Signatures needed to post an epoch.
        #[arg(long)]
        threshold: u8,
    },
    /// Change the emission cap and/or the epoch length.
    ///
    /// Example: ovpp -k authority.json admin set-params --emission-cap 5000 --epoch-length 86400
    SetParams {
        /// Most OVPP one epoch may add.
        #[arg(long, value_parser = parse_ovpp)]
        emission_cap: Option<u64>,
        /// Epoch length in seconds (from the next epoch on).
        #[arg(long)]
        epoch_length: Option<u32>,
    },
    /// Stop registration, device changes, posting and claims.
    ///
    /// Example: ovpp -k authority.json admin pause
    Pause,
    /// Lift the pause.
    ///
    /// Example: ovpp -k authority.json admin unpause
    Unpause,
    /// Propose a new authority (a multisig or governance PDA), which must accept.
    ///
    /// Example: ovpp -k authority.json admin propose-authority De6175nq1Zsgbc8bVV6NTyh2Fu5c8fEWUPQL1qUoAuaH
    ProposeAuthority {
        /// The proposed authority's public key.
        #[arg(required_unless_present = "cancel", conflicts_with = "cancel")]
        new_authority: Option<String>,
        /// Withdraw the pending proposal.
        #[arg(long)]
        cancel: bool,
    },
    /// Accept the authority proposed to --keypair.
    ///
    /// Example: ovpp -k new-authority.json admin accept-authority
    AcceptAuthority,
}

fn oracle_keys(oracles: &[String], threshold: u8) -> Result<Vec<anchor_lang::prelude::Pubkey>, CliError> {
    let keys = oracles.iter().map(|o| parse_pubkey(o, "oracle")).collect::<Result<Vec<_>, _>>()?;
    local_check(ovpp::limits::check_oracle_set(&keys, threshold))?;
    Ok(keys)
}

pub async fn run(ctx: &mut Context<'_>, command: &AdminCommand) -> Result<(), CliError> {
    let authority = ctx.keypair()?;
    let (ix, done) = match command {
        AdminCommand::Init { oracles, threshold, epoch_length, emission_cap, metadata_uri } => {
            let oracles = oracle_keys(oracles, *threshold)?;
            local_check(ovpp::limits::check_epoch_length(*epoch_length))?;
            local_check(ovpp::limits::check_emission_cap(*emission_cap))?;
            let args = InitializeArgs {
                oracles,
                threshold: *threshold,
                epoch_length_secs: *epoch_length,
                emission_cap_per_epoch: *emission_cap,
                metadata_uri: metadata_uri.clone(),
            };
            (
                vec![ovpp::client::initialize(authority.pubkey(), args)],
                format!("Initialized; OVPP mint {}", ovpp::protocol::mint_address().0),
            )
        }
        AdminCommand::SetOracles { oracles, threshold } => {
            let keys = oracle_keys(oracles, *threshold)?;
            (
                vec![ovpp::client::set_oracle_set(authority.pubkey(), keys, *threshold)],
                format!("Oracle set: {threshold} of {}", oracles.len()),
            )
        }
        AdminCommand::SetParams { emission_cap, epoch_length } => {
            let mut ixs = Vec::new();
            if let Some(cap) = emission_cap {
                local_check(ovpp::limits::check_emission_cap(*cap))?;
                ixs.push(ovpp::client::set_emission_cap(authority.pubkey(), *cap));
            }
            if let Some(secs) = epoch_length {
                local_check(ovpp::limits::check_epoch_length(*secs))?;
                ixs.push(ovpp::client::set_epoch_length(authority.pubkey(), *secs));
            }
            if ixs.is_empty() {
                return Err(CliError::Invalid("nothing to change: pass --emission-cap and/or --epoch-length".into()));
            }
            (ixs, "Parameters changed".into())
        }
        AdminCommand::Pause => (vec![ovpp::client::set_paused(authority.pubkey(), true)], "Paused".into()),
        AdminCommand::Unpause => (vec![ovpp::client::set_paused(authority.pubkey(), false)], "Unpaused".into()),
        AdminCommand::ProposeAuthority { new_authority, cancel: _ } => {
            let proposed = new_authority.as_deref().map(|a| parse_pubkey(a, "new authority")).transpose()?;
            let done = proposed
                .map_or("Proposal withdrawn".into(), |p| format!("Proposed {p} as authority; it must run `ovpp admin accept-authority`"));
            (vec![ovpp::client::propose_authority(authority.pubkey(), proposed)], done)
        }
        AdminCommand::AcceptAuthority => {
            (vec![ovpp::client::accept_authority(authority.pubkey())], format!("{} is now the authority", authority.pubkey()))
        }
    };
    let signature = ctx.send(&ix, &[&authority]).await?;
    ctx.emit(json!({"status": done, "signature": signature}), format!("{done}\nSignature: {signature}"))
}
