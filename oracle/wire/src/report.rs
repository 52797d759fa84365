//! The published epoch report (`GET /v1/epochs/{n}/report`, `oracle/SCORING.md`): newline
//! delimited JSON, a header line, then one line per device in leaf order. Its sha256 is the
//! report hash the oracles sign and the chain stores; anyone can recompute it.

use ovpp::protocol::RewardLeaf;
use serde::{Deserialize, Serialize};

use crate::score::{EpochInputs, Score, ScoringRules};

pub const REPORT_VERSION: &str = "OVPP-EPOCH-REPORT-V1";

/// The report's first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportHeader {
    pub version: String,
    pub program_id: String,
    pub epoch: u64,
    pub start_ts: i64,
    pub end_ts: i64,
    pub emission: u64,
    pub rules_version: String,
    /// hex sha256 of the rules (see `ScoringRules::hash`).
    pub rules_hash: String,
    pub rules: ScoringRules,
    pub previous_cumulative_total: u64,
    pub cumulative_total: u64,
    pub leaf_count: u64,
    /// hex Merkle root over the leaves, in report order.
    pub root: String,
}

/// One line per device, sorted by device key; the line's position is its leaf index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportLine {
    pub device_key: String,
    pub kind: String,
    /// `active`, `suspended`, `retired`, or `unknown` (not in the registry): only active
    /// devices earn; the others carry their leaf forward unchanged.
    pub status: String,
    pub inputs: EpochInputs,
    pub score: Score,
    pub reputation_before_bps: u16,
    /// This epoch's share of the emission.
    pub amount: u64,
    pub leaf: RewardLeaf,
    /// hex leaf hash.
    pub leaf_hash: String,
}
