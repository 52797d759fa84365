//! Authority-gated parameter changes. The authority can be a multisig or a governance PDA
//! (taken over with the two-step transfer), so each change is a separate instruction with
//! its own bounds, easy to propose and review one at a time.

use anchor_lang::prelude::*;

use crate::errors::OvppError;
use crate::events::{
    AuthorityAccepted, AuthorityProposed, DeviceStatusChanged, EmissionCapChanged, EpochLengthChanged, OracleSetChanged, PausedChanged,
};
use crate::limits::{check_emission_cap, check_epoch_length, check_oracle_set};
use crate::protocol::{CONFIG_SEED, DEVICE_SEED};
use crate::state::{Config, Device, DeviceStatus};

#[derive(Accounts)]
pub struct ConfigAdmin<'info> {
    pub authority: Signer<'info>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump, has_one = authority @ OvppError::NotAuthority)]
    pub config: Box<Account<'info, Config>>,
}

pub fn set_oracle_set(ctx: Context<ConfigAdmin>, oracles: Vec<Pubkey>, threshold: u8) -> Result<()> {
    check_oracle_set(&oracles, threshold)?;
    let config = &mut ctx.accounts.config;
    config.oracles = oracles.clone();
    config.threshold = threshold;
    emit!(OracleSetChanged { oracles, threshold });
    Ok(())
}

pub fn set_emission_cap(ctx: Context<ConfigAdmin>, emission_cap_per_epoch: u64) -> Result<()> {
    check_emission_cap(emission_cap_per_epoch)?;
    apply_emission_cap(&mut ctx.accounts.config, emission_cap_per_epoch);
    Ok(())
}

pub(crate) fn apply_emission_cap(config: &mut Config, emission_cap_per_epoch: u64) {
    config.emission_cap_per_epoch = emission_cap_per_epoch;
    emit!(EmissionCapChanged { emission_cap_per_epoch });
}

pub fn set_epoch_length(ctx: Context<ConfigAdmin>, epoch_length_secs: u32) -> Result<()> {
    check_epoch_length(epoch_length_secs)?;
    apply_epoch_length(&mut ctx.accounts.config, epoch_length_secs)
}

/// Epochs already posted keep their times; the schedule restarts at the end of the last
/// posted epoch with the new length, so no epoch ends twice or is skipped.
pub(crate) fn apply_epoch_length(config: &mut Config, epoch_length_secs: u32) -> Result<()> {
    let last_end = config.epoch_end_ts(config.last_epoch).ok_or(OvppError::Overflow)?;
    config.schedule_start_epoch = config.last_epoch;
    config.schedule_start_ts = last_end;
    config.epoch_length_secs = epoch_length_secs;
    emit!(EpochLengthChanged {
        epoch_length_secs,
        schedule_start_epoch: config.schedule_start_epoch,
        schedule_start_ts: config.schedule_start_ts,
    });
    Ok(())
}

pub fn set_paused(ctx: Context<ConfigAdmin>, paused: bool) -> Result<()> {
    ctx.accounts.config.paused = paused;
    emit!(PausedChanged { paused });
    Ok(())
}

/// Step one of an authority transfer; `None` cancels a pending proposal.
pub fn propose_authority(ctx: Context<ConfigAdmin>, new_authority: Option<Pubkey>) -> Result<()> {
    let config = &mut ctx.accounts.config;
    config.pending_authority = new_authority;
    emit!(AuthorityProposed { authority: config.authority, pending_authority: new_authority });
    Ok(())
}

#[derive(Accounts)]
pub struct AcceptAuthority<'info> {
    pub new_authority: Signer<'info>,
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,
}

/// Step two: the proposed key signs, which proves it exists and is controlled (a PDA
/// authority signs through its owning program's CPI).
pub fn accept_authority(ctx: Context<AcceptAuthority>) -> Result<()> {
    let config = &mut ctx.accounts.config;
    let pending = config.pending_authority.ok_or(OvppError::NoPendingAuthority)?;
    require_keys_eq!(pending, ctx.accounts.new_authority.key(), OvppError::NotPendingAuthority);
    let previous = config.authority;
    config.authority = pending;
    config.pending_authority = None;
    emit!(AuthorityAccepted { previous, authority: pending });
    Ok(())
}

#[derive(Accounts)]
pub struct DeviceAdmin<'info> {
    pub authority: Signer<'info>,
    #[account(seeds = [CONFIG_SEED], bump = config.bump, has_one = authority @ OvppError::NotAuthority)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, seeds = [DEVICE_SEED, device.device_key.as_ref()], bump = device.bump)]
    pub device: Box<Account<'info, Device>>,
}

/// Stops a device from claiming (e.g. proven telemetry fraud); `reason` is an
/// off-chain-documented code carried in the event.
pub fn suspend_device(ctx: Context<DeviceAdmin>, reason: u16) -> Result<()> {
    set_device_status(&mut ctx.accounts.device, true, reason)
}

pub fn reinstate_device(ctx: Context<DeviceAdmin>) -> Result<()> {
    set_device_status(&mut ctx.accounts.device, false, 0)
}

/// Suspends an active device or reinstates a suspended one (the authority's or governance's decision).
pub(crate) fn set_device_status(device: &mut Device, suspend: bool, reason: u16) -> Result<()> {
    if suspend {
        require!(device.status == DeviceStatus::Active, OvppError::DeviceNotActive);
        device.status = DeviceStatus::Suspended;
    } else {
        require!(device.status == DeviceStatus::Suspended, OvppError::DeviceNotSuspended);
        device.status = DeviceStatus::Active;
    }
    device.updated_at = Clock::get()?.unix_timestamp;
    emit!(DeviceStatusChanged { device_key: device.device_key, status: device.status, reason });
    Ok(())
}
