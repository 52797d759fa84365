//! Account layouts. Field order is part of the public contract: `Device` keeps its
//! filterable fields at fixed offsets so RPC `memcmp` filters can list devices.

use anchor_lang::prelude::*;

/// Most oracle keys the set may hold.
pub const MAX_ORACLES: usize = 8;
/// Most signatures a `post_epoch` transaction can carry: one Ed25519 instruction with a
/// shared message copy costs 2 + 165 + 110 bytes per signature, and with the posting
/// instruction and its 7 account keys the 1232-byte packet fits five, not six.
pub const MAX_THRESHOLD: u8 = 5;
/// Recent epoch roots kept for claims, so a claim built against epoch N still lands
/// after epochs N+1..N+7 are posted.
pub const ROOT_RING_LEN: usize = 8;

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Default, Debug, PartialEq, Eq, InitSpace)]
pub struct RootEntry {
    pub epoch: u64,
    pub root: [u8; 32],
}

#[account]
#[derive(InitSpace, Debug)]
pub struct Config {
    pub version: u8,
    pub bump: u8,
    pub mint_bump: u8,
    pub paused: bool,
    /// May change parameters; a multisig or governance PDA can take it over.
    pub authority: Pubkey,
    /// Set by `propose_authority`; becomes `authority` when it signs `accept_authority`.
    pub pending_authority: Option<Pubkey>,
    pub mint: Pubkey,
    #[max_len(MAX_ORACLES)]
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub epoch_length_secs: u32,
    /// Epoch `e` may be posted from `schedule_start_ts + (e - schedule_start_epoch) * epoch_length_secs`.
    pub schedule_start_epoch: u64,
    pub schedule_start_ts: i64,
    /// Largest increase of the cumulative total one epoch may bring (OVPP base units).
    pub emission_cap_per_epoch: u64,
    pub last_epoch: u64,
    /// Cumulative total of the last posted epoch: all OVPP ever earned.
    pub cumulative_total: u64,
    /// All OVPP ever minted by claims; never above `cumulative_total`.
    pub total_claimed: u64,
    pub recent_roots: [RootEntry; ROOT_RING_LEN],
}

impl Config {
    /// First unix time at which `epoch` may be posted.
    pub fn epoch_end_ts(&self, epoch: u64) -> Option<i64> {
        let n = epoch.checked_sub(self.schedule_start_epoch)?;
        let secs = n.checked_mul(u64::from(self.epoch_length_secs))?;
        self.schedule_start_ts.checked_add(i64::try_from(secs).ok()?)
    }

    pub fn root_for(&self, epoch: u64) -> Option<[u8; 32]> {
        let entry = self.recent_roots[(epoch % ROOT_RING_LEN as u64) as usize];
        (entry.epoch == epoch && epoch != 0).then_some(entry.root)
    }
}

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
/// Borsh encodes the variant index as one byte: the order below is the on-chain encoding.
pub enum DeviceKind {
    Ev,
    EvCharger,
    HomeBattery,
    CiStorage,
    RooftopSolar,
    SmartMeter,
    EnergyManagementSystem,
}

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum DeviceStatus {
    Active,
    /// Set by the authority (e.g. proven fraud); reversible.
    Suspended,
    /// Set by the owner; final.
    Retired,
}

/// The device's standing, as last attested by an epoch leaf it claimed with.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Default, Debug, PartialEq, Eq, InitSpace)]
pub struct CreditRecord {
    /// 0..=10_000 basis points.
    pub reputation_bps: u16,
    pub epochs_active: u32,
    pub faults: u32,
    /// Epoch of the leaf these values came from (0: never claimed).
    pub as_of_epoch: u64,
}

/// Lifetime contribution, as last attested by an epoch leaf.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Default, Debug, PartialEq, Eq, InitSpace)]
pub struct ContributionSummary {
    /// Energy the device delivered to the grid or site (generation, discharge), Wh.
    pub energy_delivered_wh: u64,
    /// Flexibility delivered in response to dispatch, measured against baseline, Wh.
    pub flexibility_delivered_wh: u64,
}

#[account]
#[derive(InitSpace, Debug)]
pub struct Device {
    /// offset 8: the ed25519 key the device signs telemetry with.
    pub device_key: Pubkey,
    /// offset 40: receives the device's claims.
    pub owner: Pubkey,
    /// offset 72.
    pub kind: DeviceKind,
    /// offset 73.
    pub status: DeviceStatus,
    /// offset 74: ASCII region code (ISO 3166-1/-2 such as `DE-BY`), zero padded.
    pub region: [u8; 8],
    pub bump: u8,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    /// H3 cell index (0: not declared). Coarse on purpose: never a street address.
    pub location_cell: u64,
    pub registered_at: i64,
    pub updated_at: i64,
    pub transfers: u32,
    pub credit: CreditRecord,
    pub contribution: ContributionSummary,
    /// OVPP base units minted for this device so far (cumulative).
    pub claimed: u64,
}

impl Device {
    pub const DEVICE_KEY_OFFSET: usize = 8;
    pub const OWNER_OFFSET: usize = 40;
    pub const KIND_OFFSET: usize = 72;
    pub const STATUS_OFFSET: usize = 73;
    pub const REGION_OFFSET: usize = 74;
}

#[account]
#[derive(InitSpace, Debug)]
pub struct Epoch {
    pub epoch: u64,
    pub root: [u8; 32],
    pub cumulative_total: u64,
    pub leaf_count: u64,
    /// sha256 of the published epoch report the root was computed from.
    pub report_hash: [u8; 32],
    /// The oracles whose signatures were verified, in instruction order; at most 8 (`MAX_ORACLES`).
    #[max_len(MAX_ORACLES)]
    pub signers: Vec<Pubkey>,
    pub posted_slot: u64,
    pub posted_at: i64,
    pub bump: u8,
}

/// Governance by OVPP holders ["governance"]. Once it exists it is `Config`'s authority:
/// parameters change only through proposals that passed a vote and waited out the timelock.
#[account]
#[derive(InitSpace)]
pub struct Governance {
    pub bump: u8,
    pub vault_bump: u8,
    pub params: GovernanceParams,
    /// May pause (never unpause) in an emergency; governance can revoke it.
    pub emergency_pauser: Option<Pubkey>,
    /// OVPP held in the vault for all escrows.
    pub total_locked: u64,
    pub proposal_count: u64,
    /// Hash of the scoring rules the oracles must apply (their reports carry it).
    pub scoring_rules_hash: [u8; 32],
}

#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct GovernanceParams {
    pub voting_period_secs: u32,
    /// Between the end of a vote and the earliest execution.
    pub timelock_secs: u32,
    /// Share of all locked OVPP that must take part in a vote, basis points.
    pub quorum_bps: u16,
    /// The power for must be more than this share of the power cast, basis points.
    pub approval_bps: u16,
    /// Voting power needed to make a proposal.
    pub min_proposal_power: u64,
}

/// A wallet's locked OVPP ["escrow", owner].
#[account]
#[derive(InitSpace)]
pub struct Escrow {
    pub owner: Pubkey,
    pub bump: u8,
    pub amount: u64,
    pub lock_end: i64,
}

/// What a proposal changes when executed.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq, InitSpace)]
pub enum GovernanceChange {
    OracleSet {
        #[max_len(MAX_ORACLES)]
        oracles: Vec<Pubkey>,
        threshold: u8,
    },
    EmissionCap {
        emission_cap_per_epoch: u64,
    },
    EpochLength {
        epoch_length_secs: u32,
    },
    ScoringRulesHash {
        hash: [u8; 32],
    },
    Paused {
        paused: bool,
    },
    /// Proposes a new `Config` authority (it must then accept), handing governance over.
    Authority {
        new_authority: Pubkey,
    },
    EmergencyPauser {
        pauser: Option<Pubkey>,
    },
    Params {
        params: GovernanceParams,
    },
    /// Suspends (e.g. proven telemetry fraud, `reason` as in `suspend_device`) or reinstates
    /// a device; `execute` takes the device account as its one remaining account.
    DeviceStatus {
        device_key: Pubkey,
        suspend: bool,
        reason: u16,
    },
}

/// ["proposal", id u64 LE]
#[account]
#[derive(InitSpace)]
pub struct Proposal {
    pub id: u64,
    pub bump: u8,
    pub proposer: Pubkey,
    pub change: GovernanceChange,
    /// Hash of the off-chain description (e.g. sha256 of its text).
    pub description_hash: [u8; 32],
    pub created_at: i64,
    pub voting_ends_at: i64,
    pub executable_at: i64,
    /// After this a passed proposal can no longer be executed.
    pub expires_at: i64,
    /// All OVPP locked when the proposal was made (the quorum's base).
    pub total_locked_snapshot: u64,
    /// OVPP locked by the wallets that voted (for the quorum).
    pub locked_voted: u64,
    pub power_for: u128,
    pub power_against: u128,
    pub executed: bool,
}

impl Proposal {
    /// OVPP locked by the voters is at least `quorum_bps` of all OVPP locked at creation.
    /// (Tallies are far below overflow: all OVPP ever, times 4, times 10^4, fits in u128.)
    pub fn reached_quorum(&self, quorum_bps: u16) -> bool {
        self.locked_voted > 0 && u128::from(self.locked_voted) * 10_000 >= u128::from(self.total_locked_snapshot) * u128::from(quorum_bps)
    }

    /// The power for is strictly more than `approval_bps` of the power cast (a 50 % tie fails).
    pub fn approved(&self, approval_bps: u16) -> bool {
        self.power_for.saturating_mul(10_000) > self.power_for.saturating_add(self.power_against).saturating_mul(u128::from(approval_bps))
    }
}

/// One wallet's vote on one proposal ["vote", proposal, voter]: its existence is what stops
/// a second vote.
#[account]
#[derive(InitSpace)]
pub struct VoteRecord {
    pub proposal: Pubkey,
    pub voter: Pubkey,
    pub bump: u8,
    pub support: bool,
    pub power: u128,
}
