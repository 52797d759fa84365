//! `ovpp gov ...`: governance by OVPP holders. Lock OVPP for voting power, propose typed
//! parameter changes, vote, and execute passed proposals; `init` hands the network's
//! configuration to governance (signed by the current authority).

use anchor_lang::prelude::Pubkey;
use anchor_lang::{AccountDeserialize, Discriminator};
use clap::{Args, Subcommand};
use ovpp::limits::voting_power;
use ovpp::protocol::{escrow_address, governance_address, proposal_address};
use ovpp::state::{Escrow, Governance, GovernanceChange, GovernanceParams, Proposal};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use solana_sdk::signature::Signer;

use crate::error::local_check;
use crate::units::{format_ovpp, parse_duration, parse_ovpp, parse_percent_bps};
use crate::{parse_pubkey, CliError, Context};

#[derive(Subcommand, Debug)]
pub enum GovCommand {
    /// Hand the network's configuration to governance (signed by the current authority);
    /// the authority keeps only an emergency pause, unless --no-emergency-pauser.
    ///
    /// Example: ovpp -k authority.json gov init --voting-period 3d --timelock 2d --quorum 20
    Init {
        #[command(flatten)]
        params: ParamArgs,
        /// Who may pause in an emergency [default: --keypair].
        #[arg(long, conflicts_with = "no_emergency_pauser")]
        emergency_pauser: Option<String>,
        /// No emergency pauser: only a passed proposal can pause.
        #[arg(long)]
        no_emergency_pauser: bool,
    },
    /// Lock OVPP for voting power (1x to 4x with the lock's length, one week to four years);
    /// with an existing lock, adds to it and extends it.
    ///
    /// Example: ovpp -k holder.json gov lock 100 --for 1y
    Lock {
        /// OVPP to lock (0 with --for only extends).
        #[arg(value_parser = parse_ovpp)]
        amount: u64,
        /// How long: `1w`, `90d`, `4y`.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<u64>,
    },
    /// Withdraw all locked OVPP once the lock has ended.
    ///
    /// Example: ovpp -k holder.json gov unlock
    Unlock,
    /// Propose a change (needs the minimum voting power).
    Propose {
        #[command(subcommand)]
        change: ChangeCommand,
        /// What and why; its sha256 is stored on-chain.
        #[arg(long, global = true, default_value = "")]
        description: String,
    },
    /// Vote on a proposal with all your locked OVPP.
    ///
    /// Example: ovpp -k holder.json gov vote 0 --for
    Vote {
        /// The proposal's number.
        id: u64,
        /// Vote for it.
        #[arg(long = "for", conflicts_with = "against", required_unless_present = "against")]
        support: bool,
        /// Vote against it.
        #[arg(long)]
        against: bool,
    },
    /// Execute a proposal that passed, after its timelock (anyone may).
    ///
    /// Example: ovpp -k holder.json gov execute 0
    Execute {
        /// The proposal's number.
        id: u64,
    },
    /// All proposals with their status and tallies.
    ///
    /// Example: ovpp gov list
    List,
    /// Governance parameters and your lock, or one proposal.
    ///
    /// Example: ovpp -k holder.json gov show 0
    Show {
        /// A proposal's number [default: the parameters and your lock].
        id: Option<u64>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ParamArgs {
    /// How long a proposal is open for votes: `3d`.
    #[arg(long, value_parser = parse_duration, default_value = "3d")]
    pub voting_period: u64,
    /// How long a passed proposal waits before it can be executed: `2d`.
    #[arg(long, value_parser = parse_duration, default_value = "2d")]
    pub timelock: u64,
    /// Share of all locked OVPP that must vote, percent.
    #[arg(long, value_parser = parse_percent_bps, default_value = "20")]
    pub quorum: u16,
    /// Share of the power cast that must be for (more than), percent.
    #[arg(long, value_parser = parse_percent_bps, default_value = "50")]
    pub approval: u16,
    /// Voting power needed to propose, OVPP.
    #[arg(long, value_parser = parse_ovpp, default_value = "1000")]
    pub min_proposal_power: u64,
}

impl ParamArgs {
    fn params(&self) -> Result<GovernanceParams, CliError> {
        let secs = |s: u64| u32::try_from(s).map_err(|_| CliError::Invalid(format!("{s} s is too long")));
        let params = GovernanceParams {
            voting_period_secs: secs(self.voting_period)?,
            timelock_secs: secs(self.timelock)?,
            quorum_bps: self.quorum,
            approval_bps: self.approval,
            min_proposal_power: self.min_proposal_power,
        };
        local_check(ovpp::limits::check_governance_params(&params))?;
        Ok(params)
    }
}

#[derive(Subcommand, Debug)]
pub enum ChangeCommand {
    /// Replace the oracle set and threshold.
    ///
    /// Example: ovpp -k holder.json gov propose oracle-set --oracle De6175nq1Zsgbc8bVV6NTyh2Fu5c8fEWUPQL1qUoAuaH --threshold 1 --description "rotate the oracle key"
    OracleSet {
        /// An oracle key (repeat for each).
        #[arg(long = "oracle", required = true)]
        oracles: Vec<String>,
        /// Signatures needed to post an epoch.
        #[arg(long)]
        threshold: u8,
    },
    /// Most OVPP one epoch may add.
    ///
    /// Example: ovpp -k holder.json gov propose emission-cap 5000 --description "halve the emission"
    EmissionCap {
        /// OVPP per epoch at most.
        #[arg(value_parser = parse_ovpp)]
        amount: u64,
    },
    /// Epoch length in seconds (or `1h`, `1d`).
    ///
    /// Example: ovpp -k holder.json gov propose epoch-length 1d
    EpochLength {
        /// The new length: `3600`, `1h`, `1d`.
        #[arg(value_parser = parse_duration)]
        length: u64,
    },
    /// The scoring rules' hash (hex) the oracles must apply.
    ///
    /// Example: ovpp -k holder.json gov propose scoring-rules-hash cc6751e3b91124b0cf4c21a14b2cbfcac3346779574a2891c8cad838df3bf8a0
    ScoringRulesHash {
        /// sha256 of the rules, hex (`ovpp-oracle rules` prints it; SCORING.md says how).
        hash: String,
    },
    /// Pause the network (registration, device changes, posting, claims).
    ///
    /// Example: ovpp -k holder.json gov propose pause --description "oracle compromise"
    Pause,
    /// Lift the pause.
    ///
    /// Example: ovpp -k holder.json gov propose unpause
    Unpause,
    /// Propose a new authority for the configuration (it must accept): ends governance.
    ///
    /// Example: ovpp -k holder.json gov propose authority De6175nq1Zsgbc8bVV6NTyh2Fu5c8fEWUPQL1qUoAuaH
    Authority {
        /// The new authority's public key.
        new_authority: String,
    },
    /// Set or (with `none`) revoke the emergency pauser.
    ///
    /// Example: ovpp -k holder.json gov propose emergency-pauser none
    EmergencyPauser {
        /// The pauser's public key, or `none`.
        pauser: String,
    },
    /// Change governance's own parameters.
    ///
    /// Example: ovpp -k holder.json gov propose params --voting-period 5d --quorum 25
    Params(ParamArgs),
    /// Suspend a device (e.g. proven telemetry fraud; `--reason` is a documented code).
    ///
    /// Example: ovpp -k holder.json gov propose suspend-device 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv --reason 1
    SuspendDevice {
        /// Device key.
        device: String,
        /// Reason code, recorded on-chain.
        #[arg(long, default_value_t = 0)]
        reason: u16,
    },
    /// Reinstate a suspended device.
    ///
    /// Example: ovpp -k holder.json gov propose reinstate-device 29XtGoKkwh2owDv429w3dMhi66NRjB8JrcgUzmg3NnJv
    ReinstateDevice {
        /// Device key.
        device: String,
    },
}

impl ChangeCommand {
    fn change(&self) -> Result<GovernanceChange, CliError> {
        Ok(match self {
            ChangeCommand::OracleSet { oracles, threshold } => GovernanceChange::OracleSet {
                oracles: oracles.iter().map(|o| parse_pubkey(o, "oracle")).collect::<Result<_, _>>()?,
                threshold: *threshold,
            },
            ChangeCommand::EmissionCap { amount } => GovernanceChange::EmissionCap { emission_cap_per_epoch: *amount },
            ChangeCommand::EpochLength { length } => GovernanceChange::EpochLength {
                epoch_length_secs: u32::try_from(*length).map_err(|_| CliError::Invalid("epoch length is too long".into()))?,
            },
            ChangeCommand::ScoringRulesHash { hash } => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(hash, &mut out).map_err(|_| CliError::Invalid(format!("{hash:?} is not 32 bytes of hex")))?;
                GovernanceChange::ScoringRulesHash { hash: out }
            }
            ChangeCommand::Pause => GovernanceChange::Paused { paused: true },
            ChangeCommand::Unpause => GovernanceChange::Paused { paused: false },
            ChangeCommand::Authority { new_authority } => {
                GovernanceChange::Authority { new_authority: parse_pubkey(new_authority, "new authority")? }
            }
            ChangeCommand::EmergencyPauser { pauser } => {
                GovernanceChange::EmergencyPauser { pauser: if pauser == "none" { None } else { Some(parse_pubkey(pauser, "pauser")?) } }
            }
            ChangeCommand::Params(args) => GovernanceChange::Params { params: args.params()? },
            ChangeCommand::SuspendDevice { device, reason } => {
                GovernanceChange::DeviceStatus { device_key: parse_pubkey(device, "device")?, suspend: true, reason: *reason }
            }
            ChangeCommand::ReinstateDevice { device } => {
                GovernanceChange::DeviceStatus { device_key: parse_pubkey(device, "device")?, suspend: false, reason: 0 }
            }
        })
    }
}

async fn fetch<T: AccountDeserialize>(ctx: &Context<'_>, address: &Pubkey, what: &str) -> Result<Option<T>, CliError> {
    match ctx.chain.get_account(address).await? {
        Some(account) if account.owner == ovpp::ID => {
            T::try_deserialize(&mut account.data.as_slice()).map(Some).map_err(|e| CliError::Rpc(format!("{what} account: {e}")))
        }
        _ => Ok(None),
    }
}

async fn governance(ctx: &Context<'_>) -> Result<Governance, CliError> {
    fetch(ctx, &governance_address().0, "governance")
        .await?
        .ok_or_else(|| CliError::NotFound("governance is not initialized on this network (`ovpp gov init`)".into()))
}

async fn proposal(ctx: &Context<'_>, id: u64) -> Result<Proposal, CliError> {
    fetch(ctx, &proposal_address(id).0, "proposal").await?.ok_or_else(|| CliError::NotFound(format!("no proposal {id}")))
}

/// The chain's clock (the Clock sysvar's `unix_timestamp`, bytes 32..40), or the wall
/// clock if it cannot be read: proposals are judged by the chain's time, not this machine's.
async fn now(ctx: &Context<'_>) -> i64 {
    let clock = ctx.chain.get_account(&solana_sdk::sysvar::clock::ID).await.ok().flatten();
    match clock.and_then(|a| a.data.get(32..40).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))) {
        Some(t) => t,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
    }
}

/// Where a proposal stands at `now` (the tallies decide the outcome once the vote ends).
fn status(p: &Proposal, g: &Governance, now: i64) -> &'static str {
    match () {
        _ if p.executed => "executed",
        _ if now < p.voting_ends_at => "voting",
        _ if !p.reached_quorum(g.params.quorum_bps) => "failed (no quorum)",
        _ if !p.approved(g.params.approval_bps) => "rejected",
        _ if now >= p.expires_at => "expired",
        _ if now < p.executable_at => "passed, in timelock",
        _ => "executable",
    }
}

fn change_text(change: &GovernanceChange) -> String {
    match change {
        GovernanceChange::OracleSet { oracles, threshold } => format!("oracle set {threshold} of {}", oracles.len()),
        GovernanceChange::EmissionCap { emission_cap_per_epoch } => format!("emission cap {} OVPP", format_ovpp(*emission_cap_per_epoch)),
        GovernanceChange::EpochLength { epoch_length_secs } => format!("epoch length {epoch_length_secs} s"),
        GovernanceChange::ScoringRulesHash { hash } => format!("scoring rules {}", hex::encode(hash)),
        GovernanceChange::Paused { paused } => (if *paused { "pause" } else { "unpause" }).into(),
        GovernanceChange::Authority { new_authority } => format!("authority to {new_authority}"),
        GovernanceChange::EmergencyPauser { pauser } => format!("emergency pauser {}", pauser.map_or("none".into(), |p| p.to_string())),
        GovernanceChange::DeviceStatus { device_key, suspend, .. } => {
            format!("{} device {device_key}", if *suspend { "suspend" } else { "reinstate" })
        }
        GovernanceChange::Params { params } => format!(
            "governance: vote {} s, timelock {} s, quorum {} bps, approval {} bps",
            params.voting_period_secs, params.timelock_secs, params.quorum_bps, params.approval_bps
        ),
    }
}

fn proposal_json(p: &Proposal, g: &Governance, now: i64) -> Value {
    json!({
        "id": p.id,
        "address": proposal_address(p.id).0.to_string(),
        "proposer": p.proposer.to_string(),
        "change": change_text(&p.change),
        "description_hash": hex::encode(p.description_hash),
        "status": status(p, g, now),
        "voting_ends_at": p.voting_ends_at,
        "executable_at": p.executable_at,
        "expires_at": p.expires_at,
        "power_for": format_ovpp(u64::try_from(p.power_for).unwrap_or(u64::MAX)),
        "power_against": format_ovpp(u64::try_from(p.power_against).unwrap_or(u64::MAX)),
        "locked_voted": format_ovpp(p.locked_voted),
        "locked_at_creation": format_ovpp(p.total_locked_snapshot),
    })
}

pub async fn run(ctx: &mut Context<'_>, command: &GovCommand) -> Result<(), CliError> {
    match command {
        GovCommand::List => return list(ctx).await,
        GovCommand::Show { id: Some(id) } => return show_proposal(ctx, *id).await,
        GovCommand::Show { id: None } => return show(ctx).await,
        _ => {}
    }
    let signer = ctx.keypair()?;
    let me = signer.pubkey();
    let (ixs, done) = match command {
        GovCommand::Init { params, emergency_pauser, no_emergency_pauser } => {
            let pauser = match (emergency_pauser, no_emergency_pauser) {
                (_, true) => None,
                (Some(p), _) => Some(parse_pubkey(p, "emergency pauser")?),
                (None, false) => Some(me),
            };
            (
                vec![ovpp::client::init_governance(me, params.params()?, pauser)],
                format!("Governance {} now holds the configuration", governance_address().0),
            )
        }
        GovCommand::Lock { amount, duration } => {
            let secs = duration.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
            let existing: Option<Escrow> = fetch(ctx, &escrow_address(&me).0, "escrow").await?;
            let ix = match existing {
                Some(_) => ovpp::client::add_to_lock(me, *amount, secs),
                None => {
                    let secs = secs.ok_or_else(|| CliError::Invalid("a new lock needs --for (one week to four years)".into()))?;
                    ovpp::client::lock(me, *amount, secs)
                }
            };
            (vec![ix], format!("Locked {} OVPP", format_ovpp(*amount)))
        }
        GovCommand::Unlock => {
            let escrow: Escrow =
                fetch(ctx, &escrow_address(&me).0, "escrow").await?.ok_or_else(|| CliError::NotFound(format!("{me} has no lock")))?;
            if now(ctx).await < escrow.lock_end {
                return Err(CliError::Invalid(format!("the lock ends at {}; withdraw after that", rfc3339(escrow.lock_end))));
            }
            (vec![ovpp::client::withdraw(me)], format!("Withdrew {} OVPP", format_ovpp(escrow.amount)))
        }
        GovCommand::Propose { change, description } => {
            let change = change.change()?;
            local_check(ovpp::limits::check_change(&change))?;
            let id = governance(ctx).await?.proposal_count;
            let hash: [u8; 32] = Sha256::digest(description.as_bytes()).into();
            (vec![ovpp::client::propose(me, id, change.clone(), hash)], format!("Proposal {id}: {}", change_text(&change)))
        }
        GovCommand::Vote { id, support, against: _ } => {
            (vec![ovpp::client::vote(me, *id, *support)], format!("Voted {} proposal {id}", if *support { "for" } else { "against" }))
        }
        GovCommand::Execute { id } => {
            let device = match proposal(ctx, *id).await?.change {
                GovernanceChange::DeviceStatus { device_key, .. } => Some(device_key),
                _ => None,
            };
            (vec![ovpp::client::execute(me, *id, device.as_ref())], format!("Executed proposal {id}"))
        }
        GovCommand::List | GovCommand::Show { .. } => unreachable!("answered above"),
    };
    let signature = ctx.send(&ixs, &[&signer]).await?;
    ctx.emit(json!({"status": done, "signature": signature}), format!("{done}\nSignature: {signature}"))
}

fn rfc3339(t: i64) -> String {
    crate::units::format_time(t, ovpp_wire::clock::unix_now())
}

async fn list(ctx: &mut Context<'_>) -> Result<(), CliError> {
    let g = governance(ctx).await?;
    let accounts = ctx.chain.scan(&ovpp::ID, &[(0, Proposal::DISCRIMINATOR.to_vec())]).await?;
    let mut proposals: Vec<Proposal> =
        accounts.iter().filter_map(|(_, a)| Proposal::try_deserialize(&mut a.data.as_slice()).ok()).collect();
    proposals.sort_by_key(|p| p.id);
    let t = now(ctx).await;
    let json: Vec<Value> = proposals.iter().map(|p| proposal_json(p, &g, t)).collect();
    let mut text = format!("{:>4}  {:<22} {:>18} {:>18}  CHANGE", "ID", "STATUS", "FOR", "AGAINST");
    for p in &proposals {
        let v = proposal_json(p, &g, t);
        text += &format!(
            "\n{:>4}  {:<22} {:>18} {:>18}  {}",
            p.id,
            status(p, &g, t),
            v["power_for"].as_str().unwrap_or(""),
            v["power_against"].as_str().unwrap_or(""),
            change_text(&p.change)
        );
    }
    ctx.emit(Value::Array(json), text)
}

async fn show_proposal(ctx: &mut Context<'_>, id: u64) -> Result<(), CliError> {
    let (g, p) = (governance(ctx).await?, proposal(ctx, id).await?);
    let v = proposal_json(&p, &g, now(ctx).await);
    let text = format!(
                "Proposal {}: {}\n  Status:     {}\n  For:        {} (power)\n  Against:    {} (power)\n  Voted:      {} of {} OVPP locked at creation\n  Vote ends:  {}\n  Executable: {} to {}",
                p.id, v["change"].as_str().unwrap_or(""), v["status"].as_str().unwrap_or(""), v["power_for"].as_str().unwrap_or(""),
                v["power_against"].as_str().unwrap_or(""), v["locked_voted"].as_str().unwrap_or(""), v["locked_at_creation"].as_str().unwrap_or(""),
                rfc3339(p.voting_ends_at), rfc3339(p.executable_at), rfc3339(p.expires_at),
            );
    ctx.emit(v, text)
}

/// Governance's parameters and, with a keypair, that wallet's lock.
async fn show(ctx: &mut Context<'_>) -> Result<(), CliError> {
    let me = ctx.keypair().ok().map(|k| k.pubkey());
    let g = governance(ctx).await?;
    let escrow: Option<Escrow> = match me {
        Some(me) => fetch(ctx, &escrow_address(&me).0, "escrow").await?,
        None => None,
    };
    let t = now(ctx).await;
    let power = escrow.as_ref().map_or(0, |e| voting_power(e.amount, e.lock_end, t));
    let v = json!({
        "governance": governance_address().0.to_string(),
        "voting_period_secs": g.params.voting_period_secs,
        "timelock_secs": g.params.timelock_secs,
        "quorum_bps": g.params.quorum_bps,
        "approval_bps": g.params.approval_bps,
        "min_proposal_power": format_ovpp(g.params.min_proposal_power),
        "emergency_pauser": g.emergency_pauser.map(|p| p.to_string()),
        "total_locked": format_ovpp(g.total_locked),
        "proposals": g.proposal_count,
        "scoring_rules_hash": hex::encode(g.scoring_rules_hash),
        "my_lock": escrow.as_ref().map(|e| json!({"amount": format_ovpp(e.amount), "lock_end": e.lock_end, "voting_power": format_ovpp(u64::try_from(power).unwrap_or(u64::MAX))})),
    });
    let mine = escrow.map_or("none".into(), |e| {
        format!(
            "{} OVPP until {}, voting power {}",
            format_ovpp(e.amount),
            rfc3339(e.lock_end),
            format_ovpp(u64::try_from(power).unwrap_or(u64::MAX))
        )
    });
    let text = format!(
                "Governance {}\n  Voting period: {} s, timelock {} s\n  Quorum: {} bps of locked OVPP, approval: more than {} bps of power\n  Proposing needs: {} voting power\n  Emergency pauser: {}\n  Locked: {} OVPP, {} proposals\n  Your lock: {mine}",
                governance_address().0, g.params.voting_period_secs, g.params.timelock_secs, g.params.quorum_bps, g.params.approval_bps,
                format_ovpp(g.params.min_proposal_power), g.emergency_pauser.map_or("none".into(), |p| p.to_string()), format_ovpp(g.total_locked), g.proposal_count,
            );
    ctx.emit(v, text)
}
