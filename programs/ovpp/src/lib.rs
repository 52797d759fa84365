//! OpenVPP on-chain program: device identity, oracle-signed epoch roots and cumulative
//! OVPP claims. See the repository README for accounts, instructions and errors.

use anchor_lang::prelude::*;

#[cfg(feature = "offchain")]
pub mod client;
pub mod ed25519;
pub mod errors;
pub mod events;
pub mod instructions;
pub mod limits;
#[cfg(feature = "offchain")]
pub mod merkle;
pub mod pda;
pub mod protocol;
pub mod state;

/// The program's IDL as Anchor builds it (`idl/ovpp.json`, checked by `tests/program/tests/idl.rs`):
/// off-chain code reads error names and account layouts from here.
#[cfg(feature = "offchain")]
pub const IDL_JSON: &str = include_str!("../idl/ovpp.json");

use instructions::*;
use protocol::{Hash32, RewardLeaf};
use state::{DeviceKind, GovernanceChange, GovernanceParams};

declare_id!("CwWzgeQbrRCZL6Zi6TTSWmmnKUcz36zSed2PiF8Veg8u");

#[program]
pub mod ovpp {
    use super::*;

    /// Creates `Config` and the OVPP mint (Token-2022 with name/symbol metadata), whose
    /// only mint authority is `Config`. Signed by the program's upgrade authority.
    pub fn initialize(ctx: Context<Initialize>, args: InitializeArgs) -> Result<()> {
        instructions::initialize::initialize_config(ctx, args)
    }

    pub fn set_oracle_set(ctx: Context<ConfigAdmin>, oracles: Vec<Pubkey>, threshold: u8) -> Result<()> {
        instructions::admin::set_oracle_set(ctx, oracles, threshold)
    }

    pub fn set_emission_cap(ctx: Context<ConfigAdmin>, emission_cap_per_epoch: u64) -> Result<()> {
        instructions::admin::set_emission_cap(ctx, emission_cap_per_epoch)
    }

    pub fn set_epoch_length(ctx: Context<ConfigAdmin>, epoch_length_secs: u32) -> Result<()> {
        instructions::admin::set_epoch_length(ctx, epoch_length_secs)
    }

    pub fn set_paused(ctx: Context<ConfigAdmin>, paused: bool) -> Result<()> {
        instructions::admin::set_paused(ctx, paused)
    }

    pub fn propose_authority(ctx: Context<ConfigAdmin>, new_authority: Option<Pubkey>) -> Result<()> {
        instructions::admin::propose_authority(ctx, new_authority)
    }

    pub fn accept_authority(ctx: Context<AcceptAuthority>) -> Result<()> {
        instructions::admin::accept_authority(ctx)
    }

    pub fn suspend_device(ctx: Context<DeviceAdmin>, reason: u16) -> Result<()> {
        instructions::admin::suspend_device(ctx, reason)
    }

    pub fn reinstate_device(ctx: Context<DeviceAdmin>) -> Result<()> {
        instructions::admin::reinstate_device(ctx)
    }

    /// Signed by the owner and by the device key.
    pub fn register_device(ctx: Context<RegisterDevice>, kind: DeviceKind, params: DeviceParams) -> Result<()> {
        instructions::device::register(ctx, kind, params)
    }

    pub fn update_device(ctx: Context<OwnerDevice>, params: DeviceParams) -> Result<()> {
        instructions::device::update(ctx, params)
    }

    pub fn transfer_device(ctx: Context<OwnerDevice>, new_owner: Pubkey) -> Result<()> {
        instructions::device::transfer(ctx, new_owner)
    }

    pub fn retire_device(ctx: Context<OwnerDevice>) -> Result<()> {
        instructions::device::retire(ctx)
    }

    /// Needs Ed25519 precompile signatures of at least `threshold` oracle keys over the
    /// epoch message in the same transaction.
    pub fn post_epoch(ctx: Context<PostEpoch>, args: PostEpochArgs) -> Result<()> {
        instructions::post_epoch::post_epoch_root(ctx, args)
    }

    /// Mints `leaf.cumulative_amount - device.claimed` to the device owner's token account.
    pub fn claim(ctx: Context<Claim>, leaf: RewardLeaf, proof: Vec<Hash32>) -> Result<()> {
        instructions::claim::claim_rewards(ctx, leaf, proof)
    }

    /// The authority hands `Config` to OVPP holders' governance.
    pub fn init_governance(ctx: Context<InitGovernance>, params: GovernanceParams, emergency_pauser: Option<Pubkey>) -> Result<()> {
        instructions::governance::init_governance(ctx, params, emergency_pauser)
    }

    pub fn lock(ctx: Context<Lock>, amount: u64, lock_secs: i64) -> Result<()> {
        instructions::governance::lock(ctx, amount, lock_secs)
    }

    pub fn add_to_lock(ctx: Context<AddToLock>, amount: u64, extend_secs: Option<i64>) -> Result<()> {
        instructions::governance::add_to_lock(ctx, amount, extend_secs)
    }

    pub fn withdraw(ctx: Context<Withdraw>) -> Result<()> {
        instructions::governance::withdraw(ctx)
    }

    pub fn propose(ctx: Context<Propose>, change: GovernanceChange, description_hash: [u8; 32]) -> Result<()> {
        instructions::governance::propose(ctx, change, description_hash)
    }

    pub fn vote(ctx: Context<CastVote>, support: bool) -> Result<()> {
        instructions::governance::vote(ctx, support)
    }

    pub fn execute<'info>(ctx: Context<'info, Execute<'info>>) -> Result<()> {
        instructions::governance::execute(ctx)
    }

    pub fn emergency_pause(ctx: Context<EmergencyPause>) -> Result<()> {
        instructions::governance::emergency_pause(ctx)
    }
}
