//! Measurement and verification: what each dispatched device delivered in each event
//! interval, against its baseline ([`super::baseline`]), and the event's performance report.
//!
//! Delivery is measured at the device's connection point as net import
//! (`imported - exported`, Wh): for a deliver event it is `baseline - metered`, for an absorb
//! event `metered - baseline`. A slot without a reading delivered nothing. What a device is
//! paid for (scoring's demand-response input) is its delivery, per interval, clamped to
//! between zero and what it was commanded: over-delivery against a baseline earns nothing
//! extra, so a device gains nothing by inflating its baseline days.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ovpp::state::DeviceKind;

use super::baseline::{self, Baseline, DayMatching, LoadSeries};
use crate::readings::StoredReading;
use ovpp_wire::device::kind_name;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::dispatch::command::Command;
use ovpp_wire::dispatch::event::{GridEvent, Signal};
use ovpp_wire::dispatch::view::{DeviceDelivery, DeviceInterval, EventReport, IntervalDelivery};

/// Loads and meters are measured with day matching; storage, EVs and PV with meter before.
pub fn uses_day_matching(kind: DeviceKind) -> bool {
    matches!(kind, DeviceKind::SmartMeter | DeviceKind::EvCharger)
}

/// Most readings a day-matching baseline looks back over.
pub fn lookback_secs(method: &DayMatching) -> i64 {
    (method.lookback_days + 1) * 86_400
}

/// Measures `event` from the stored `readings` (covering the lookback before it) and the
/// commands it issued with when each was superseded; `event_days` are the days of the
/// region's other events, which day matching skips. Returns the report and, per device and
/// interval start, the Wh it is paid for.
pub fn measure(
    event: &GridEvent,
    commands: &[(Command, Option<i64>)],
    devices: &HashMap<DeviceKey, RegisteredDevice>,
    readings: &[StoredReading],
    method: &DayMatching,
    event_days: &BTreeSet<i64>,
) -> (EventReport, Vec<(DeviceKey, i64, u64)>) {
    let sign = if event.signal == Signal::AbsorbSetpoint { -1.0 } else { 1.0 };
    // Commanded Wh per device and interval: each command over the part of the interval it was in force.
    let mut commanded: BTreeMap<DeviceKey, Vec<f64>> = BTreeMap::new();
    for (command, superseded) in commands {
        let until = superseded.map_or(command.valid_until, |s| s.min(command.valid_until));
        let per_interval = commanded.entry(command.device_key).or_insert_with(|| vec![0.0; event.intervals.len()]);
        for (slot, interval) in per_interval.iter_mut().zip(&event.intervals) {
            let overlap = (until.min(interval.end) - command.valid_from.max(interval.start)).max(0);
            *slot += (command.setpoint_w as f64 * sign).max(0.0) * overlap as f64 / 3600.0;
        }
    }
    let mut by_device: HashMap<DeviceKey, Vec<&StoredReading>> = HashMap::new();
    for r in readings {
        if commanded.contains_key(&r.device_key) {
            by_device.entry(r.device_key).or_default().push(r);
        }
    }
    // Days with events (this one's included) are not typical days.
    let mut excluded = event_days.clone();
    excluded.insert(event.start().div_euclid(86_400));
    let mut report_devices = Vec::new();
    let mut paid = Vec::new();
    let mut delivered_per_interval = vec![0.0f64; event.intervals.len()];
    for (key, commanded_wh) in &commanded {
        let Some(device) = devices.get(key) else { continue };
        let rows = by_device.remove(key).unwrap_or_default();
        let slot_secs = rows.last().map_or(300, |r| i64::from(r.reading.interval_secs.max(1)));
        // Slots counted from the event's start: readings off that grid are left out.
        let mut loads = LoadSeries { slot_secs, origin: event.start(), slots: HashMap::new() };
        for r in rows.iter().filter(|r| i64::from(r.reading.interval_secs) == slot_secs) {
            if let Some(slot) = loads.slot_at(r.reading.interval_start) {
                loads.slots.insert(slot, f64::from(r.reading.energy_imported_wh) - f64::from(r.reading.energy_exported_wh));
            }
        }
        let (baseline, note) = device_baseline(device.kind(), &loads, event, method, &excluded);
        let mut delivered_wh = 0.0;
        let mut paid_total = 0u64;
        let mut device_intervals = Vec::new();
        if let Some(baseline) = &baseline {
            for (i, interval) in event.intervals.iter().enumerate() {
                let (mut delivered, mut based, mut metered_sum) = (0.0, 0.0, 0.0);
                let (first, last) = ((interval.start - event.start()) / slot_secs, (interval.end - event.start()) / slot_secs);
                for s in first..last {
                    if let (Some(metered), Some(base)) = (loads.slots.get(&s), baseline.slots_wh.get(s as usize)) {
                        delivered += sign * (base - metered);
                        based += base;
                        metered_sum += metered;
                    }
                }
                device_intervals.push(DeviceInterval {
                    id: interval.id,
                    baseline_wh: based.round() as i64,
                    metered_wh: metered_sum.round() as i64,
                    delivered_wh: delivered.round() as i64,
                });
                delivered_wh += delivered;
                delivered_per_interval[i] += delivered;
                let pay = delivered.clamp(0.0, commanded_wh[i]).floor() as u64;
                if pay > 0 {
                    paid.push((*key, interval.start, pay));
                    paid_total += pay;
                }
            }
        }
        let commanded_total: f64 = commanded_wh.iter().sum();
        report_devices.push(DeviceDelivery {
            device: bs58::encode(key).into_string(),
            kind: kind_name(device.kind()).into(),
            baseline: baseline.as_ref().map_or("NONE", |b| b.method).into(),
            note,
            baseline_days: baseline.as_ref().map(|b| b.days.clone()).unwrap_or_default(),
            adjustment: baseline.as_ref().and_then(|b| b.adjustment),
            commanded_wh: commanded_total.round() as u64,
            delivered_wh: delivered_wh.round() as i64,
            paid_wh: paid_total,
            delivery_ratio: if commanded_total > 0.0 { delivered_wh / commanded_total } else { 0.0 },
            intervals: device_intervals,
        });
    }
    let commanded_per_interval: Vec<f64> = (0..event.intervals.len()).map(|i| commanded.values().map(|c| c[i]).sum()).collect();
    let intervals: Vec<IntervalDelivery> = event
        .intervals
        .iter()
        .enumerate()
        .map(|(i, interval)| {
            let hours = (interval.end - interval.start) as f64 / 3600.0;
            IntervalDelivery {
                id: interval.id,
                start: interval.start,
                end: interval.end,
                target_w: interval.value,
                commanded_w: (commanded_per_interval[i] / hours).round() as i64,
                delivered_w: (delivered_per_interval[i] / hours).round() as i64,
            }
        })
        .collect();
    let target_wh: f64 = match event.signal {
        // A cap's target is what the fleet was asked for, interval by interval.
        Signal::ImportCapacityLimit => commanded_per_interval.iter().sum(),
        _ => event.intervals.iter().map(|i| i.value as f64 * (i.end - i.start) as f64 / 3600.0).sum(),
    };
    let delivered_wh: f64 = delivered_per_interval.iter().sum();
    let report = EventReport {
        event_id: event.id.clone(),
        program_id: event.program_id.clone(),
        region: event.region.clone(),
        signal: event.signal.name().into(),
        start: event.start(),
        end: event.end(),
        load_baseline: method.name.into(),
        target_wh: target_wh.round() as u64,
        commanded_wh: commanded_per_interval.iter().sum::<f64>().round() as u64,
        delivered_wh: delivered_wh.round() as i64,
        delivery_ratio: if target_wh > 0.0 { delivered_wh / target_wh } else { 0.0 },
        intervals,
        devices: report_devices,
        // Set by the dispatcher, which knows when it credits.
        credited_at: 0,
    };
    (report, paid)
}

/// The program's day-matching baseline for loads and meters (falling back to meter-before
/// when there is not enough history, and saying so), meter-before for everything else.
fn device_baseline(
    kind: DeviceKind,
    loads: &LoadSeries,
    event: &GridEvent,
    method: &DayMatching,
    excluded: &BTreeSet<i64>,
) -> (Option<Baseline>, Option<String>) {
    let mut note = None;
    if uses_day_matching(kind) {
        match method.baseline(loads, event.start(), event.end(), excluded) {
            Ok(b) => return (Some(b), None),
            Err(e) => note = Some(format!("{e}; measured meter-before instead")),
        }
    }
    match baseline::meter_before(loads, event.start(), event.end()) {
        Ok(b) => (Some(b), note),
        Err(e) => (None, Some(note.map_or(e.to_string(), |n| format!("{n}, which failed too: {e}")))),
    }
}
