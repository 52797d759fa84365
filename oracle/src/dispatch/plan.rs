//! What each device can give an event now: its capability in the needed direction,
//! limited by everything the owner and the physics allow, and its reliability weight.
//! The allocation ([`super::allocate`]) then shares the target out.

use ovpp::state::{DeviceKind, DeviceStatus};

use super::allocate::{Candidate, WEIGHT_SCALE};
use crate::fleet::is_online;
use ovpp_wire::device::RegisteredDevice;
use ovpp_wire::dispatch::command::Preferences;
use ovpp_wire::telemetry::{GridResponse, Reading};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Deliver: discharge or shed load.
    Up,
    /// Absorb: charge or curtail generation.
    Down,
}

impl Direction {
    /// The sign of a set point in this direction (commands: + deliver, - absorb).
    pub fn sign(self) -> i64 {
        match self {
            Direction::Up => 1,
            Direction::Down => -1,
        }
    }
}

/// Kinds that store energy (EVs included): limited by their state of charge.
pub fn is_storage(kind: DeviceKind) -> bool {
    matches!(kind, DeviceKind::HomeBattery | DeviceKind::CiStorage | DeviceKind::EnergyManagementSystem | DeviceKind::Ev)
}

/// W the device can hold in `direction` from `now` until `until`, 0 if it must not be
/// asked: not active, offline, opted out (by preference or by its own telemetry), faulty,
/// or without energy. Storage keeps its state-of-charge reserve for the whole event, and
/// an EV keeps what it needs to reach its departure charge at rated power afterwards.
/// `holding_w` is what the device already gives this event (its reported flexibility is
/// what it could give on top).
pub fn capability(
    device: &RegisteredDevice,
    latest: Option<&Reading>,
    prefs: &Preferences,
    direction: Direction,
    now: i64,
    until: i64,
    holding_w: u64,
) -> u64 {
    let Some(r) = latest else { return 0 };
    if device.profile.status != DeviceStatus::Active
        || !is_online(r, now)
        || prefs.opted_out(now)
        || matches!(r.grid_response, GridResponse::OptedOut | GridResponse::Fault)
    {
        return 0;
    }
    let kind = device.kind();
    let rated = device.profile.rated_power_w;
    let remaining_h = until.saturating_sub(now).max(1) as f64 / 3600.0;
    let mut power = match (direction, kind) {
        (Direction::Up, k) if is_storage(k) || k == DeviceKind::EvCharger => u64::from(r.flex_up_w),
        (Direction::Down, k) if is_storage(k) || k == DeviceKind::EvCharger => u64::from(r.flex_down_w),
        // Curtailing PV absorbs what it would have exported.
        (Direction::Down, DeviceKind::RooftopSolar) => u64::try_from(r.average_power_w.max(0)).unwrap_or(0),
        _ => 0,
    };
    power = power.saturating_add(holding_w).min(rated);
    if let (true, Some(soc)) = (is_storage(kind), r.state_of_charge_permille) {
        let usable = f64::from(r.storage_available_wh.unwrap_or(device.profile.energy_capacity_wh as u32));
        let stored = usable * f64::from(soc.min(1000)) / 1000.0;
        let energy_wh = match direction {
            Direction::Up => {
                let mut above = stored - usable * f64::from(prefs.reserve_soc_permille.min(1000)) / 1000.0;
                if let (DeviceKind::Ev, Some(departure)) = (kind, prefs.departure) {
                    // What can still be recharged between the event's end and departure.
                    let recharge = rated as f64 * (departure.saturating_sub(until).max(0) as f64 / 3600.0);
                    let needed = usable * f64::from(prefs.departure_soc_permille.min(1000)) / 1000.0;
                    above = above.min(stored + recharge - needed);
                }
                above
            }
            Direction::Down => usable - stored,
        };
        power = power.min((energy_wh.max(0.0) / remaining_h) as u64);
    }
    power
}

/// Reliability in parts per million: the device's measured delivery ratio over its recent
/// events (1 when it has none), reduced by 20 % for each event it served in the last 24 h
/// (fatigue: the load is spread over devices that have not been asked lately).
pub fn reliability_ppm(delivery_ratio: Option<f64>, events_last_day: usize) -> u32 {
    let ratio = delivery_ratio.unwrap_or(1.0).clamp(0.05, 1.0);
    let fatigue = 0.8f64.powi(events_last_day.min(20) as i32);
    ((ratio * fatigue * f64::from(WEIGHT_SCALE)) as u32).max(1)
}

/// A device as the planner sees it: registry entry, latest reading, owner's preferences,
/// reliability (ppm) and what it already gives the event (W).
pub type PlanInput<'a> = (&'a RegisteredDevice, Option<&'a Reading>, &'a Preferences, u32, u64);

/// Candidates for the allocator from the devices of the event's region.
pub fn candidates<'a>(devices: impl Iterator<Item = PlanInput<'a>>, direction: Direction, now: i64, until: i64) -> Vec<Candidate> {
    devices
        .map(|(device, latest, prefs, weight_ppm, holding_w)| Candidate {
            device: device.key,
            capacity_w: capability(device, latest, prefs, direction, now, until, holding_w),
            weight_ppm,
        })
        .filter(|c| c.capacity_w > 0)
        .collect()
}
