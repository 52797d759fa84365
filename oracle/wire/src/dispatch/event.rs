//! Grid events, modelled on OpenADR 3: a program, and events with an interval period,
//! intervals and payloads, aimed at one region. The JSON field names are OpenADR 3.0's
//! (`programID`, `eventName`, `targets`, `intervalPeriod`, `intervals`, `payloads`);
//! `DISPATCHING.md` lists which parts are compatible.
//!
//! An event carries one kind of signal (its payload type) for all of its intervals:
//!
//! | payload type            | meaning                                           | value        |
//! |-------------------------|---------------------------------------------------|--------------|
//! | `DISPATCH_SETPOINT`     | shed load / discharge this much in the region     | kW, ≥ 0      |
//! | `ABSORB_SETPOINT` (ext.)| absorb surplus: charge / curtail this much        | kW, ≥ 0      |
//! | `IMPORT_CAPACITY_LIMIT` | keep the region's net import under this cap       | kW, ≥ 0      |
//! | `PRICE`                 | energy price in the interval (day-ahead curve)    | per kWh      |

use serde::{Deserialize, Serialize};

/// Longest event accepted, and most intervals (a day-ahead curve at 1-minute resolution
/// fits; anything longer is a mistake).
pub const MAX_EVENT_SECS: i64 = 7 * 86_400;
pub const MAX_INTERVALS: usize = 2_880;
/// How far ahead an event may start: a year.
pub const MAX_EVENT_HORIZON_SECS: i64 = 366 * 86_400;

/// The signal an event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Signal {
    /// Deliver: shed load or discharge, W.
    DispatchSetpoint,
    /// Absorb: charge or curtail generation, W.
    AbsorbSetpoint,
    /// Peak shaving: cap on the region's net import, W.
    ImportCapacityLimit,
    /// Price per kWh in millionths of the currency unit.
    Price,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::DispatchSetpoint => "DISPATCH_SETPOINT",
            Signal::AbsorbSetpoint => "ABSORB_SETPOINT",
            Signal::ImportCapacityLimit => "IMPORT_CAPACITY_LIMIT",
            Signal::Price => "PRICE",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Signal::DispatchSetpoint, Signal::AbsorbSetpoint, Signal::ImportCapacityLimit, Signal::Price]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// Power signals ask for set points now; a price curve asks for a schedule. Two
    /// events conflict when they overlap in time and region and are of the same family.
    pub fn is_power(self) -> bool {
        self != Signal::Price
    }
}

/// OpenADR 3 `intervalPeriod`: RFC 3339 start, ISO 8601 duration (default `PT0S`, which
/// an event interval may not have). `randomizeStart` is kept and not applied: the oracle
/// spreads load by allocation, not by random start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalPeriod {
    pub start: String,
    #[serde(default = "zero_duration")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub randomize_start: Option<String>,
}

fn zero_duration() -> String {
    "PT0S".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValuesMap {
    #[serde(rename = "type")]
    pub kind: String,
    pub values: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadDescriptor {
    pub payload_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireInterval {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_period: Option<IntervalPeriod>,
    pub payloads: Vec<ValuesMap>,
}

/// An event as an OpenADR 3 client posts it (VTN-provisioned fields are ignored on input).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    #[serde(rename = "programID")]
    pub program_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub targets: Vec<ValuesMap>,
    /// Reports the event asks of VENs: kept and served as posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_descriptors: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub payload_descriptors: Vec<PayloadDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_period: Option<IntervalPeriod>,
    pub intervals: Vec<WireInterval>,
}

/// OpenADR 3 writes absent lists as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A program's description link (`programDescriptions`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramDescription {
    #[serde(rename = "URL")]
    pub url: String,
}

/// An OpenADR 3.0.1 program, every field of the spec's schema (the VTN-provisioned `id`,
/// times and `objectType` are added when served), plus the `baseline` extension.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireProgram {
    pub program_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_long_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailer_long_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_subdivision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone_offset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_period: Option<IntervalPeriod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_descriptions: Option<Vec<ProgramDescription>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_events: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_price: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_descriptors: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<ValuesMap>>,
    /// Which customer baseline measures loads and meters in this program's events (one of
    /// the oracle's published methods, `DISPATCHING.md`) [default: CAISO_10_IN_10] (an OVPP
    /// extension; batteries and EVs are always metered before/after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// One interval of a validated event: `[start, end)`, and its value (W, or price in
/// millionths per kWh).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInterval {
    pub id: i64,
    pub start: i64,
    pub end: i64,
    pub value: i64,
}

/// A validated event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridEvent {
    pub id: String,
    pub program_id: String,
    pub event_name: Option<String>,
    pub region: String,
    pub signal: Signal,
    pub intervals: Vec<EventInterval>,
    pub created: i64,
    pub modified: i64,
    pub cancelled: bool,
    /// As posted (OpenADR: 0 is the highest priority); not used in planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// As posted; served back to VENs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_descriptors: Option<Vec<serde_json::Value>>,
    /// Where the event came from when the oracle took it from another VTN as its VEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EventSource>,
}

/// An event of another VTN, as the oracle's VEN took it in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    /// The VTN's name in the oracle's settings.
    pub vtn: String,
    pub program_id: String,
    pub event_id: String,
    /// The VTN's `modificationDateTime` of the version taken in.
    pub modified: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Active,
    Completed,
    Cancelled,
}

impl GridEvent {
    pub fn start(&self) -> i64 {
        self.intervals.first().map_or(0, |i| i.start)
    }

    pub fn end(&self) -> i64 {
        self.intervals.last().map_or(0, |i| i.end)
    }

    pub fn status(&self, now: i64) -> Status {
        if self.cancelled {
            Status::Cancelled
        } else if now < self.start() {
            Status::Pending
        } else if now < self.end() {
            Status::Active
        } else {
            Status::Completed
        }
    }

    /// The part of the event that ran: a cancelled event's intervals up to its cancellation
    /// (`modified`), the last one cut there; any other event whole. What is measured.
    pub fn active_part(&self) -> GridEvent {
        let mut event = self.clone();
        if self.cancelled {
            let until = self.modified;
            event.intervals.retain(|i| i.start < until);
            for interval in &mut event.intervals {
                interval.end = interval.end.min(until);
            }
        }
        event
    }

    /// The interval running at `now`.
    pub fn interval_at(&self, now: i64) -> Option<&EventInterval> {
        self.intervals.iter().find(|i| i.start <= now && now < i.end)
    }

    pub fn overlaps(&self, other: &GridEvent) -> bool {
        self.start() < other.end() && other.start() < self.end()
    }

    /// The event in OpenADR 3 JSON, with the VTN-provisioned fields and its status.
    pub fn to_wire(&self, now: i64) -> serde_json::Value {
        let intervals: Vec<_> = self
            .intervals
            .iter()
            .map(|i| {
                let value = match self.signal {
                    Signal::Price => serde_json::json!(i.value as f64 / 1e6),
                    _ => serde_json::json!(i.value as f64 / 1e3),
                };
                serde_json::json!({
                    "id": i.id,
                    "intervalPeriod": {"start": rfc3339(i.start), "duration": iso_duration(i.end - i.start)},
                    "payloads": [{"type": self.signal.name(), "values": [value]}],
                })
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "objectType": "EVENT",
            "createdDateTime": rfc3339(self.created),
            "modificationDateTime": rfc3339(self.modified),
            "programID": self.program_id,
            "eventName": self.event_name,
            "priority": self.priority,
            "reportDescriptors": self.report_descriptors,
            "targets": [{"type": "REGION", "values": [self.region]}],
            "payloadDescriptors": [{"payloadType": self.signal.name(), "units": if self.signal == Signal::Price { "KWH" } else { "KW" }}],
            "intervalPeriod": {"start": rfc3339(self.start()), "duration": iso_duration(self.end() - self.start())},
            "intervals": intervals,
            "status": self.status(now),
        })
    }
}

/// Why an event is refused; `code()` is the stable error code of the API.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unknown program {0:?}: create it first with POST /openadr3/programs")]
    UnknownProgram(String),
    #[error("unknown region {0:?}: no registered device is in it")]
    UnknownRegion(String),
    #[error("the event needs exactly one target of type REGION with one value")]
    MissingRegion,
    #[error("interval {0} ends at or before it starts")]
    EndBeforeStart(i64),
    #[error("interval {0}: negative target {1} kW (the payload type gives the direction)")]
    NegativeTarget(i64, String),
    #[error("unsupported payload type {0:?} (supported: DISPATCH_SETPOINT, ABSORB_SETPOINT, IMPORT_CAPACITY_LIMIT, PRICE)")]
    UnsupportedPayload(String),
    #[error("the event ended before now")]
    InThePast,
    #[error("overlaps event {0} in the same region with a conflicting signal; modify or cancel that one first")]
    Conflict(String),
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("event {0} is {1:?} and can no longer be modified")]
    Final(String, Status),
}

impl EventError {
    pub fn code(&self) -> &'static str {
        match self {
            EventError::UnknownProgram(_) => "unknown_program",
            EventError::UnknownRegion(_) => "unknown_region",
            EventError::MissingRegion => "missing_region",
            EventError::EndBeforeStart(_) => "end_before_start",
            EventError::NegativeTarget(..) => "negative_target",
            EventError::UnsupportedPayload(_) => "unsupported_payload",
            EventError::InThePast => "event_in_past",
            EventError::Conflict(_) => "conflicting_event",
            EventError::Invalid(_) => "invalid_event",
            EventError::Final(..) => "event_final",
        }
    }
}

/// What validation needs to know about the world.
pub struct Context<'a> {
    pub programs: &'a [String],
    pub regions: &'a [String],
    /// Events that may conflict (not cancelled).
    pub others: &'a [GridEvent],
    pub now: i64,
}

impl WireEvent {
    /// Validates the event against `ctx` and turns it into a [`GridEvent`] with `id`.
    pub fn validate(&self, id: &str, ctx: &Context) -> Result<GridEvent, EventError> {
        if !ctx.programs.contains(&self.program_id) {
            return Err(EventError::UnknownProgram(self.program_id.clone()));
        }
        let region = match self.targets.as_slice() {
            [t] if t.kind == "REGION" && t.values.len() == 1 => t.values[0].as_str().ok_or(EventError::MissingRegion)?.to_string(),
            _ => return Err(EventError::MissingRegion),
        };
        if !ctx.regions.contains(&region) {
            return Err(EventError::UnknownRegion(region));
        }
        if self.priority.is_some_and(|p| p < 0) {
            return Err(EventError::Invalid("priority must be 0 or more".into()));
        }
        if self.intervals.is_empty() {
            return Err(EventError::Invalid("no intervals".into()));
        }
        if self.intervals.len() > MAX_INTERVALS {
            return Err(EventError::Invalid(format!("{} intervals, at most {MAX_INTERVALS}", self.intervals.len())));
        }
        let mut signal = None;
        let mut intervals = Vec::with_capacity(self.intervals.len());
        // Without its own period, an interval follows the previous one with the event's duration.
        let mut next_start = match &self.interval_period {
            Some(p) => Some(parse_period(p, -1, ctx.now)?),
            None => None,
        };
        for interval in &self.intervals {
            let (start, duration) = match (&interval.interval_period, next_start) {
                (Some(p), _) => parse_period(p, interval.id, ctx.now)?,
                (None, Some(p)) => p,
                (None, None) => {
                    return Err(EventError::Invalid(format!("interval {} has no intervalPeriod and the event has none", interval.id)))
                }
            };
            if duration <= 0 {
                return Err(EventError::EndBeforeStart(interval.id));
            }
            if let Some(previous) = intervals.last().map(|i: &EventInterval| i.end) {
                if start < previous {
                    return Err(EventError::Invalid(format!("interval {} starts before the previous one ends", interval.id)));
                }
            }
            let [payload] = interval.payloads.as_slice() else {
                return Err(EventError::Invalid(format!("interval {} must carry exactly one payload", interval.id)));
            };
            let this = Signal::from_name(&payload.kind).ok_or_else(|| EventError::UnsupportedPayload(payload.kind.clone()))?;
            if signal.is_some_and(|s| s != this) {
                return Err(EventError::Invalid("all intervals must carry the same payload type".into()));
            }
            signal = Some(this);
            let [value] = payload.values.as_slice() else {
                return Err(EventError::Invalid(format!("interval {} payload must have exactly one value", interval.id)));
            };
            let number = value
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| EventError::Invalid(format!("interval {}: value {value} is not a number", interval.id)))?;
            let value = if this == Signal::Price {
                scaled(number, 1e6, interval.id)?
            } else {
                if number < 0.0 {
                    return Err(EventError::NegativeTarget(interval.id, value.to_string()));
                }
                scaled(number, 1e3, interval.id)?
            };
            let end = start.checked_add(duration).ok_or_else(|| EventError::Invalid(format!("interval {} ends too late", interval.id)))?;
            intervals.push(EventInterval { id: interval.id, start, end, value });
            next_start = Some((end, next_start.map_or(duration, |(_, d)| d)));
        }
        let signal = signal.expect("at least one interval");
        for descriptor in &self.payload_descriptors {
            let expected = if signal == Signal::Price { "KWH" } else { "KW" };
            if descriptor.payload_type == signal.name() && descriptor.units.as_deref().is_some_and(|u| !u.eq_ignore_ascii_case(expected)) {
                return Err(EventError::Invalid(format!("{} values must be in {expected}", signal.name())));
            }
        }
        let event = GridEvent {
            id: id.to_string(),
            program_id: self.program_id.clone(),
            event_name: self.event_name.clone(),
            region,
            signal,
            intervals,
            created: ctx.now,
            modified: ctx.now,
            cancelled: false,
            priority: self.priority,
            report_descriptors: self.report_descriptors.clone(),
            source: None,
        };
        if event.end() - event.start() > MAX_EVENT_SECS {
            return Err(EventError::Invalid(format!("longer than {} days", MAX_EVENT_SECS / 86_400)));
        }
        if event.end() <= ctx.now {
            return Err(EventError::InThePast);
        }
        let conflicting = ctx.others.iter().find(|o| {
            o.id != id
                && !o.cancelled
                && o.end() > ctx.now
                && o.region == event.region
                && o.signal.is_power() == signal.is_power()
                && o.overlaps(&event)
        });
        if let Some(other) = conflicting {
            return Err(EventError::Conflict(other.id.clone()));
        }
        Ok(event)
    }
}

fn scaled(number: f64, scale: f64, id: i64) -> Result<i64, EventError> {
    let v = (number * scale).round();
    if v.abs() > 1e15 {
        return Err(EventError::Invalid(format!("interval {id}: value out of range")));
    }
    Ok(v as i64)
}

fn parse_period(p: &IntervalPeriod, id: i64, now: i64) -> Result<(i64, i64), EventError> {
    let where_ = if id < 0 { "event".to_string() } else { format!("interval {id}") };
    let start = chrono::DateTime::parse_from_rfc3339(&p.start)
        .map_err(|e| EventError::Invalid(format!("{where_}: start {:?} is not RFC 3339: {e}", p.start)))?
        .timestamp();
    let duration = parse_iso_duration(&p.duration)
        .ok_or_else(|| EventError::Invalid(format!("{where_}: duration {:?} is not ISO 8601 (e.g. PT15M)", p.duration)))?;
    // Bounded here, so every later time sum stays far from overflow.
    if duration > MAX_EVENT_SECS {
        return Err(EventError::Invalid(format!("{where_}: duration {:?} is longer than {} days", p.duration, MAX_EVENT_SECS / 86_400)));
    }
    if !(0..=now.saturating_add(MAX_EVENT_HORIZON_SECS)).contains(&start) {
        return Err(EventError::Invalid(format!("{where_}: start {:?} is more than a year from now", p.start)));
    }
    Ok((start, duration))
}

/// ISO 8601 duration in seconds: `[-]P[nW][nD][T[nH][nM][nS]]` (years and months have no
/// fixed length and are refused, except as zero: VTNs such as OpenLEADR write `P0Y0M0DT1H0M0S`).
/// A leading `-` gives a negative duration.
pub fn parse_iso_duration(text: &str) -> Option<i64> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let rest = rest.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let position = units[next_unit..].iter().position(|(u, _)| *u == c)? + next_unit;
            let n: i64 = number.parse().ok()?;
            total = total.checked_add(n.checked_mul(units[position].1)?)?;
            number.clear();
            next_unit = position + 1;
            any = true;
        }
        number.is_empty().then_some(())
    };
    let date = zero_unit(zero_unit(date, 'Y')?, 'M')?;
    add(date, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(time) = time {
        add(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    any.then_some(sign * total)
}

/// `part` without a leading `<n><unit>` whose number is zero; `None` when it is not zero.
fn zero_unit(part: &str, unit: char) -> Option<&str> {
    let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match part[digits..].strip_prefix(unit) {
        Some(rest) if digits > 0 => part[..digits].bytes().all(|b| b == b'0').then_some(rest),
        _ => Some(part),
    }
}

pub fn iso_duration(secs: i64) -> String {
    let (sign, secs) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = format!("{sign}PT");
    if h > 0 {
        out += &format!("{h}H");
    }
    if m > 0 {
        out += &format!("{m}M");
    }
    if s > 0 || (h == 0 && m == 0) {
        out += &format!("{s}S");
    }
    out
}

pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_event_is_measured_up_to_its_cancellation() {
        let interval = |id, start| EventInterval { id, start, end: start + 900, value: 1000 };
        let event = GridEvent {
            id: "e".into(),
            program_id: "p".into(),
            event_name: None,
            region: "DE-BY".into(),
            signal: Signal::DispatchSetpoint,
            intervals: vec![interval(0, 0), interval(1, 900), interval(2, 1800)],
            created: -100,
            modified: 1200,
            cancelled: true,
            priority: None,
            report_descriptors: None,
            source: None,
        };
        let active = event.active_part();
        assert_eq!(active.intervals.iter().map(|i| (i.id, i.start, i.end)).collect::<Vec<_>>(), [(0, 0, 900), (1, 900, 1200)]);
        let whole = GridEvent { cancelled: false, ..event.clone() };
        assert_eq!(whole.active_part(), whole);
        // Cancelled before it began: nothing ran.
        assert!(GridEvent { modified: -1, ..event }.active_part().intervals.is_empty());
    }

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_duration("PT15M"), Some(900));
        assert_eq!(parse_iso_duration("PT1H30M"), Some(5400));
        assert_eq!(parse_iso_duration("P1DT1S"), Some(86_401));
        assert_eq!(parse_iso_duration("-PT1H"), Some(-3600));
        assert_eq!(parse_iso_duration("PT0S"), Some(0));
        // Zero years and months, as OpenLEADR writes them.
        assert_eq!(parse_iso_duration("P0Y0M0DT1H0M0S"), Some(3600));
        assert_eq!(parse_iso_duration("P0Y0M1D"), Some(86_400));
        for bad in ["", "P", "PT", "15M", "PT15", "PT1M1H", "P1M", "P1Y", "PTxM", "P0Y1M", "P0M0Y", "P0Y"] {
            assert_eq!(parse_iso_duration(bad), None, "{bad}");
        }
        for secs in [0, 1, 59, 60, 900, 3600, 5400, 86_399] {
            assert_eq!(parse_iso_duration(&iso_duration(secs)), Some(secs));
        }
    }
}
