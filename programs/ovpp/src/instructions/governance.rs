//! Governance by OVPP holders: vote-escrowed tokens, proposals carrying a typed change,
//! quorum and approval, a timelock, and execution by anyone. Once initialised, the
//! governance PDA is `Config`'s authority; the operator keeps only an emergency pause that
//! governance can revoke.
//!
//! Voting power is `amount * (1 + 3 * left / 4 years)` for the time `left` on the lock at
//! the moment of voting (see `limits::voting_power`). A vote needs the lock to last at
//! least until the vote ends, and locked tokens leave only when the lock has ended, so the
//! tokens behind a vote stay in the vault until the vote is over: they cannot vote again
//! from another wallet. A wallet votes once per proposal (its vote record is a PDA).
//! Quorum counts locked OVPP taking part against all OVPP locked when the proposal was
//! made; approval counts voting power for against all power cast.

use anchor_lang::prelude::*;
use anchor_spl::token_2022::Token2022;
use anchor_spl::token_interface::{initialize_account3, transfer_checked, InitializeAccount3, Mint, TokenAccount, TransferChecked};

use crate::errors::OvppError;
use crate::events::{
    EmergencyPaused, GovernanceInitialized, OracleSetChanged, PausedChanged, ProposalCreated, ProposalExecuted, TokensLocked,
    TokensWithdrawn, VoteCast,
};
use crate::limits::{check_change, check_governance_params, voting_power, EXECUTION_WINDOW_SECS, MAX_LOCK_SECS, MIN_LOCK_SECS};
use crate::pda::{create_pda, init_pda, token_account_space};
use crate::protocol::{CONFIG_SEED, ESCROW_SEED, GOVERNANCE_SEED, PROPOSAL_SEED, VAULT_SEED, VOTE_SEED};
use crate::state::{Config, Escrow, Governance, GovernanceChange, GovernanceParams, Proposal, VoteRecord};

#[derive(Accounts)]
pub struct InitGovernance<'info> {
    #[account(mut)]
    pub authority: Signer<'info>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump, has_one = authority @ OvppError::NotAuthority, has_one = mint @ OvppError::WrongMint)]
    pub config: Box<Account<'info, Config>>,
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    /// CHECK: governance's PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [GOVERNANCE_SEED], bump)]
    pub governance: UncheckedAccount<'info>,
    /// CHECK: the vault's PDA, created by the handler as an OVPP token account of governance.
    #[account(mut, seeds = [VAULT_SEED], bump)]
    pub vault: UncheckedAccount<'info>,
    pub token_program: Program<'info, Token2022>,
    pub system_program: Program<'info, System>,
}

/// The current authority hands `Config` to governance; `emergency_pauser` (usually the
/// operator) may then only pause.
pub fn init_governance(ctx: Context<InitGovernance>, params: GovernanceParams, emergency_pauser: Option<Pubkey>) -> Result<()> {
    check_governance_params(&params)?;
    let a = &ctx.accounts;
    let governance = Governance {
        bump: ctx.bumps.governance,
        vault_bump: ctx.bumps.vault,
        params,
        emergency_pauser,
        total_locked: 0,
        proposal_count: 0,
        scoring_rules_hash: [0; 32],
    };
    let payer = a.authority.to_account_info();
    let governance_info = a.governance.to_account_info();
    init_pda(&payer, &governance_info, &[GOVERNANCE_SEED, &[ctx.bumps.governance]], OvppError::AlreadyInitialized, &governance)?;
    create_vault(&ctx)?;
    let governance_key = governance_info.key();
    let config = &mut ctx.accounts.config;
    let previous_authority = config.authority;
    config.authority = governance_key;
    config.pending_authority = None;
    emit!(GovernanceInitialized { governance: governance_key, previous_authority, emergency_pauser });
    Ok(())
}

/// The vault: a Token-2022 account of the OVPP mint, owned by governance, at its PDA; sized
/// for the account extensions the mint's extensions require.
fn create_vault(ctx: &Context<InitGovernance>) -> Result<()> {
    let a = &ctx.accounts;
    let space = token_account_space(&a.mint.to_account_info())?;
    let vault = a.vault.to_account_info();
    let seeds: &[&[u8]] = &[VAULT_SEED, &[ctx.bumps.vault]];
    create_pda(&a.authority.to_account_info(), &vault, space, &a.token_program.key(), seeds, OvppError::AlreadyInitialized)?;
    initialize_account3(CpiContext::new(
        a.token_program.key(),
        InitializeAccount3 { account: vault, mint: a.mint.to_account_info(), authority: a.governance.to_account_info() },
    ))
}

/// What every lock, addition and withdrawal moves tokens through: governance, the OVPP
/// mint (checked against `Config`) and the vault.
#[derive(Accounts)]
pub struct Locker<'info> {
    #[account(mut, seeds = [GOVERNANCE_SEED], bump = governance.bump)]
    pub governance: Box<Account<'info, Governance>>,
    #[account(seeds = [CONFIG_SEED], bump = config.bump, has_one = mint @ OvppError::WrongMint)]
    pub config: Box<Account<'info, Config>>,
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(mut, seeds = [VAULT_SEED], bump = governance.vault_bump)]
    pub vault: Box<InterfaceAccount<'info, TokenAccount>>,
    pub token_program: Program<'info, Token2022>,
}

#[derive(Accounts)]
pub struct Lock<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    pub locker: Locker<'info>,
    /// CHECK: the owner's escrow PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [ESCROW_SEED, owner.key().as_ref()], bump)]
    pub escrow: UncheckedAccount<'info>,
    #[account(mut, token::mint = locker.mint, token::authority = owner, token::token_program = locker.token_program)]
    pub owner_tokens: Box<InterfaceAccount<'info, TokenAccount>>,
    pub system_program: Program<'info, System>,
}

/// Locks `amount` OVPP for `lock_secs` in a new escrow.
pub fn lock(mut ctx: Context<Lock>, amount: u64, lock_secs: i64) -> Result<()> {
    require!(amount > 0, OvppError::ZeroAmount);
    require!((MIN_LOCK_SECS..=MAX_LOCK_SECS).contains(&lock_secs), OvppError::InvalidLockDuration);
    let now = Clock::get()?.unix_timestamp;
    let a = &mut ctx.accounts;
    let owner = a.owner.key();
    let escrow = Escrow { owner, bump: ctx.bumps.escrow, amount, lock_end: now.checked_add(lock_secs).ok_or(OvppError::Overflow)? };
    let seeds: &[&[u8]] = &[ESCROW_SEED, owner.as_ref(), &[ctx.bumps.escrow]];
    init_pda(&a.owner.to_account_info(), &a.escrow.to_account_info(), seeds, OvppError::LockExists, &escrow)?;
    deposit(&a.owner, &a.owner_tokens, &a.locker, amount)?;
    a.locker.governance.total_locked = a.locker.governance.total_locked.checked_add(amount).ok_or(OvppError::Overflow)?;
    emit!(TokensLocked { owner: escrow.owner, amount, total: escrow.amount, lock_end: escrow.lock_end });
    Ok(())
}

#[derive(Accounts)]
pub struct AddToLock<'info> {
    pub owner: Signer<'info>,
    pub locker: Locker<'info>,
    #[account(mut, seeds = [ESCROW_SEED, owner.key().as_ref()], bump = escrow.bump, has_one = owner)]
    pub escrow: Box<Account<'info, Escrow>>,
    #[account(mut, token::mint = locker.mint, token::authority = owner, token::token_program = locker.token_program)]
    pub owner_tokens: Box<InterfaceAccount<'info, TokenAccount>>,
}

/// Adds `amount` (may be 0) and, with `extend_secs`, moves the lock's end to at least now
/// plus that; a lock never ends sooner than it did.
pub fn add_to_lock(mut ctx: Context<AddToLock>, amount: u64, extend_secs: Option<i64>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    require!(amount > 0 || extend_secs.is_some(), OvppError::ZeroAmount);
    let a = &mut ctx.accounts;
    if let Some(secs) = extend_secs {
        require!((MIN_LOCK_SECS..=MAX_LOCK_SECS).contains(&secs), OvppError::InvalidLockDuration);
        a.escrow.lock_end = a.escrow.lock_end.max(now.checked_add(secs).ok_or(OvppError::Overflow)?);
    } else {
        // Adding to a lock that has ended would lock new tokens for no time at all.
        require!(a.escrow.lock_end > now, OvppError::InvalidLockDuration);
    }
    if amount > 0 {
        deposit(&a.owner, &a.owner_tokens, &a.locker, amount)?;
        a.escrow.amount = a.escrow.amount.checked_add(amount).ok_or(OvppError::Overflow)?;
        a.locker.governance.total_locked = a.locker.governance.total_locked.checked_add(amount).ok_or(OvppError::Overflow)?;
    }
    emit!(TokensLocked { owner: a.escrow.owner, amount, total: a.escrow.amount, lock_end: a.escrow.lock_end });
    Ok(())
}

fn deposit<'info>(owner: &Signer<'info>, from: &InterfaceAccount<'info, TokenAccount>, locker: &Locker<'info>, amount: u64) -> Result<()> {
    transfer_checked(
        CpiContext::new(
            locker.token_program.key(),
            TransferChecked {
                from: from.to_account_info(),
                mint: locker.mint.to_account_info(),
                to: locker.vault.to_account_info(),
                authority: owner.to_account_info(),
            },
        ),
        amount,
        locker.mint.decimals,
    )
}

#[derive(Accounts)]
pub struct Withdraw<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    pub locker: Locker<'info>,
    #[account(mut, close = owner, seeds = [ESCROW_SEED, owner.key().as_ref()], bump = escrow.bump, has_one = owner)]
    pub escrow: Box<Account<'info, Escrow>>,
    #[account(mut, token::mint = locker.mint, token::authority = owner, token::token_program = locker.token_program)]
    pub owner_tokens: Box<InterfaceAccount<'info, TokenAccount>>,
}

/// Returns everything once the lock has ended, and closes the escrow.
pub fn withdraw(mut ctx: Context<Withdraw>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let a = &mut ctx.accounts;
    require!(now >= a.escrow.lock_end, OvppError::LockNotEnded);
    let amount = a.escrow.amount;
    let seeds: &[&[u8]] = &[GOVERNANCE_SEED, &[a.locker.governance.bump]];
    transfer_checked(
        CpiContext::new_with_signer(
            a.locker.token_program.key(),
            TransferChecked {
                from: a.locker.vault.to_account_info(),
                mint: a.locker.mint.to_account_info(),
                to: a.owner_tokens.to_account_info(),
                authority: a.locker.governance.to_account_info(),
            },
            &[seeds],
        ),
        amount,
        a.locker.mint.decimals,
    )?;
    a.locker.governance.total_locked = a.locker.governance.total_locked.checked_sub(amount).ok_or(OvppError::Overflow)?;
    emit!(TokensWithdrawn { owner: a.owner.key(), amount });
    Ok(())
}

#[derive(Accounts)]
pub struct Propose<'info> {
    #[account(mut)]
    pub proposer: Signer<'info>,
    #[account(mut, seeds = [GOVERNANCE_SEED], bump = governance.bump)]
    pub governance: Box<Account<'info, Governance>>,
    #[account(seeds = [ESCROW_SEED, proposer.key().as_ref()], bump = escrow.bump, constraint = escrow.owner == proposer.key())]
    pub escrow: Box<Account<'info, Escrow>>,
    /// CHECK: the next proposal's PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [PROPOSAL_SEED, &governance.proposal_count.to_le_bytes()], bump)]
    pub proposal: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

pub fn propose(ctx: Context<Propose>, change: GovernanceChange, description_hash: [u8; 32]) -> Result<()> {
    check_change(&change)?;
    let now = Clock::get()?.unix_timestamp;
    let governance = &mut ctx.accounts.governance;
    let power = voting_power(ctx.accounts.escrow.amount, ctx.accounts.escrow.lock_end, now);
    require!(power >= u128::from(governance.params.min_proposal_power), OvppError::InsufficientProposalPower);
    let params = governance.params;
    let voting_ends_at = now.checked_add(i64::from(params.voting_period_secs)).ok_or(OvppError::Overflow)?;
    let executable_at = voting_ends_at.checked_add(i64::from(params.timelock_secs)).ok_or(OvppError::Overflow)?;
    let id = governance.proposal_count;
    let proposal = Proposal {
        id,
        bump: ctx.bumps.proposal,
        proposer: ctx.accounts.proposer.key(),
        change,
        description_hash,
        created_at: now,
        voting_ends_at,
        executable_at,
        expires_at: executable_at.checked_add(EXECUTION_WINDOW_SECS).ok_or(OvppError::Overflow)?,
        total_locked_snapshot: governance.total_locked,
        locked_voted: 0,
        power_for: 0,
        power_against: 0,
        executed: false,
    };
    governance.proposal_count = id.checked_add(1).ok_or(OvppError::Overflow)?;
    let id_bytes = id.to_le_bytes();
    let seeds: &[&[u8]] = &[PROPOSAL_SEED, &id_bytes, &[ctx.bumps.proposal]];
    let a = &ctx.accounts;
    // The next id's address cannot hold an account: ids only grow.
    init_pda(&a.proposer.to_account_info(), &a.proposal.to_account_info(), seeds, OvppError::AlreadyInitialized, &proposal)?;
    emit!(ProposalCreated { id, proposer: proposal.proposer, voting_ends_at, executable_at });
    Ok(())
}

#[derive(Accounts)]
pub struct CastVote<'info> {
    #[account(mut)]
    pub voter: Signer<'info>,
    #[account(seeds = [ESCROW_SEED, voter.key().as_ref()], bump = escrow.bump, constraint = escrow.owner == voter.key())]
    pub escrow: Box<Account<'info, Escrow>>,
    #[account(mut, seeds = [PROPOSAL_SEED, &proposal.id.to_le_bytes()], bump = proposal.bump)]
    pub proposal: Box<Account<'info, Proposal>>,
    /// Exists once per (proposal, voter): a second vote finds it and is refused. Created by
    /// the handler (also when someone sent lamports to the address beforehand).
    /// CHECK: the PDA address is checked by the seeds; the handler creates it.
    #[account(mut, seeds = [VOTE_SEED, proposal.key().as_ref(), voter.key().as_ref()], bump)]
    pub vote: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

pub fn vote(ctx: Context<CastVote>, support: bool) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let escrow = &ctx.accounts.escrow;
    let proposal = &mut ctx.accounts.proposal;
    require!(ctx.accounts.vote.data_is_empty(), OvppError::AlreadyVoted);
    require!(now < proposal.voting_ends_at, OvppError::VotingClosed);
    require!(escrow.lock_end >= proposal.voting_ends_at, OvppError::LockEndsBeforeVote);
    let power = voting_power(escrow.amount, escrow.lock_end, now);
    require!(power > 0, OvppError::NoVotingPower);
    if support {
        proposal.power_for = proposal.power_for.checked_add(power).ok_or(OvppError::Overflow)?;
    } else {
        proposal.power_against = proposal.power_against.checked_add(power).ok_or(OvppError::Overflow)?;
    }
    proposal.locked_voted = proposal.locked_voted.checked_add(escrow.amount).ok_or(OvppError::Overflow)?;
    let record = VoteRecord { proposal: proposal.key(), voter: ctx.accounts.voter.key(), bump: ctx.bumps.vote, support, power };
    let seeds: &[&[u8]] = &[VOTE_SEED, record.proposal.as_ref(), record.voter.as_ref(), &[record.bump]];
    init_pda(&ctx.accounts.voter.to_account_info(), &ctx.accounts.vote.to_account_info(), seeds, OvppError::AlreadyVoted, &record)?;
    emit!(VoteCast { proposal: proposal.id, voter: record.voter, support, power });
    Ok(())
}

#[derive(Accounts)]
pub struct Execute<'info> {
    /// Anyone may execute a passed proposal.
    pub executor: Signer<'info>,
    #[account(mut, seeds = [GOVERNANCE_SEED], bump = governance.bump)]
    pub governance: Box<Account<'info, Governance>>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, seeds = [PROPOSAL_SEED, &proposal.id.to_le_bytes()], bump = proposal.bump)]
    pub proposal: Box<Account<'info, Proposal>>,
}

/// A `DeviceStatus` change takes the device's account as the one remaining account.
pub fn execute<'info>(ctx: Context<'info, Execute<'info>>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let governance = &mut ctx.accounts.governance;
    let config = &mut ctx.accounts.config;
    let proposal = &mut ctx.accounts.proposal;
    require!(!proposal.executed, OvppError::ProposalAlreadyExecuted);
    require!(now >= proposal.voting_ends_at, OvppError::VotingNotEnded);
    require!(now >= proposal.executable_at, OvppError::TimelockNotElapsed);
    require!(now < proposal.expires_at, OvppError::ProposalExpired);
    require!(config.authority == governance.key(), OvppError::GovernanceNotInControl);
    require!(proposal.reached_quorum(governance.params.quorum_bps), OvppError::QuorumNotReached);
    require!(proposal.approved(governance.params.approval_bps), OvppError::ProposalRejected);
    // Bounds may have changed since the proposal was made (another proposal executed).
    check_change(&proposal.change)?;
    if let GovernanceChange::DeviceStatus { device_key, suspend, reason } = proposal.change {
        let info = ctx.remaining_accounts.first().ok_or(OvppError::MissingDeviceAccount)?;
        require_keys_eq!(info.key(), crate::protocol::device_address(&device_key).0, OvppError::MissingDeviceAccount);
        let mut device: Account<crate::state::Device> = Account::try_from(info)?;
        super::admin::set_device_status(&mut device, suspend, reason)?;
        device.exit(ctx.program_id)?;
    }
    apply(&proposal.change, config, governance)?;
    proposal.executed = true;
    emit!(ProposalExecuted { id: proposal.id });
    Ok(())
}

fn apply(change: &GovernanceChange, config: &mut Config, governance: &mut Governance) -> Result<()> {
    match change.clone() {
        GovernanceChange::OracleSet { oracles, threshold } => {
            config.oracles = oracles.clone();
            config.threshold = threshold;
            emit!(OracleSetChanged { oracles, threshold });
        }
        GovernanceChange::EmissionCap { emission_cap_per_epoch } => super::admin::apply_emission_cap(config, emission_cap_per_epoch),
        GovernanceChange::EpochLength { epoch_length_secs } => super::admin::apply_epoch_length(config, epoch_length_secs)?,
        GovernanceChange::ScoringRulesHash { hash } => governance.scoring_rules_hash = hash,
        GovernanceChange::Paused { paused } => {
            config.paused = paused;
            emit!(PausedChanged { paused });
        }
        GovernanceChange::Authority { new_authority } => config.pending_authority = Some(new_authority),
        GovernanceChange::EmergencyPauser { pauser } => governance.emergency_pauser = pauser,
        GovernanceChange::Params { params } => governance.params = params,
        // Applied to the device account by `execute`.
        GovernanceChange::DeviceStatus { .. } => {}
    }
    Ok(())
}

#[derive(Accounts)]
pub struct EmergencyPause<'info> {
    pub pauser: Signer<'info>,
    #[account(seeds = [GOVERNANCE_SEED], bump = governance.bump)]
    pub governance: Box<Account<'info, Governance>>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,
}

/// Pauses claims and postings at once; only governance unpauses.
pub fn emergency_pause(ctx: Context<EmergencyPause>) -> Result<()> {
    require!(ctx.accounts.governance.emergency_pauser == Some(ctx.accounts.pauser.key()), OvppError::NotEmergencyPauser);
    ctx.accounts.config.paused = true;
    emit!(PausedChanged { paused: true });
    emit!(EmergencyPaused { pauser: ctx.accounts.pauser.key() });
    Ok(())
}
