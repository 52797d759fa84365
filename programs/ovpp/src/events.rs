//! Anchor events, one per state change, so indexers can follow without re-reading accounts.

use anchor_lang::prelude::*;

use crate::state::{DeviceKind, DeviceStatus};

#[event]
pub struct Initialized {
    pub authority: Pubkey,
    pub mint: Pubkey,
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub epoch_length_secs: u32,
    pub emission_cap_per_epoch: u64,
}

#[event]
pub struct OracleSetChanged {
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
}

#[event]
pub struct EmissionCapChanged {
    pub emission_cap_per_epoch: u64,
}

#[event]
pub struct EpochLengthChanged {
    pub epoch_length_secs: u32,
    pub schedule_start_epoch: u64,
    pub schedule_start_ts: i64,
}

#[event]
pub struct PausedChanged {
    pub paused: bool,
}

#[event]
pub struct AuthorityProposed {
    pub authority: Pubkey,
    pub pending_authority: Option<Pubkey>,
}

#[event]
pub struct AuthorityAccepted {
    pub previous: Pubkey,
    pub authority: Pubkey,
}

#[event]
pub struct DeviceRegistered {
    pub device_key: Pubkey,
    pub owner: Pubkey,
    pub kind: DeviceKind,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    pub region: [u8; 8],
    pub location_cell: u64,
}

#[event]
pub struct DeviceUpdated {
    pub device_key: Pubkey,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    pub region: [u8; 8],
    pub location_cell: u64,
}

#[event]
pub struct DeviceTransferred {
    pub device_key: Pubkey,
    pub previous_owner: Pubkey,
    pub new_owner: Pubkey,
}

#[event]
pub struct DeviceStatusChanged {
    pub device_key: Pubkey,
    pub status: DeviceStatus,
    /// Authority's reason code for a suspension (0 for owner actions).
    pub reason: u16,
}

#[event]
pub struct EpochPosted {
    pub epoch: u64,
    pub root: [u8; 32],
    pub cumulative_total: u64,
    pub leaf_count: u64,
    pub report_hash: [u8; 32],
    pub signers: Vec<Pubkey>,
}

#[event]
pub struct RewardsClaimed {
    pub device_key: Pubkey,
    pub owner: Pubkey,
    pub epoch: u64,
    pub amount: u64,
    pub cumulative_claimed: u64,
}

#[event]
pub struct GovernanceInitialized {
    pub governance: Pubkey,
    pub previous_authority: Pubkey,
    pub emergency_pauser: Option<Pubkey>,
}

#[event]
pub struct TokensLocked {
    pub owner: Pubkey,
    pub amount: u64,
    pub total: u64,
    pub lock_end: i64,
}

#[event]
pub struct TokensWithdrawn {
    pub owner: Pubkey,
    pub amount: u64,
}

#[event]
pub struct ProposalCreated {
    pub id: u64,
    pub proposer: Pubkey,
    pub voting_ends_at: i64,
    pub executable_at: i64,
}

#[event]
pub struct VoteCast {
    pub proposal: u64,
    pub voter: Pubkey,
    pub support: bool,
    pub power: u128,
}

#[event]
pub struct ProposalExecuted {
    pub id: u64,
}

#[event]
pub struct EmergencyPaused {
    pub pauser: Pubkey,
}
