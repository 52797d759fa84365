//! Contribution scoring, rules v1 (`oracle/SCORING.md` is the owner-facing text of these
//! functions). Integer arithmetic only, every division rounding down, so that anyone who
//! has the epoch's telemetry and the rules recomputes the same points, amounts and root.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Rules v1: everything but price response.
pub const RULES_V1: &str = "OVPP-SCORING-V1";
/// Rules v2: v1 plus price response (energy moved where a price curve asked for it).
pub const RULES_V2: &str = "OVPP-SCORING-V2";

/// Basis points: 10_000 is 100 %.
pub const BPS: u64 = 10_000;
/// Reputation a device starts with (no earlier leaf).
pub const INITIAL_REPUTATION_BPS: u16 = 5_000;

/// The published weights. Energy rates are points per kWh; the split of an epoch's
/// emission is proportional, so only their ratios matter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringRules {
    /// Primary generation (PV), per kWh generated.
    pub generation_per_kwh: u64,
    /// Storage discharge (energy shifted to when it is needed), per kWh.
    pub storage_shifted_per_kwh: u64,
    /// Usable storage kept online, per kWh available for one hour.
    pub storage_available_per_kwh_hour: u64,
    /// Flexibility offered (up + down, W) while online in the daily stress window, per kWh
    /// (kW held for one hour).
    pub stability_per_kwh: u64,
    /// Demand response delivered against baseline in dispatched events, per kWh.
    pub demand_response_per_kwh: u64,
    /// Price response (v2): energy moved against baseline as a price schedule asked, per
    /// kWh. Absent, the rules are v1, whose reports do not have the price-response input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_response_per_kwh: Option<u64>,
    /// Online time with accepted data (what a meter or charger contributes), per hour.
    pub online_per_hour: u64,
    /// Daily stress window `[from, to)`, UTC hours (the evening peak).
    pub stress_hours_utc: [u8; 2],
    /// Below this data quality an epoch earns nothing.
    pub min_quality_bps: u16,
    /// Reputation lost in an epoch with fault intervals.
    pub fault_penalty_bps: u16,
}

impl Default for ScoringRules {
    fn default() -> Self {
        Self {
            generation_per_kwh: 1_000,
            storage_shifted_per_kwh: 2_000,
            storage_available_per_kwh_hour: 20,
            stability_per_kwh: 500,
            demand_response_per_kwh: 5_000,
            price_response_per_kwh: Some(1_000),
            online_per_hour: 100,
            stress_hours_utc: [16, 20],
            min_quality_bps: 5_000,
            fault_penalty_bps: 1_000,
        }
    }
}

impl ScoringRules {
    /// The published rules v1, for operators who must keep them until governance votes v2.
    pub fn v1() -> Self {
        Self { price_response_per_kwh: None, ..Self::default() }
    }

    /// `OVPP-SCORING-V2` when the rules pay price response, else `OVPP-SCORING-V1`.
    pub fn version(&self) -> &'static str {
        match self.price_response_per_kwh {
            Some(_) => RULES_V2,
            None => RULES_V1,
        }
    }

    /// sha256 of `version || canonical JSON of the rules`: goes into every epoch report, so
    /// a change of any weight changes the report hash that is signed.
    pub fn hash(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).expect("rules serialize");
        Sha256::new().chain_update(self.version()).chain_update(json).finalize().into()
    }
}

/// What the epoch's accepted telemetry says about one device (all sums over readings
/// whose interval starts inside the epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochInputs {
    /// Seconds covered by accepted readings.
    pub covered_secs: u64,
    /// Seconds covered by readings that say online.
    pub online_secs: u64,
    pub generated_wh: u64,
    /// Exported beyond own generation, by a device with storage.
    pub discharged_wh: u64,
    /// Σ usable storage (Wh) x seconds / 3600 over online readings.
    pub storage_available_wh_hours: u64,
    /// Σ (flex up + flex down, W) x seconds / 3600 over online readings in the stress window.
    pub stress_flex_wh: u64,
    /// Readings that report a fault.
    pub fault_intervals: u64,
    /// Demand response delivered against baseline (from dispatch measurement).
    pub demand_response_wh: u64,
    /// Price response (rules v2 only): energy moved against baseline in the direction a
    /// price schedule commanded, per interval capped by the command (dispatch measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_response_wh: Option<u64>,
    pub accepted_batches: u64,
    pub rejected_batches: u64,
    /// The highest batch sequence included: with it, anyone holding the batches selects
    /// exactly the readings these inputs were computed from.
    pub through_sequence: u64,
}

/// Points and standing of one device for one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub generation: u64,
    pub storage: u64,
    pub stability: u64,
    pub demand_response: u64,
    /// Rules v2 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_response: Option<u64>,
    pub online: u64,
    /// Share of the epoch covered, times the share of batches accepted.
    pub quality_bps: u64,
    /// (Σ of the components above) x quality, or 0 below the minimum quality.
    pub points: u64,
}

fn per_kwh(wh: u64, rate: u64) -> u64 {
    (u128::from(wh) * u128::from(rate) / 1000).try_into().unwrap_or(u64::MAX)
}

/// `part / whole` in basis points, capped at 100 %.
fn share_bps(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    (u128::from(part) * u128::from(BPS) / u128::from(whole)).min(u128::from(BPS)) as u64
}

pub fn score(inputs: &EpochInputs, epoch_secs: u64, rules: &ScoringRules) -> Score {
    let batches = inputs.accepted_batches.saturating_add(inputs.rejected_batches);
    let quality_bps = (u128::from(share_bps(inputs.covered_secs, epoch_secs)) * u128::from(share_bps(inputs.accepted_batches, batches))
        / u128::from(BPS)) as u64;
    let mut s = Score {
        generation: per_kwh(inputs.generated_wh, rules.generation_per_kwh),
        storage: per_kwh(inputs.discharged_wh, rules.storage_shifted_per_kwh)
            .saturating_add(per_kwh(inputs.storage_available_wh_hours, rules.storage_available_per_kwh_hour)),
        stability: per_kwh(inputs.stress_flex_wh, rules.stability_per_kwh),
        demand_response: per_kwh(inputs.demand_response_wh, rules.demand_response_per_kwh),
        price_response: rules.price_response_per_kwh.map(|rate| per_kwh(inputs.price_response_wh.unwrap_or(0), rate)),
        online: (u128::from(inputs.online_secs) * u128::from(rules.online_per_hour) / 3600).try_into().unwrap_or(u64::MAX),
        quality_bps,
        points: 0,
    };
    if quality_bps >= u64::from(rules.min_quality_bps) {
        let sum = s
            .generation
            .saturating_add(s.storage)
            .saturating_add(s.stability)
            .saturating_add(s.demand_response)
            .saturating_add(s.price_response.unwrap_or(0))
            .saturating_add(s.online);
        s.points = (u128::from(sum) * u128::from(quality_bps) / u128::from(BPS)) as u64;
    }
    s
}

/// Next reputation: 70 % the old value, 30 % this epoch's data quality, less the fault
/// penalty when the device reported faults. A silent epoch (quality 0) pulls it down.
pub fn next_reputation(old_bps: u16, score: &Score, inputs: &EpochInputs, rules: &ScoringRules) -> u16 {
    let standing =
        if inputs.fault_intervals > 0 { score.quality_bps.saturating_sub(u64::from(rules.fault_penalty_bps)) } else { score.quality_bps };
    let next = (7 * u64::from(old_bps) + 3 * standing) / 10;
    next.min(BPS) as u16
}

/// Splits `emission` in proportion to points x reputation, rounding each share down (the
/// remainder is never minted). Returns one amount per entry, in order.
pub fn split_emission(emission: u64, weights: &[(u64, u16)]) -> Vec<u64> {
    let weight = |&(points, reputation): &(u64, u16)| u128::from(points) * u128::from(reputation);
    let total: u128 = weights.iter().map(weight).sum();
    weights.iter().map(|w| (u128::from(emission) * weight(w)).checked_div(total).unwrap_or(0) as u64).collect()
}
