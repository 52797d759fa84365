//! The bodies of the oracle's HTTP answers (README: HTTP API), serialized by the server and
//! read by the CLI, co-signers and tests with the same types.

use std::collections::BTreeMap;

use ovpp::protocol::RewardLeaf;
use serde::{Deserialize, Serialize};

use crate::dispatch::view::{EventView, Forecast};
use crate::telemetry::{Reading, SignedBatch, TelemetryBatch};

/// Every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, snake case (README: errors).
    pub code: String,
    /// For people: what went wrong and what to do.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.into(), message: message.into() } }
    }
}

/// `GET /healthz`: `ok`, or `failing` with the error and the stopped tasks (503).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    /// Whether this process does the leader's work (dispatch rounds, epochs, relaying,
    /// pruning) among the processes sharing its database; always true with SQLite.
    #[serde(default)]
    pub leader: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// JSON form of a signed batch (`POST /v1/telemetry` as `application/json`): keys and
/// signatures in base58, readings as objects.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct JsonBatch {
    pub device_key: String,
    pub sequence: u64,
    pub readings: Vec<Reading>,
    pub signature: String,
}

/// A field of a [`JsonBatch`] that is not base58 of the right length.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} is not valid base58 of the right length")]
pub struct BadBase58(pub &'static str);

impl JsonBatch {
    pub fn from_signed(b: &SignedBatch) -> Self {
        Self {
            device_key: bs58::encode(b.batch.device_key).into_string(),
            sequence: b.batch.sequence,
            readings: b.batch.readings.clone(),
            signature: bs58::encode(b.signature).into_string(),
        }
    }

    pub fn into_signed(self) -> Result<SignedBatch, BadBase58> {
        let mut device_key = [0u8; 32];
        if bs58::decode(&self.device_key).onto(&mut device_key).ok() != Some(32) {
            return Err(BadBase58("device_key"));
        }
        let mut signature = [0u8; 64];
        if bs58::decode(&self.signature).onto(&mut signature).ok() != Some(64) {
            return Err(BadBase58("signature"));
        }
        Ok(SignedBatch { batch: TelemetryBatch { device_key, sequence: self.sequence, readings: self.readings }, signature })
    }
}

/// `POST /v1/telemetry`: one result per batch, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryAnswer {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchResult>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Accepted,
    /// A retry of the device's latest accepted batch: stored before.
    AlreadyStored,
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    pub status: BatchStatus,
    /// The rejection code (`Reject::code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Aggregates over a set of devices. Powers in W, energies in Wh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetGroup {
    pub devices: u64,
    pub devices_online: u64,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    pub stored_energy_wh: u64,
    /// Storage devices online by state of charge: [0,20), [20,40), [40,60), [60,80), [80,100] %.
    pub soc_histogram: [u64; 5],
    pub flex_up_w: u64,
    pub flex_down_w: u64,
    /// Average generation and consumption over each online device's latest interval.
    pub generation_w: u64,
    pub load_w: u64,
}

/// The live fleet map, by region and by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSummary {
    pub as_of: i64,
    pub totals: FleetGroup,
    pub by_region: BTreeMap<String, FleetGroup>,
    pub by_kind: BTreeMap<String, FleetGroup>,
}

/// `GET /v1/fleet`: the live map, the events of the last day and the flexibility forecast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    #[serde(flatten)]
    pub summary: FleetSummary,
    pub events: Vec<EventView>,
    pub forecast: Forecast,
}

/// `GET /v1/devices/{key}`: the registry entry (public, as on-chain) and, for those who
/// speak for the device, its readings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub device_key: String,
    pub owner: String,
    pub kind: String,
    pub status: String,
    pub region: String,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    /// Whether this caller sees the readings below.
    pub readings_visible: bool,
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub readings: Option<DeviceReadings>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceReadings {
    pub online: bool,
    pub latest: Option<Reading>,
    /// Oldest first.
    pub recent_readings: Vec<Reading>,
}

/// An epoch as closed here (`GET /v1/epochs`, `GET /v1/epochs/{n}` with its signatures).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochView {
    pub epoch: u64,
    pub start_ts: i64,
    pub end_ts: i64,
    pub emission: u64,
    pub cumulative_total: u64,
    pub leaf_count: u64,
    /// Hex.
    pub root: String,
    /// Hex sha256 of the report.
    pub report_hash: String,
    pub closed_at: i64,
    pub posted: bool,
    pub posted_at: Option<i64>,
    pub posted_signature: Option<String>,
    /// Oracle signatures collected here (only on `GET /v1/epochs/{n}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<Vec<EpochSignature>>,
}

/// An oracle's signature over an epoch message (also the body of
/// `POST /v1/epochs/{n}/signatures`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochSignature {
    /// Base58 oracle public key.
    pub signer: String,
    /// Base58 ed25519 signature over the epoch message.
    pub signature: String,
}

/// `POST /v1/epochs/{n}/signatures`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRecorded {
    pub epoch: u64,
    pub signer: String,
    pub status: String,
}

/// `GET /v1/rewards/{key}`: what a wallet needs to claim: the device's leaf in the latest
/// posted epoch, its Merkle proof and the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewards {
    pub device_key: String,
    pub epoch: u64,
    /// Hex.
    pub root: String,
    pub leaf: RewardLeaf,
    /// Hex nodes, leaf to root.
    pub proof: Vec<String>,
    /// The chain's latest posted epoch: above `epoch` when this oracle has not closed (or
    /// not received) the newer ones, so its proof is older than it could be.
    pub chain_last_epoch: u64,
}
