//! Device identity: registration proven by both the owner and the device's own key, and
//! the owner's later changes.

use anchor_lang::prelude::*;

use crate::errors::OvppError;
use crate::events::{DeviceRegistered, DeviceStatusChanged, DeviceTransferred, DeviceUpdated};
use crate::limits::{check_declared, check_region};
use crate::pda::init_pda;
use crate::protocol::{CONFIG_SEED, DEVICE_SEED};
use crate::state::{Config, ContributionSummary, CreditRecord, Device, DeviceKind, DeviceStatus};

/// What an owner declares about a device; checked against the kind's limits.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceParams {
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    pub region: [u8; 8],
    /// H3 cell index, 0 for none.
    pub location_cell: u64,
}

/// A new device starts at a neutral reputation until the oracle attests one.
pub const INITIAL_REPUTATION_BPS: u16 = 5_000;

#[derive(Accounts)]
pub struct RegisterDevice<'info> {
    #[account(mut)]
    pub owner: Signer<'info>,
    /// The device's telemetry key: its signature proves the owner holds the device.
    pub device_key: Signer<'info>,
    #[account(seeds = [CONFIG_SEED], bump = config.bump, constraint = !config.paused @ OvppError::Paused)]
    pub config: Box<Account<'info, Config>>,
    /// CHECK: the device's PDA, created by the handler (see `pda`).
    #[account(mut, seeds = [DEVICE_SEED, device_key.key().as_ref()], bump)]
    pub device: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

fn check_params(kind: DeviceKind, params: &DeviceParams) -> Result<()> {
    check_declared(kind, params.rated_power_w, params.energy_capacity_wh)?;
    check_region(&params.region)
}

pub fn register(ctx: Context<RegisterDevice>, kind: DeviceKind, params: DeviceParams) -> Result<()> {
    check_params(kind, &params)?;
    let now = Clock::get()?.unix_timestamp;
    let accounts = &ctx.accounts;
    let device_key = accounts.device_key.key();
    let device = Device {
        device_key,
        owner: ctx.accounts.owner.key(),
        kind,
        status: DeviceStatus::Active,
        region: params.region,
        bump: ctx.bumps.device,
        rated_power_w: params.rated_power_w,
        energy_capacity_wh: params.energy_capacity_wh,
        location_cell: params.location_cell,
        registered_at: now,
        updated_at: now,
        transfers: 0,
        credit: CreditRecord { reputation_bps: INITIAL_REPUTATION_BPS, ..CreditRecord::default() },
        contribution: ContributionSummary::default(),
        claimed: 0,
    };
    let seeds: &[&[u8]] = &[DEVICE_SEED, device_key.as_ref(), &[ctx.bumps.device]];
    init_pda(&accounts.owner.to_account_info(), &accounts.device.to_account_info(), seeds, OvppError::DeviceAlreadyRegistered, &device)?;
    emit!(DeviceRegistered {
        device_key: device.device_key,
        owner: device.owner,
        kind,
        rated_power_w: params.rated_power_w,
        energy_capacity_wh: params.energy_capacity_wh,
        region: params.region,
        location_cell: params.location_cell,
    });
    Ok(())
}

#[derive(Accounts)]
pub struct OwnerDevice<'info> {
    pub owner: Signer<'info>,
    #[account(seeds = [CONFIG_SEED], bump = config.bump, constraint = !config.paused @ OvppError::Paused)]
    pub config: Box<Account<'info, Config>>,
    #[account(
        mut,
        seeds = [DEVICE_SEED, device.device_key.as_ref()],
        bump = device.bump,
        has_one = owner @ OvppError::NotDeviceOwner,
        constraint = device.status != DeviceStatus::Retired @ OvppError::DeviceRetired,
    )]
    pub device: Box<Account<'info, Device>>,
}

/// The kind is fixed for life: a battery that becomes a charger is a new device.
pub fn update(ctx: Context<OwnerDevice>, params: DeviceParams) -> Result<()> {
    let device = &mut ctx.accounts.device;
    check_params(device.kind, &params)?;
    device.rated_power_w = params.rated_power_w;
    device.energy_capacity_wh = params.energy_capacity_wh;
    device.region = params.region;
    device.location_cell = params.location_cell;
    device.updated_at = Clock::get()?.unix_timestamp;
    emit!(DeviceUpdated {
        device_key: device.device_key,
        rated_power_w: params.rated_power_w,
        energy_capacity_wh: params.energy_capacity_wh,
        region: params.region,
        location_cell: params.location_cell,
    });
    Ok(())
}

/// The new owner receives every later claim, including rewards earned but not yet
/// claimed: the seller should claim first.
pub fn transfer(ctx: Context<OwnerDevice>, new_owner: Pubkey) -> Result<()> {
    let device = &mut ctx.accounts.device;
    require!(new_owner != device.owner && new_owner != Pubkey::default(), OvppError::InvalidNewOwner);
    let previous_owner = device.owner;
    device.owner = new_owner;
    device.transfers = device.transfers.checked_add(1).ok_or(OvppError::Overflow)?;
    device.updated_at = Clock::get()?.unix_timestamp;
    emit!(DeviceTransferred { device_key: device.device_key, previous_owner, new_owner });
    Ok(())
}

/// Final: the key can never be registered again and the device can no longer claim.
pub fn retire(ctx: Context<OwnerDevice>) -> Result<()> {
    let device = &mut ctx.accounts.device;
    device.status = DeviceStatus::Retired;
    device.updated_at = Clock::get()?.unix_timestamp;
    emit!(DeviceStatusChanged { device_key: device.device_key, status: device.status, reason: 0 });
    Ok(())
}
