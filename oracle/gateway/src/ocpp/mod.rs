//! EV chargers over OCPP-J, 1.6 and 2.0.1: the gateway is their CSMS. Each charger is a
//! device (EV charger kind), and the car behind it a second one (EV kind) when configured.
//! Meter values become readings (`meter`), set points become charging profiles
//! (`SetChargingProfile`, cleared with `ClearChargingProfile`), and the charger's answer is
//! the device's answer to the oracle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ovpp::state::DeviceKind;
use ovpp_wire::telemetry::{GridResponse, Reading};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::adapter::{Adapter, Refusal, SetPoint, Sink};
use crate::config::{ChargerConfig, DeviceSpec, OcppConfig, RateUnit};

pub mod frame;
pub mod meter;
mod server;
mod session;

/// The charging profile the gateway's set points use: one id, replaced by each new set
/// point and cleared when dispatch ends; a stack level above an installer's usual 0.
pub const PROFILE_ID: i64 = 7301;
pub const STACK_LEVEL: i64 = 5;
/// Per-phase voltage for limits in amperes.
const VOLTS: f64 = 230.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V16,
    V201,
}

impl Version {
    pub fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }

    pub fn from_subprotocol(s: &str) -> Option<Self> {
        match s.trim() {
            "ocpp1.6" => Some(Version::V16),
            "ocpp2.0.1" => Some(Version::V201),
            _ => None,
        }
    }
}

pub fn parse_time(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s).map(|d| d.timestamp()).map_err(|_| format!("{s:?} is not an RFC 3339 time"))
}

fn time_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A call to the charger, answered by its CALLRESULT payload or the reason it failed.
pub(crate) struct OutCall {
    pub action: &'static str,
    pub payload: Value,
    pub reply: oneshot::Sender<Result<Value, String>>,
}

/// The charger's open connection.
#[derive(Clone)]
pub(crate) struct Link {
    pub version: Version,
    pub calls: mpsc::Sender<OutCall>,
    /// Ends the session (a newer connection of the same charger took over).
    pub kick: Arc<Notify>,
    pub generation: u64,
}

/// The set point in force, as the charger took it.
#[derive(Clone, Debug)]
pub(crate) struct Limit {
    pub limit_w: f64,
    /// What the charger drew before dispatch: set points are relative to it.
    pub base_w: f64,
    pub from: i64,
    pub until: i64,
}

/// What the charger last said.
#[derive(Default)]
pub(crate) struct Live {
    /// Connector status (1.6 StatusNotification, 2.0.1 connectorStatus or chargingState).
    pub status: Option<String>,
    /// Transaction id and connector (1.6) or EVSE (2.0.1).
    pub transaction: Option<(String, i64)>,
    pub power_w: f64,
    pub soc_percent: Option<f64>,
    /// Set points the charger took, newest last, each ended by the next or by its clearing:
    /// a reading is judged by the one in force as it ended, though it is made later.
    pub limits: Vec<Limit>,
}

/// Set points kept for judging readings (a reading is made at most an hour after its end).
const LIMITS_KEPT: usize = 16;

impl Live {
    /// The set point in force at `t`.
    fn limit_at(&self, t: i64) -> Option<&Limit> {
        self.limits.iter().rev().find(|l| l.from < t && t <= l.until)
    }

    /// Ends the set point in force at `now`.
    fn end_limit(&mut self, now: i64) {
        if let Some(last) = self.limits.last_mut() {
            last.until = last.until.min(now);
        }
    }

    fn take_limit(&mut self, limit: Limit) {
        self.end_limit(limit.from);
        self.limits.push(limit);
        if self.limits.len() > LIMITS_KEPT {
            self.limits.remove(0);
        }
    }
}

pub(crate) struct Charger {
    pub config: ChargerConfig,
    pub link: Mutex<Option<Link>>,
    pub live: Mutex<Live>,
    /// Connections so far; the newest one's number is the only one that meters.
    pub generations: AtomicU64,
    /// Held while the meter cursor is read or advanced: a newer connection and the one it
    /// replaced (or its last reading) never both advance it.
    pub metering: tokio::sync::Mutex<()>,
    /// 1.6 transaction ids (integers), unique across reconnects and restarts.
    pub next_transaction: AtomicI64,
}

impl Charger {
    fn ev_name(&self) -> String {
        format!("{}/ev", self.config.id)
    }

    /// Whether a car is plugged in.
    fn plugged(live: &Live) -> bool {
        live.transaction.is_some()
            || matches!(
                live.status.as_deref(),
                Some("Preparing" | "Charging" | "SuspendedEV" | "SuspendedEVSE" | "Finishing" | "Occupied" | "EVConnected")
            )
    }

    /// The readings of one interval: the charger's, and its car's when configured.
    pub fn readings(&self, iv: crate::register::Interval) -> Vec<(String, Reading)> {
        let live = self.live.lock().expect("not poisoned");
        let rated = self.config.power_w as f64;
        let average_w = f64::from(iv.energy_wh) * 3600.0 / f64::from(iv.secs.max(1));
        let plugged = Self::plugged(&live);
        let draw = if plugged { live.power_w.clamp(0.0, rated) } else { 0.0 };
        let car_full = live.status.as_deref() == Some("SuspendedEV") || live.soc_percent.is_some_and(|s| s >= 100.0);
        let end = iv.start + i64::from(iv.secs);
        // Following when a set point was in force as the reading ended and the charger kept to
        // it then, judged on the power it reported around that time (the sample after, when
        // the set point took force after the one before), not on the interval's average: that
        // still holds the draw from before the set point, and its whole Wh move it in steps
        // of 3600 / secs W (360 W at 10 s). Either would make a complying charger look as if
        // it had dropped out, and the oracle would re-plan without it.
        let following = live.limit_at(end).is_some_and(|l| {
            let (sampled_at, before_w) = iv.power_before;
            let at_end_w = if l.from > sampled_at { iv.power_after_w } else { before_w };
            at_end_w <= l.limit_w * 1.05 + 100.0
        });
        let grid_response = if live.status.as_deref() == Some("Faulted") {
            GridResponse::Fault
        } else if following {
            GridResponse::FollowingDispatch
        } else {
            GridResponse::Idle
        };
        let charger = Reading {
            interval_start: iv.start,
            interval_secs: iv.secs,
            energy_generated_wh: 0,
            energy_consumed_wh: iv.energy_wh,
            energy_imported_wh: iv.energy_wh,
            energy_exported_wh: 0,
            average_power_w: -(average_w.round().min(f64::from(i32::MAX)) as i32),
            state_of_charge_permille: None,
            storage_available_wh: None,
            flex_up_w: draw as u32,
            flex_down_w: if plugged && !car_full { (rated - draw).max(0.0) as u32 } else { 0 },
            grid_response,
            online: true,
        };
        let mut out = vec![(self.config.id.clone(), charger)];
        if let Some(ev) = &self.config.ev {
            // The car carries its state; the charger carries the energy and the flexibility
            // (dispatch goes to the charger), so nothing is counted twice.
            let car = Reading {
                energy_consumed_wh: 0,
                energy_imported_wh: 0,
                average_power_w: 0,
                state_of_charge_permille: live.soc_percent.map(|s| (s * 10.0).round().clamp(0.0, 1000.0) as u16),
                storage_available_wh: Some(u32::try_from(ev.capacity_wh).unwrap_or(u32::MAX)),
                flex_up_w: 0,
                flex_down_w: 0,
                grid_response: GridResponse::Idle,
                online: plugged,
                ..charger
            };
            out.push((self.ev_name(), car));
        }
        out
    }

    /// The SetChargingProfile payload limiting the charger to `limit_w` for the set point.
    fn profile(&self, version: Version, transaction: Option<&(String, i64)>, limit_w: f64, sp: &SetPoint) -> Value {
        let (unit, limit) = match self.config.rate_unit {
            RateUnit::W => ("W", limit_w.round()),
            RateUnit::A => ("A", (limit_w / (VOLTS * f64::from(self.config.phases)) * 10.0).floor() / 10.0),
        };
        let duration = (sp.valid_until - sp.valid_from).max(1);
        let purpose = if transaction.is_some() { "TxProfile" } else { "TxDefaultProfile" };
        let period = json!([{"startPeriod": 0, "limit": limit}]);
        match version {
            Version::V16 => {
                let mut profile = json!({
                    "chargingProfileId": PROFILE_ID,
                    "stackLevel": STACK_LEVEL,
                    "chargingProfilePurpose": purpose,
                    "chargingProfileKind": "Absolute",
                    "validFrom": time_text(sp.valid_from),
                    "validTo": time_text(sp.valid_until),
                    "chargingSchedule": {
                        "duration": duration,
                        "startSchedule": time_text(sp.valid_from),
                        "chargingRateUnit": unit,
                        "chargingSchedulePeriod": period,
                    },
                });
                let connector = match transaction {
                    Some((id, connector)) => {
                        profile["transactionId"] = json!(id.parse::<i64>().unwrap_or_default());
                        *connector
                    }
                    None => 0,
                };
                json!({"connectorId": connector, "csChargingProfiles": profile})
            }
            Version::V201 => {
                let mut profile = json!({
                    "id": PROFILE_ID,
                    "stackLevel": STACK_LEVEL,
                    "chargingProfilePurpose": purpose,
                    "chargingProfileKind": "Absolute",
                    "validFrom": time_text(sp.valid_from),
                    "validTo": time_text(sp.valid_until),
                    "chargingSchedule": [{
                        "id": PROFILE_ID,
                        "duration": duration,
                        "startSchedule": time_text(sp.valid_from),
                        "chargingRateUnit": unit,
                        "chargingSchedulePeriod": period,
                    }],
                });
                let evse = match transaction {
                    Some((id, evse)) => {
                        profile["transactionId"] = json!(id);
                        *evse
                    }
                    None => 0,
                };
                json!({"evseId": evse, "chargingProfile": profile})
            }
        }
    }
}

pub struct OcppAdapter {
    config: OcppConfig,
    chargers: HashMap<String, Arc<Charger>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl OcppAdapter {
    pub fn new(config: OcppConfig) -> anyhow::Result<Self> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
            _ => None,
        };
        let first_transaction = ovpp_wire::clock::unix_now() % 1_000_000_000;
        let chargers = config
            .chargers
            .iter()
            .map(|c| {
                let charger = Charger {
                    config: c.clone(),
                    link: Mutex::new(None),
                    live: Mutex::default(),
                    generations: AtomicU64::new(0),
                    metering: tokio::sync::Mutex::new(()),
                    next_transaction: AtomicI64::new(first_transaction),
                };
                (c.id.clone(), Arc::new(charger))
            })
            .collect();
        Ok(Self { config, chargers, tls })
    }

    fn charger_of(&self, device: &str) -> Option<(&Arc<Charger>, bool)> {
        match device.strip_suffix("/ev") {
            Some(id) => self.chargers.get(id).map(|c| (c, true)),
            None => self.chargers.get(device).map(|c| (c, false)),
        }
    }

    /// Sends `action` to the charger and waits for its answer.
    async fn call(&self, link: &Link, action: &'static str, payload: Value) -> Result<Value, String> {
        let (reply, answer) = oneshot::channel();
        link.calls.send(OutCall { action, payload, reply }).await.map_err(|_| "the charger disconnected".to_string())?;
        match tokio::time::timeout(Duration::from_secs(self.config.call_timeout_secs), answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err("the charger disconnected before answering".into()),
            Err(_) => Err(format!("the charger did not answer {action} within {} s", self.config.call_timeout_secs)),
        }
    }
}

#[async_trait]
impl Adapter for OcppAdapter {
    fn devices(&self) -> Vec<DeviceSpec> {
        let mut out = Vec::new();
        for c in &self.config.chargers {
            out.push(DeviceSpec {
                name: c.id.clone(),
                kind: DeviceKind::EvCharger,
                rated_power_w: c.power_w,
                energy_capacity_wh: 0,
                region: c.region.clone(),
            });
            if let Some(ev) = &c.ev {
                out.push(DeviceSpec {
                    name: format!("{}/ev", c.id),
                    kind: DeviceKind::Ev,
                    rated_power_w: ev.power_w.unwrap_or(c.power_w),
                    energy_capacity_wh: ev.capacity_wh,
                    region: c.region.clone(),
                });
            }
        }
        out
    }

    async fn run(self: Arc<Self>, sink: Sink) -> anyhow::Result<()> {
        server::serve(self, sink).await
    }

    async fn apply(&self, device: &str, setpoint: Option<&SetPoint>) -> Result<(), Refusal> {
        let Some((charger, is_car)) = self.charger_of(device) else { return Err(Refusal(format!("no charger {device}"))) };
        if is_car {
            return Err(Refusal(format!("an EV is dispatched through its charger {}", charger.config.id)));
        }
        let link = charger.link.lock().expect("not poisoned").clone();
        let Some(link) = link else { return Err(Refusal(format!("charger {} is not connected", charger.config.id))) };
        let Some(sp) = setpoint else {
            let payload = match link.version {
                Version::V16 => json!({"id": PROFILE_ID}),
                Version::V201 => json!({"chargingProfileId": PROFILE_ID}),
            };
            charger.live.lock().expect("not poisoned").end_limit(ovpp_wire::clock::unix_now());
            return self.call(&link, "ClearChargingProfile", payload).await.map(|_| ()).map_err(Refusal);
        };
        let (payload, limit_w, base_w) = {
            let live = charger.live.lock().expect("not poisoned");
            let now = ovpp_wire::clock::unix_now();
            let draw = if Charger::plugged(&live) { live.power_w } else { 0.0 };
            // Relative to what it would draw undispatched, not to a limit already in force.
            let base_w = live.limits.last().filter(|l| l.until >= now).map_or(draw, |l| l.base_w);
            let limit_w = (base_w - sp.setpoint_w as f64).clamp(0.0, charger.config.power_w as f64);
            (charger.profile(link.version, live.transaction.as_ref(), limit_w, sp), limit_w, base_w)
        };
        let answer = self.call(&link, "SetChargingProfile", payload).await.map_err(Refusal)?;
        match answer.get("status").and_then(Value::as_str) {
            Some("Accepted") => {
                let now = ovpp_wire::clock::unix_now();
                let mut live = charger.live.lock().expect("not poisoned");
                live.take_limit(Limit { limit_w, base_w, from: now.max(sp.valid_from), until: sp.valid_until });
                Ok(())
            }
            status => {
                Err(Refusal(format!("charger {} answered SetChargingProfile with {}", charger.config.id, status.unwrap_or("no status"))))
            }
        }
    }

    fn connected(&self, device: &str) -> bool {
        self.charger_of(device).is_some_and(|(c, _)| c.link.lock().expect("not poisoned").is_some())
    }
}

pub(crate) fn next_transaction_id(charger: &Charger) -> i64 {
    charger.next_transaction.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charger() -> Charger {
        let config = ChargerConfig {
            id: "CP-1".into(),
            password: "a-password-of-16+".into(),
            region: "DE-BY".into(),
            power_w: 11_000,
            rate_unit: RateUnit::W,
            phases: 3,
            ev: None,
        };
        Charger {
            config,
            link: Mutex::new(None),
            live: Mutex::new(Live { transaction: Some(("1".into(), 1)), power_w: 7400.0, ..Live::default() }),
            generations: AtomicU64::new(0),
            metering: tokio::sync::Mutex::new(()),
            next_transaction: AtomicI64::new(1),
        }
    }

    fn response(c: &Charger, iv: crate::register::Interval) -> GridResponse {
        c.readings(iv).remove(0).1.grid_response
    }

    /// A reading is judged by the set point in force as it ended, on the power sampled
    /// around then: not by its average (which holds the draw from before the set point) and
    /// not by the state when it is made (the set point may be cleared by then).
    #[test]
    fn following_is_judged_at_the_readings_end() {
        let c = charger();
        // Limited to 2 kW at 1005; samples at 1002 (7.4 kW, before the limit) and 1012 (2 kW).
        c.live.lock().unwrap().take_limit(Limit { limit_w: 2000.0, base_w: 7400.0, from: 1005, until: 1060 });
        let first = crate::register::Interval { start: 1000, secs: 10, energy_wh: 10, power_before: (1002, 7400.0), power_after_w: 2000.0 };
        assert_eq!(
            response(&c, first),
            GridResponse::FollowingDispatch,
            "the average (3.6 kW) is above the limit, the power at the end is not"
        );
        // Whole Wh: 6 Wh in 10 s averages 2160 W against a 2000 W limit.
        let quantized =
            crate::register::Interval { start: 1010, secs: 10, energy_wh: 6, power_before: (1018, 2000.0), power_after_w: 2000.0 };
        assert_eq!(response(&c, quantized), GridResponse::FollowingDispatch);
        // Cleared at 1061, the charger back at full power: a reading that ended before is still judged by the limit.
        c.live.lock().unwrap().end_limit(1061);
        c.live.lock().unwrap().power_w = 7400.0;
        let last = crate::register::Interval { start: 1050, secs: 10, energy_wh: 6, power_before: (1058, 2000.0), power_after_w: 7400.0 };
        assert_eq!(response(&c, last), GridResponse::FollowingDispatch);
        // After the clearing, and a charger that ignored its limit, are not following.
        let after = crate::register::Interval { start: 1060, secs: 10, energy_wh: 20, power_before: (1062, 7400.0), power_after_w: 7400.0 };
        assert_eq!(response(&c, after), GridResponse::Idle);
        let d = charger();
        d.live.lock().unwrap().take_limit(Limit { limit_w: 2000.0, base_w: 7400.0, from: 1005, until: 1060 });
        let ignored =
            crate::register::Interval { start: 1010, secs: 10, energy_wh: 20, power_before: (1018, 7400.0), power_after_w: 7400.0 };
        assert_eq!(response(&d, ignored), GridResponse::Idle);
    }
}
