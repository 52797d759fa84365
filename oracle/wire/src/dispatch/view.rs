//! What the oracle shows of dispatch: plans, event views and reports, the flexibility
//! forecast, and a device's commands (README: grid API; `DISPATCHING.md`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::device::DeviceKey;
use crate::dispatch::command::Command;
use crate::dispatch::event::Status;

/// The plan for an active power event's current interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub revision: u64,
    pub interval_start: i64,
    pub target_w: u64,
    pub planned_w: u64,
    pub shortfall_w: u64,
    pub devices: usize,
    /// What the eligible devices could give when it was made.
    pub capability_w: u64,
    /// Set point per device (signed like commands) and its command id.
    #[serde(skip)]
    pub setpoints: Setpoints,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceDelivery {
    /// The device's key, base58.
    pub device: String,
    pub kind: String,
    pub baseline: String,
    /// Why the program's baseline was not used, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline_days: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<f64>,
    pub commanded_wh: u64,
    pub delivered_wh: i64,
    pub paid_wh: u64,
    /// delivered / commanded, 0 when nothing was commanded.
    pub delivery_ratio: f64,
    /// Per event interval: baseline, metered net import and delivery, Wh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<DeviceInterval>,
    /// How well the day-matching baseline used predicted this device's recent days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<BaselineAccuracy>,
}

/// A baseline's accuracy on a device's recent days like the event's (no events): relative
/// RMSE and relative bias (baseline minus metered, over the mean metered).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineAccuracy {
    pub days: u32,
    pub rrmse: f64,
    pub bias: f64,
}

/// One device's measurement in one event interval (Wh; metered is net import).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInterval {
    pub id: i64,
    pub baseline_wh: i64,
    pub metered_wh: i64,
    pub delivered_wh: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalDelivery {
    pub id: i64,
    pub start: i64,
    pub end: i64,
    pub target_w: i64,
    pub commanded_w: i64,
    pub delivered_w: i64,
}

/// The event's performance report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventReport {
    pub event_id: String,
    pub program_id: String,
    pub region: String,
    pub signal: String,
    pub start: i64,
    pub end: i64,
    /// The program's baseline for loads and meters.
    pub load_baseline: String,
    pub target_wh: u64,
    pub commanded_wh: u64,
    pub delivered_wh: i64,
    /// delivered / target.
    pub delivery_ratio: f64,
    pub intervals: Vec<IntervalDelivery>,
    /// Per device; left out for callers who may not see devices (README: access).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceDelivery>,
    /// When the deliveries were credited (the epoch they count in follows from it).
    #[serde(default)]
    pub credited_at: i64,
}

/// What a device should do now, and what it is scheduled to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCommands {
    pub now: i64,
    /// The command in force: a power event's set point over a schedule's.
    pub current: Option<Command>,
    /// Every command in force or upcoming, in time order.
    pub commands: Vec<Command>,
}

/// `POST /v1/commands`: each listed device's commands, by base58 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandsAnswer {
    pub now: i64,
    pub devices: BTreeMap<String, DeviceCommands>,
}

/// `POST /v1/devices/{key}/acks`: a device accepts or refuses a command, signed by its key
/// over `Ack` (`DeviceSigned`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    pub command_id: String,
    pub accept: bool,
    /// Base58 ed25519 signature.
    pub signature: String,
    /// Why a device refused (for people; not signed), at most 200 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to an ack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckAnswer {
    pub command_id: String,
    pub accepted: bool,
}

/// An event as the fleet view shows it: status, live plan and delivery, measured totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "programID")]
    pub program_id: String,
    #[serde(rename = "eventName")]
    pub event_name: Option<String>,
    pub region: String,
    /// The signal's OpenADR payload type.
    #[serde(rename = "type")]
    pub signal: String,
    pub start: i64,
    pub end: i64,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Live estimate against each planned device's power before the event, W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_delivery_w: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportTotals>,
}

/// A measured event's totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportTotals {
    pub target_wh: u64,
    pub delivered_wh: i64,
    pub delivery_ratio: f64,
}

/// Flexibility a region can offer `hours` from now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastPoint {
    pub hours: i64,
    pub flex_up_w: u64,
    pub flex_down_w: u64,
}

/// The forecast per region.
pub type Forecast = BTreeMap<String, Vec<ForecastPoint>>;

/// A planned device's set point (signed like commands) and its command id.
pub type Setpoints = HashMap<DeviceKey, (i64, String)>;
