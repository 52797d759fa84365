//! Accepting an epoch root: only with at least M distinct oracle-set signatures over the
//! exact epoch message, verified by the Ed25519 precompile in the same transaction.

use anchor_lang::prelude::*;
use solana_instructions_sysvar::load_instruction_at_checked;

use crate::ed25519::{parse_entries, ParseError};
use crate::errors::OvppError;
use crate::events::EpochPosted;
use crate::pda::init_pda;
use crate::protocol::{epoch_message, Hash32, CONFIG_SEED, EPOCH_SEED};
use crate::state::{Config, Epoch, RootEntry, ROOT_RING_LEN};

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostEpochArgs {
    pub epoch: u64,
    pub root: Hash32,
    pub cumulative_total: u64,
    pub leaf_count: u64,
    pub report_hash: Hash32,
}

#[derive(Accounts)]
#[instruction(args: PostEpochArgs)]
pub struct PostEpoch<'info> {
    /// Anyone may relay; the oracle signatures are what authorise the root.
    #[account(mut)]
    pub relayer: Signer<'info>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump, constraint = !config.paused @ OvppError::Paused)]
    pub config: Box<Account<'info, Config>>,
    /// CHECK: the epoch's PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [EPOCH_SEED, &args.epoch.to_le_bytes()], bump)]
    pub epoch: UncheckedAccount<'info>,
    /// CHECK: the instructions sysvar; its address is checked here and again by the
    /// checked loaders, so a look-alike account cannot feed fake signatures.
    #[account(address = solana_sdk_ids::sysvar::instructions::ID @ OvppError::InvalidInstructionsSysvar)]
    pub instructions: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

pub fn post_epoch_root(ctx: Context<PostEpoch>, args: PostEpochArgs) -> Result<()> {
    let config = &ctx.accounts.config;
    let next = config.last_epoch.checked_add(1).ok_or(OvppError::Overflow)?;
    require!(args.epoch == next, OvppError::EpochNotSequential);
    let clock = Clock::get()?;
    let ends_at = config.epoch_end_ts(args.epoch).ok_or(OvppError::Overflow)?;
    require!(clock.unix_timestamp >= ends_at, OvppError::EpochNotEnded);
    require!(args.leaf_count >= 1, OvppError::EmptyEpoch);
    require!(args.cumulative_total >= config.cumulative_total, OvppError::CumulativeTotalDecreased);
    let increase = args.cumulative_total - config.cumulative_total;
    require!(increase <= config.emission_cap_per_epoch, OvppError::EmissionCapExceeded);

    let message =
        epoch_message(ctx.program_id, &config.key(), args.epoch, &args.root, args.cumulative_total, args.leaf_count, &args.report_hash);
    let signers = verify_oracle_signatures(&ctx.accounts.instructions.to_account_info(), config, &message)?;

    let epoch = Epoch {
        epoch: args.epoch,
        root: args.root,
        cumulative_total: args.cumulative_total,
        leaf_count: args.leaf_count,
        report_hash: args.report_hash,
        signers: signers.clone(),
        posted_slot: clock.slot,
        posted_at: clock.unix_timestamp,
        bump: ctx.bumps.epoch,
    };
    let epoch_bytes = args.epoch.to_le_bytes();
    let seeds: &[&[u8]] = &[EPOCH_SEED, &epoch_bytes, &[ctx.bumps.epoch]];
    let accounts = &ctx.accounts;
    init_pda(&accounts.relayer.to_account_info(), &accounts.epoch.to_account_info(), seeds, OvppError::EpochNotSequential, &epoch)?;
    let config = &mut ctx.accounts.config;
    config.last_epoch = args.epoch;
    config.cumulative_total = args.cumulative_total;
    config.recent_roots[(args.epoch % ROOT_RING_LEN as u64) as usize] = RootEntry { epoch: args.epoch, root: args.root };

    emit!(EpochPosted {
        epoch: args.epoch,
        root: args.root,
        cumulative_total: args.cumulative_total,
        leaf_count: args.leaf_count,
        report_hash: args.report_hash,
        signers,
    });
    Ok(())
}

/// Every Ed25519 instruction of the transaction must be a valid attestation of `message`
/// by a distinct member of the oracle set; returns the signers if there are at least
/// `threshold` of them. Being strict (no unrelated Ed25519 instructions tolerated) keeps
/// the rule simple to audit.
fn verify_oracle_signatures(instructions: &AccountInfo, config: &Config, message: &[u8]) -> Result<Vec<Pubkey>> {
    require_keys_eq!(*instructions.key, solana_sdk_ids::sysvar::instructions::ID, OvppError::InvalidInstructionsSysvar);
    let count = {
        let data = instructions.try_borrow_data()?;
        let head: [u8; 2] = data.get(..2).and_then(|b| b.try_into().ok()).ok_or(OvppError::InvalidInstructionsSysvar)?;
        u16::from_le_bytes(head)
    };
    let mut signers: Vec<Pubkey> = Vec::with_capacity(config.oracles.len());
    for index in 0..count {
        let ix = load_instruction_at_checked(usize::from(index), instructions).map_err(|_| OvppError::InvalidInstructionsSysvar)?;
        if ix.program_id != solana_sdk_ids::ed25519_program::ID {
            continue;
        }
        let entries = parse_entries(&ix.data, index).map_err(|e| match e {
            ParseError::Malformed => OvppError::MalformedEd25519Instruction,
            ParseError::IndexMismatch => OvppError::Ed25519IndexMismatch,
        })?;
        for entry in entries {
            require!(entry.message == message, OvppError::EpochMessageMismatch);
            let signer = Pubkey::try_from(entry.pubkey).map_err(|_| OvppError::MalformedEd25519Instruction)?;
            require!(config.oracles.contains(&signer), OvppError::UnknownOracleSigner);
            require!(!signers.contains(&signer), OvppError::DuplicateOracleSignature);
            signers.push(signer);
        }
    }
    require!(signers.len() >= usize::from(config.threshold), OvppError::InsufficientOracleSignatures);
    Ok(signers)
}
