//! Cumulative claims: a leaf states all a device has earned since genesis; the claim
//! mints the difference to what was already claimed, so one claim covers any number of
//! epochs and a second claim with the same leaf has nothing left to mint.

use anchor_lang::prelude::*;
use anchor_spl::associated_token::{create, get_associated_token_address_with_program_id, AssociatedToken, Create};
use anchor_spl::token_2022::{mint_to, MintTo, Token2022};
use anchor_spl::token_interface::Mint;

use crate::errors::OvppError;
use crate::events::RewardsClaimed;
use crate::limits::MAX_REPUTATION_BPS;
use crate::protocol::{leaf_hash, root_from_proof, Hash32, RewardLeaf, CONFIG_SEED, DEVICE_SEED, MAX_PROOF_LEN};
use crate::state::{Config, ContributionSummary, CreditRecord, Device, DeviceStatus};

#[derive(Accounts)]
pub struct Claim<'info> {
    /// Anyone may crank a claim and pay for the owner's token account; only the owner is paid.
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump, constraint = !config.paused @ OvppError::Paused)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, address = config.mint @ OvppError::WrongMint)]
    pub mint: Box<InterfaceAccount<'info, Mint>>,
    #[account(
        mut,
        seeds = [DEVICE_SEED, device.device_key.as_ref()],
        bump = device.bump,
        constraint = device.status == DeviceStatus::Active @ OvppError::DeviceNotActive,
    )]
    pub device: Box<Account<'info, Device>>,
    /// CHECK: only compared with the device's owner; receives the tokens through its ATA.
    #[account(address = device.owner @ OvppError::NotDeviceOwner)]
    pub owner: UncheckedAccount<'info>,
    /// CHECK: must be the owner's associated OVPP account (checked by address before any
    /// CPI); created by the handler when missing. Only the ATA program can create an
    /// account at that address, so an existing one is the owner's token account.
    #[account(
        mut,
        address = get_associated_token_address_with_program_id(&owner.key(), &config.mint, &anchor_spl::token_2022::ID)
            @ OvppError::NotOwnerTokenAccount,
    )]
    pub owner_token_account: UncheckedAccount<'info>,
    pub token_program: Program<'info, Token2022>,
    pub associated_token_program: Program<'info, AssociatedToken>,
    pub system_program: Program<'info, System>,
}

pub fn claim_rewards(ctx: Context<Claim>, leaf: RewardLeaf, proof: Vec<Hash32>) -> Result<()> {
    require!(proof.len() <= MAX_PROOF_LEN, OvppError::ProofTooLong);
    let config = &ctx.accounts.config;
    let device = &ctx.accounts.device;
    let root = config.root_for(leaf.epoch).ok_or(OvppError::RootNotInRing)?;
    let computed = root_from_proof(leaf_hash(ctx.program_id, &device.device_key, &leaf), &proof);
    require!(computed == root, OvppError::InvalidProof);
    require!(leaf.reputation_bps <= MAX_REPUTATION_BPS, OvppError::InvalidReputation);

    let amount = leaf.cumulative_amount.saturating_sub(device.claimed);
    let newer_record = leaf.epoch > device.credit.as_of_epoch;
    require!(amount > 0 || newer_record, OvppError::NothingToClaim);
    let total_claimed = config.total_claimed.checked_add(amount).ok_or(OvppError::Overflow)?;
    require!(total_claimed <= config.cumulative_total, OvppError::ClaimExceedsPosted);

    if amount > 0 {
        if ctx.accounts.owner_token_account.data_is_empty() {
            create(CpiContext::new(
                ctx.accounts.associated_token_program.key(),
                Create {
                    payer: ctx.accounts.payer.to_account_info(),
                    associated_token: ctx.accounts.owner_token_account.to_account_info(),
                    authority: ctx.accounts.owner.to_account_info(),
                    mint: ctx.accounts.mint.to_account_info(),
                    system_program: ctx.accounts.system_program.to_account_info(),
                    token_program: ctx.accounts.token_program.to_account_info(),
                },
            ))?;
        }
        let seeds: &[&[u8]] = &[CONFIG_SEED, &[config.bump]];
        mint_to(
            CpiContext::new_with_signer(
                ctx.accounts.token_program.key(),
                MintTo {
                    mint: ctx.accounts.mint.to_account_info(),
                    to: ctx.accounts.owner_token_account.to_account_info(),
                    authority: ctx.accounts.config.to_account_info(),
                },
                &[seeds],
            ),
            amount,
        )?;
    }

    ctx.accounts.config.total_claimed = total_claimed;
    let device = &mut ctx.accounts.device;
    if amount > 0 {
        device.claimed = leaf.cumulative_amount;
    }
    if newer_record {
        device.credit = CreditRecord {
            reputation_bps: leaf.reputation_bps,
            epochs_active: leaf.epochs_active,
            faults: leaf.faults,
            as_of_epoch: leaf.epoch,
        };
        device.contribution =
            ContributionSummary { energy_delivered_wh: leaf.energy_delivered_wh, flexibility_delivered_wh: leaf.flexibility_delivered_wh };
    }
    emit!(RewardsClaimed {
        device_key: device.device_key,
        owner: device.owner,
        epoch: leaf.epoch,
        amount,
        cumulative_claimed: device.claimed,
    });
    Ok(())
}
