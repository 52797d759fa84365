//! What the oracle tells devices, and what devices sign back.
//!
//! A [`Command`] is a set point for one device, for one event interval, with an id and a
//! validity window. A device (or its gateway) fetches its commands with
//! `GET /v1/devices/{key}/commands`, answers each with an [`Ack`] signed by the device key
//! (accept or refuse: a refusal is an opt-out of the event), and reports
//! `following_dispatch` in its telemetry while it follows one. Owners set
//! [`Preferences`] (state-of-charge reserve, EV departure, opt-out) the same way: signed
//! by the device key, so nobody else can opt a device out or change its reserve.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device::DeviceKey;

pub const ACK_DOMAIN: &[u8] = b"OVPP-ACK-V1";
pub const PREFERENCES_DOMAIN: &[u8] = b"OVPP-PREFERENCES-V1";
pub const COMMANDS_QUERY_DOMAIN: &[u8] = b"OVPP-COMMANDS-QUERY-V2";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    pub event_id: String,
    #[serde(with = "key_text")]
    pub device_key: DeviceKey,
    pub valid_from: i64,
    pub valid_until: i64,
    /// W: positive deliver (discharge, shed load), negative absorb (charge, curtail).
    pub setpoint_w: i64,
    pub issued_at: i64,
}

impl Command {
    /// The id is a hash of (event, plan revision, start, device, issue time): unique per plan
    /// and device, also when a plan is made afresh after its revisions were lost (another
    /// oracle process took over, the event was modified).
    pub fn new(
        event_id: &str,
        revision: u64,
        device_key: DeviceKey,
        valid_from: i64,
        valid_until: i64,
        setpoint_w: i64,
        issued_at: i64,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(event_id.as_bytes());
        h.update([0]);
        h.update(revision.to_le_bytes());
        h.update(valid_from.to_le_bytes());
        h.update(device_key);
        h.update(issued_at.to_le_bytes());
        let id = hex::encode(&h.finalize()[..12]);
        Self { id, event_id: event_id.to_string(), device_key, valid_from, valid_until, setpoint_w, issued_at }
    }
}

/// The bytes a device signs to acknowledge a command:
/// `ACK_DOMAIN || borsh(device_key, command_id, accept)`.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub device_key: DeviceKey,
    pub command_id: String,
    pub accept: bool,
}

/// An owner's settings for one device; `sequence` must grow (a replayed older message is
/// refused). Signed as `PREFERENCES_DOMAIN || borsh(self)`.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(with = "key_text")]
    pub device_key: DeviceKey,
    pub sequence: u64,
    /// State of charge dispatch never goes below (permille) [default 200].
    pub reserve_soc_permille: u16,
    /// EV: when it leaves (unix s), and the state of charge it needs by then (permille).
    pub departure: Option<i64>,
    pub departure_soc_permille: u16,
    /// No dispatch before this time (unix s); 0 for none.
    pub opt_out_until: i64,
}

impl Default for Preferences {
    fn default() -> Self {
        Self { device_key: [0; 32], sequence: 0, reserve_soc_permille: 200, departure: None, departure_soc_permille: 0, opt_out_until: 0 }
    }
}

/// A message a device key signs: `DOMAIN || borsh(message)`, verified strictly.
pub trait DeviceSigned: BorshSerialize {
    const DOMAIN: &'static [u8];

    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Self::DOMAIN.to_vec();
        self.serialize(&mut out).expect("borsh into Vec");
        out
    }

    fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.signing_bytes()).to_bytes()
    }

    fn verify(&self, key: &VerifyingKey, signature: &[u8; 64]) -> bool {
        key.verify_strict(&self.signing_bytes(), &Signature::from_bytes(signature)).is_ok()
    }
}

impl DeviceSigned for Ack {
    const DOMAIN: &'static [u8] = ACK_DOMAIN;
}

impl DeviceSigned for Preferences {
    const DOMAIN: &'static [u8] = PREFERENCES_DOMAIN;
}

/// A gateway asking for the commands of many devices at once (`POST /v1/commands`): every
/// listed device signs the same bytes, so only who holds a device's key learns its set
/// points. `signed_at` must be within a minute of the oracle's clock.
///
/// The bytes are `COMMANDS_QUERY_DOMAIN || signed_at (i64 LE) || sha256(borsh(devices))`, of
/// a fixed size: with the device list itself in them, n signatures would each hash the
/// whole list, which is quadratic (at 4096 devices a request, most of a gateway's CPU).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandsQuery {
    pub signed_at: i64,
    pub devices: Vec<DeviceKey>,
}

impl CommandsQuery {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut list = Sha256::new();
        list.update(borsh::to_vec(&self.devices).expect("borsh into Vec"));
        let mut out = COMMANDS_QUERY_DOMAIN.to_vec();
        out.extend_from_slice(&self.signed_at.to_le_bytes());
        out.extend_from_slice(&list.finalize());
        out
    }

    /// Each key's signature of the query, in order.
    pub fn sign_all(&self, keys: &[&SigningKey]) -> Vec<[u8; 64]> {
        let bytes = self.signing_bytes();
        keys.iter().map(|k| k.sign(&bytes).to_bytes()).collect()
    }

    /// The first device whose signature does not verify (strictly), if any.
    pub fn first_unverified(&self, keys: &[VerifyingKey], signatures: &[[u8; 64]]) -> Option<usize> {
        let bytes = self.signing_bytes();
        if keys.len() != signatures.len() {
            return Some(keys.len().min(signatures.len()));
        }
        keys.iter().zip(signatures).position(|(key, signature)| key.verify_strict(&bytes, &Signature::from_bytes(signature)).is_err())
    }
}

/// The JSON body of `POST /v1/commands`: base58 device keys, and each one's signature of the
/// [`CommandsQuery`] in the same order (a grid operator's bearer token needs none).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsRequest {
    pub devices: Vec<String>,
    #[serde(default)]
    pub signed_at: i64,
    #[serde(default)]
    pub signatures: Vec<String>,
}

impl CommandsRequest {
    /// The request a gateway holding `keys` sends at `signed_at`.
    pub fn signed(keys: &[&SigningKey], signed_at: i64) -> Self {
        let devices: Vec<DeviceKey> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let query = CommandsQuery { signed_at, devices };
        Self {
            devices: query.devices.iter().map(|d| bs58::encode(d).into_string()).collect(),
            signed_at,
            signatures: query.sign_all(keys).iter().map(|s| bs58::encode(s).into_string()).collect(),
        }
    }
}

/// How far ahead a departure or an opt-out may be set: a year (anything later is a mistake,
/// and keeps every time computation far from overflow).
pub const MAX_PREFERENCE_HORIZON_SECS: i64 = 366 * 86_400;

impl Preferences {
    pub fn opted_out(&self, now: i64) -> bool {
        now < self.opt_out_until
    }

    /// The bounds an owner's preferences must keep at `now`; the error says which one.
    pub fn check(&self, now: i64) -> Result<(), String> {
        for (name, value) in [("reserve_soc_permille", self.reserve_soc_permille), ("departure_soc_permille", self.departure_soc_permille)]
        {
            if value > 1000 {
                return Err(format!("{name} is {value}: a state of charge is 0 to 1000 permille"));
            }
        }
        let latest = now.saturating_add(MAX_PREFERENCE_HORIZON_SECS);
        if let Some(departure) = self.departure {
            if !(0..=latest).contains(&departure) {
                return Err(format!("departure {departure} must be a unix time in seconds, at most a year from now ({latest})"));
            }
        }
        if !(0..=latest).contains(&self.opt_out_until) {
            return Err(format!(
                "opt_out_until {} must be 0 or a unix time in seconds, at most a year from now ({latest})",
                self.opt_out_until
            ));
        }
        Ok(())
    }
}

/// Device keys as base58 text in JSON.
pub mod key_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bs58::encode(key).into_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        match bs58::decode(&text).onto(&mut out) {
            Ok(32) => Ok(out),
            _ => Err(serde::de::Error::custom(format!("{text:?} is not a base58 ed25519 public key"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed device signs the same fixed-size bytes; a signature is bound to the time,
    /// the whole list and its device; a wrong one is named by its place.
    #[test]
    fn a_commands_query_is_signed_by_every_device_over_the_whole_list() {
        let keys: Vec<SigningKey> = (1..=5u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
        let refs: Vec<&SigningKey> = keys.iter().collect();
        let verifying: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let query = CommandsQuery { signed_at: 1_800_000_000, devices: verifying.iter().map(|k| k.to_bytes()).collect() };
        assert_eq!(query.signing_bytes().len(), COMMANDS_QUERY_DOMAIN.len() + 8 + 32);
        let mut signatures = query.sign_all(&refs);
        assert_eq!(query.first_unverified(&verifying, &signatures), None);
        let later = CommandsQuery { signed_at: query.signed_at + 1, ..query.clone() };
        assert_eq!(later.first_unverified(&verifying, &signatures), Some(0));
        let fewer = CommandsQuery { devices: query.devices[..4].to_vec(), ..query.clone() };
        assert_eq!(fewer.first_unverified(&verifying[..4], &signatures[..4]), Some(0));
        signatures.swap(2, 3);
        assert_eq!(query.first_unverified(&verifying, &signatures), Some(2));
        assert_eq!(query.first_unverified(&verifying, &signatures[..4]), Some(4));
    }

    /// A plan made afresh with its revision counted from 1 again (another oracle process took
    /// over, the event was modified) issues new ids: the store keeps one row per id, so a
    /// reused id would leave the device without its new command.
    #[test]
    fn command_ids_differ_between_plans_made_at_different_times() {
        let a = Command::new("evt-1", 1, [7; 32], 1_800_000_000, 1_800_000_900, 3_000, 1_799_999_940);
        let again = Command::new("evt-1", 1, [7; 32], 1_800_000_000, 1_800_000_900, 3_000, 1_799_999_940);
        let later = Command::new("evt-1", 1, [7; 32], 1_800_000_000, 1_800_000_900, 2_000, 1_799_999_970);
        assert_eq!(a.id, again.id);
        assert_ne!(a.id, later.id);
        assert_ne!(a.id, Command::new("evt-1", 2, [7; 32], 1_800_000_000, 1_800_000_900, 3_000, 1_799_999_940).id);
        assert_ne!(a.id, Command::new("evt-1", 1, [8; 32], 1_800_000_000, 1_800_000_900, 3_000, 1_799_999_940).id);
    }
}
