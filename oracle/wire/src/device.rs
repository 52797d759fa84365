//! A device as the network knows it: its key, and what its `Device` account declares.

use anchor_lang::prelude::Pubkey;
use ovpp::state::{Device, DeviceKind};

use crate::telemetry::validate::DeviceProfile;

/// A device's ed25519 public key (its identity; the `Device` PDA is derived from it).
pub type DeviceKey = [u8; 32];

/// Each kind's name in JSON, on the command line and in reports.
pub const KINDS: [(DeviceKind, &str); 7] = [
    (DeviceKind::Ev, "ev"),
    (DeviceKind::EvCharger, "ev_charger"),
    (DeviceKind::HomeBattery, "home_battery"),
    (DeviceKind::CiStorage, "ci_storage"),
    (DeviceKind::RooftopSolar, "rooftop_solar"),
    (DeviceKind::SmartMeter, "smart_meter"),
    (DeviceKind::EnergyManagementSystem, "ems"),
];

pub fn kind_name(kind: DeviceKind) -> &'static str {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n).unwrap_or("unknown")
}

pub fn kind_from_name(name: &str) -> Option<DeviceKind> {
    KINDS.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
}

/// A registered device: its key, owner, declared parameters and place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredDevice {
    pub key: DeviceKey,
    pub owner: Pubkey,
    pub profile: DeviceProfile,
    /// Region code without padding, e.g. `DE-BY`.
    pub region: String,
    pub location_cell: u64,
}

impl RegisteredDevice {
    pub fn from_device(device: &Device) -> Self {
        let len = device.region.iter().position(|&b| b == 0).unwrap_or(device.region.len());
        Self {
            key: device.device_key.to_bytes(),
            owner: device.owner,
            profile: DeviceProfile {
                kind: device.kind,
                status: device.status,
                rated_power_w: device.rated_power_w,
                energy_capacity_wh: device.energy_capacity_wh,
            },
            region: String::from_utf8_lossy(&device.region[..len]).into_owned(),
            location_cell: device.location_cell,
        }
    }

    pub fn kind(&self) -> DeviceKind {
        self.profile.kind
    }
}
