//! Declared-parameter rules: what a device of each kind may claim to be, and the bounds of
//! the governed parameters. Limits are deliberately generous (they reject impossible or
//! fat-fingered declarations, not unusual installations); the oracle holds every reading
//! to the declared values, so an inflated declaration only buys scrutiny.

use anchor_lang::prelude::*;

use crate::errors::OvppError;
use crate::state::DeviceKind;

const KW: u64 = 1_000;
const MW: u64 = 1_000_000;
const KWH: u64 = 1_000;
const MWH: u64 = 1_000_000;

/// Inclusive range of rated power (W) and energy capacity (Wh) one kind may declare.
pub struct KindLimits {
    pub power_w: (u64, u64),
    pub capacity_wh: (u64, u64),
}

pub const fn kind_limits(kind: DeviceKind) -> KindLimits {
    match kind {
        // Charge/discharge power at the vehicle's inlet: 1.4 kW (120 V level-1 cord) up to
        // 350 kW DC fast charging. Traction batteries: 5 kWh (small PHEV) to 250 kWh (large trucks/SUVs).
        DeviceKind::Ev => KindLimits { power_w: (1_400, 350 * KW), capacity_wh: (5 * KWH, 250 * KWH) },
        // A charger stores nothing; 1.4 kW (level-1 EVSE) to 350 kW (HPC DC).
        DeviceKind::EvCharger => KindLimits { power_w: (1_400, 350 * KW), capacity_wh: (0, 0) },
        // Residential batteries: inverters of 0.5-30 kW, packs of 1-100 kWh.
        DeviceKind::HomeBattery => KindLimits { power_w: (500, 30 * KW), capacity_wh: (KWH, 100 * KWH) },
        // Commercial & industrial storage: 10 kW cabinets up to 100 MW / 500 MWh plants.
        DeviceKind::CiStorage => KindLimits { power_w: (10 * KW, 100 * MW), capacity_wh: (10 * KWH, 500 * MWH) },
        // Rooftop PV peak power: one 100 W panel up to a 5 MW warehouse roof; stores nothing.
        DeviceKind::RooftopSolar => KindLimits { power_w: (100, 5 * MW), capacity_wh: (0, 0) },
        // A meter measures a site and produces nothing; its rating is the site connection
        // (1 kW to 10 MW) and it stores nothing.
        DeviceKind::SmartMeter => KindLimits { power_w: (KW, 10 * MW), capacity_wh: (0, 0) },
        // An EMS controls a site's flexible assets: controllable power 1 kW-100 MW, and the
        // storage it controls may be none or up to 500 MWh.
        DeviceKind::EnergyManagementSystem => KindLimits { power_w: (KW, 100 * MW), capacity_wh: (0, 500 * MWH) },
    }
}

impl DeviceKind {
    /// Whether this kind can put energy out (generation or discharge); a smart meter or
    /// a charger only measures or passes energy through.
    pub const fn can_deliver_energy(self) -> bool {
        !matches!(self, DeviceKind::SmartMeter | DeviceKind::EvCharger)
    }
}

pub fn check_declared(kind: DeviceKind, rated_power_w: u64, energy_capacity_wh: u64) -> Result<()> {
    let limits = kind_limits(kind);
    require!((limits.power_w.0..=limits.power_w.1).contains(&rated_power_w), OvppError::RatedPowerOutOfRange);
    require!((limits.capacity_wh.0..=limits.capacity_wh.1).contains(&energy_capacity_wh), OvppError::EnergyCapacityOutOfRange);
    Ok(())
}

/// Region codes: ISO 3166-1 alpha-2 (`DE`) or ISO 3166-2 (`DE-BY`, `AU-NSW`), uppercase,
/// zero padded to 8 bytes, so equal regions are equal bytes (memcmp-filterable).
pub fn check_region(region: &[u8; 8]) -> Result<()> {
    let len = region.iter().position(|&b| b == 0).unwrap_or(region.len());
    let (code, padding) = region.split_at(len);
    let ok = len >= 2
        && code[..2].iter().all(u8::is_ascii_uppercase)
        && code.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-')
        && padding.iter().all(|&b| b == 0);
    require!(ok, OvppError::InvalidRegion);
    Ok(())
}

pub const MIN_EPOCH_LENGTH_SECS: u32 = 60;
pub const MAX_EPOCH_LENGTH_SECS: u32 = 31 * 24 * 3600;
/// OVPP has 6 decimals; one epoch may never mint more than 100 million OVPP, whatever
/// the authority sets, so a compromised authority cannot inflate the supply in one step.
pub const OVPP_DECIMALS: u8 = 6;
pub const MAX_EMISSION_CAP_PER_EPOCH: u64 = 100_000_000 * 10u64.pow(OVPP_DECIMALS as u32);
pub const MAX_REPUTATION_BPS: u16 = 10_000;

pub fn check_epoch_length(secs: u32) -> Result<()> {
    require!((MIN_EPOCH_LENGTH_SECS..=MAX_EPOCH_LENGTH_SECS).contains(&secs), OvppError::InvalidEpochLength);
    Ok(())
}

pub fn check_emission_cap(cap: u64) -> Result<()> {
    require!((1..=MAX_EMISSION_CAP_PER_EPOCH).contains(&cap), OvppError::InvalidEmissionCap);
    Ok(())
}

pub fn check_oracle_set(oracles: &[Pubkey], threshold: u8) -> Result<()> {
    require!((1..=crate::state::MAX_ORACLES).contains(&oracles.len()), OvppError::InvalidOracleSet);
    for (i, key) in oracles.iter().enumerate() {
        require!(*key != Pubkey::default(), OvppError::InvalidOracleSet);
        require!(!oracles[..i].contains(key), OvppError::InvalidOracleSet);
    }
    require!(
        threshold >= 1 && usize::from(threshold) <= oracles.len() && threshold <= crate::state::MAX_THRESHOLD,
        OvppError::InvalidThreshold
    );
    Ok(())
}

/// Locks last at least a week and at most four years.
pub const MIN_LOCK_SECS: i64 = 7 * 24 * 3600;
pub const MAX_LOCK_SECS: i64 = 4 * 365 * 24 * 3600;
/// A passed proposal may be executed during this long after its timelock.
pub const EXECUTION_WINDOW_SECS: i64 = 14 * 24 * 3600;

/// Voting power of `amount` OVPP locked until `lock_end`, at `now`: from 1x (lock ending
/// now) to 4x (four years left), linear in the time left, so it decays as the lock runs
/// down (as in vote-escrow systems): `amount * (1 + 3 * left / MAX_LOCK_SECS)`.
pub fn voting_power(amount: u64, lock_end: i64, now: i64) -> u128 {
    let left = lock_end.saturating_sub(now).clamp(0, MAX_LOCK_SECS) as u128;
    let max = MAX_LOCK_SECS as u128;
    u128::from(amount) * (max + 3 * left) / max
}

pub fn check_governance_params(p: &crate::state::GovernanceParams) -> Result<()> {
    const DAY: u32 = 24 * 3600;
    let ok = (60..=30 * DAY).contains(&p.voting_period_secs)
        && p.timelock_secs <= 30 * DAY
        && (1..=10_000).contains(&p.quorum_bps)
        && (5_000..10_000).contains(&p.approval_bps)
        && p.min_proposal_power >= 1;
    require!(ok, OvppError::InvalidGovernanceParams);
    Ok(())
}

/// The bounds of each change, checked when it is proposed and again when it is executed.
pub fn check_change(change: &crate::state::GovernanceChange) -> Result<()> {
    use crate::state::GovernanceChange::*;
    match change {
        OracleSet { oracles, threshold } => check_oracle_set(oracles, *threshold),
        EmissionCap { emission_cap_per_epoch } => check_emission_cap(*emission_cap_per_epoch),
        EpochLength { epoch_length_secs } => check_epoch_length(*epoch_length_secs),
        Authority { new_authority } => {
            require!(*new_authority != Pubkey::default(), OvppError::InvalidGovernanceParams);
            Ok(())
        }
        Params { params } => check_governance_params(params),
        ScoringRulesHash { .. } | Paused { .. } | EmergencyPauser { .. } | DeviceStatus { .. } => Ok(()),
    }
}
