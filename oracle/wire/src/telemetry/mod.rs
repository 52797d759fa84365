//! The telemetry wire format, defined once here and used by every sender (devices,
//! gateways, the fleet simulator). `docs` in the README gives the byte layout and a test
//! vector for implementers in other languages.
//!
//! A [`TelemetryBatch`] holds one device's readings; the device key signs
//! `TELEMETRY_DOMAIN || borsh(batch)` with ed25519. Integers are little-endian, `Vec` is a
//! u32 length then the items, `Option` is a 0/1 byte then the value, enums are one byte.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub mod validate;

/// Domain prefix of every telemetry signature, so a device key's signature over telemetry
/// can never be replayed as anything else (and vice versa).
pub const TELEMETRY_DOMAIN: &[u8] = b"OVPP-TELEMETRY-V1";

/// What the device is doing relative to grid dispatch during the interval.
#[derive(BorshSerialize, BorshDeserialize, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum GridResponse {
    Idle,
    FollowingDispatch,
    OptedOut,
    Fault,
}

/// One metering interval. Energy counters are per interval (not lifetime registers), in
/// Wh, as u32: one hour at 4.29 GW still fits, far above the largest declarable device.
#[derive(BorshSerialize, BorshDeserialize, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// Unix time (s) at which the interval starts.
    pub interval_start: i64,
    pub interval_secs: u32,
    /// Primary generation (PV); storage discharge is not generation.
    pub energy_generated_wh: u32,
    pub energy_consumed_wh: u32,
    /// Energy drawn from the grid at the device's connection point.
    pub energy_imported_wh: u32,
    /// Energy delivered to the grid at the device's connection point.
    pub energy_exported_wh: u32,
    /// Average power over the interval, W: positive when delivering (generating,
    /// discharging), negative when drawing (consuming, charging).
    pub average_power_w: i32,
    /// State of charge at the interval's end in permille (0..=1000); storage and EVs only.
    pub state_of_charge_permille: Option<u16>,
    /// Usable storage capacity now, Wh (degradation, reserve settings); storage and EVs only.
    pub storage_available_wh: Option<u32>,
    /// How much more the device could deliver (up) or draw (down) right now, W.
    pub flex_up_w: u32,
    pub flex_down_w: u32,
    pub grid_response: GridResponse,
    pub online: bool,
}

#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct TelemetryBatch {
    /// The device's ed25519 public key, as registered on-chain.
    pub device_key: [u8; 32],
    /// Strictly increasing per device; a batch with a sequence at or below the last
    /// accepted one is a replay.
    pub sequence: u64,
    pub readings: Vec<Reading>,
}

/// A batch with the device key's signature over [`TelemetryBatch::signing_bytes`]; borsh
/// encoded as the batch followed by the 64 signature bytes.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SignedBatch {
    pub batch: TelemetryBatch,
    pub signature: [u8; 64],
}

impl Reading {
    /// An online, idle device's reading of `[start, start + secs)` before anything is
    /// measured into it: no energy, no power, no flexibility.
    pub fn empty(interval_start: i64, interval_secs: u32) -> Self {
        Self {
            interval_start,
            interval_secs,
            energy_generated_wh: 0,
            energy_consumed_wh: 0,
            energy_imported_wh: 0,
            energy_exported_wh: 0,
            average_power_w: 0,
            state_of_charge_permille: None,
            storage_available_wh: None,
            flex_up_w: 0,
            flex_down_w: 0,
            grid_response: GridResponse::Idle,
            online: true,
        }
    }
}

impl TelemetryBatch {
    /// `TELEMETRY_DOMAIN || borsh(self)`: the exact bytes the device key signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = TELEMETRY_DOMAIN.to_vec();
        // Writing borsh into a Vec cannot fail.
        self.serialize(&mut out).expect("borsh into Vec");
        out
    }

    pub fn sign(self, key: &SigningKey) -> SignedBatch {
        let signature = key.sign(&self.signing_bytes()).to_bytes();
        SignedBatch { batch: self, signature }
    }
}

/// The binary body of `POST /v1/telemetry`: borsh `Vec<SignedBatch>`.
pub fn encode_batches(batches: &[SignedBatch]) -> Vec<u8> {
    borsh::to_vec(batches).expect("borsh into Vec")
}

/// Decodes a binary request body (trailing bytes are an error).
pub fn decode_batches(bytes: &[u8]) -> Result<Vec<SignedBatch>, DecodeError> {
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed batch encoding: {0}")]
    Malformed(String),
}

impl SignedBatch {
    /// Decodes exactly one signed batch; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into Vec")
    }

    /// Checks the device key's signature (strict: no malleable or small-order keys).
    pub fn verify_signature(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.batch.device_key) else {
            return false;
        };
        key.verify_strict(&self.batch.signing_bytes(), &Signature::from_bytes(&self.signature)).is_ok()
    }
}
