//! Measurement and verification: what each dispatched device delivered in each event
//! interval, against its baseline ([`super::baseline`]), and the event's performance report.
//!
//! Delivery is measured at the device's connection point as net import
//! (`imported - exported`, Wh): for a deliver event it is `baseline - metered`, for an absorb
//! event `metered - baseline`; in a price schedule each interval in the direction the
//! device's command asked (discharge: `baseline - metered`, charge: `metered - baseline`;
//! none where it was not commanded). A slot without a reading delivered nothing. What a
//! device is paid for (scoring's demand-response input, or price-response for a price
//! schedule) is its delivery, per interval, clamped to between zero and what it was
//! commanded: over-delivery against a baseline earns nothing extra, so a device gains nothing
//! by inflating its baseline days.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ovpp::state::DeviceKind;

use super::baseline::{self, Baseline, LoadMethod, LoadSeries};
use super::regression::Temperatures;
use crate::readings::StoredReading;
use ovpp_wire::device::kind_name;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::dispatch::command::Command;
use ovpp_wire::dispatch::event::{GridEvent, Signal};
use ovpp_wire::dispatch::view::{BaselineAccuracy, DeviceDelivery, DeviceInterval, EventReport, IntervalDelivery};

/// Loads and meters are measured with day matching or regression; storage, EVs and PV with
/// meter before.
pub fn uses_day_matching(kind: DeviceKind) -> bool {
    matches!(kind, DeviceKind::SmartMeter | DeviceKind::EvCharger)
}

/// Most readings a day-matching baseline looks back over.
pub fn lookback_secs(method: &LoadMethod) -> i64 {
    (method.lookback_days() + 1) * 86_400
}

/// What measuring an event reads.
pub struct Inputs {
    /// The commands the event issued, with when each was superseded.
    pub commands: Vec<(Command, Option<i64>)>,
    /// For a price schedule: other events' commands to its devices over its span. An
    /// interval in which a device was under one followed that event, not the prices, and
    /// counts nothing here (else the same energy would be paid twice).
    pub overriding: Vec<(Command, Option<i64>)>,
    pub devices: HashMap<DeviceKey, RegisteredDevice>,
    /// The commanded devices' readings, covering the lookback before the event.
    pub readings: Vec<StoredReading>,
    /// The program's baseline for loads.
    pub method: LoadMethod,
    /// The days of the region's other events, which baselines skip.
    pub event_days: BTreeSet<i64>,
    /// The region's hourly temperatures over the lookback and the event (regression).
    pub temperatures: Temperatures,
}

/// Measures `event`. Returns the report and, per device and interval start, the Wh it is
/// paid for.
pub fn measure(event: &GridEvent, inputs: &Inputs) -> (EventReport, Vec<(DeviceKey, i64, u64)>) {
    let Inputs { commands, overriding, devices, readings, method, event_days, temperatures } = inputs;
    // A cancelled event is measured over the time it ran, not its planned span.
    let active = event.active_part();
    let event = &active;
    let sign = if event.signal == Signal::AbsorbSetpoint { -1.0 } else { 1.0 };
    // An interval's direction from what was commanded in it (signed, + less import): a power
    // event's is the event's; a price schedule's is the device's command's.
    let direction = |commanded_wh: f64| match event.signal {
        Signal::Price if commanded_wh > 0.0 => 1.0,
        Signal::Price if commanded_wh < 0.0 => -1.0,
        Signal::Price => 0.0,
        _ => sign,
    };
    let keys: BTreeSet<DeviceKey> = commands.iter().map(|(c, _)| c.device_key).collect();
    let mut by_device: HashMap<DeviceKey, Vec<&StoredReading>> = HashMap::new();
    for r in readings {
        if keys.contains(&r.device_key) {
            by_device.entry(r.device_key).or_default().push(r);
        }
    }
    // Per device: its metering slot, the end of what is measured, and the Wh commanded per
    // interval, signed (+ less import; each command over the part of the interval it was in
    // force, up to that end; a power event counts only commands in its own direction).
    let mut commanded: BTreeMap<DeviceKey, (i64, i64, Vec<f64>)> = BTreeMap::new();
    for key in &keys {
        let slot_secs = by_device.get(key).and_then(|rows| rows.last()).map_or(300, |r| i64::from(r.reading.interval_secs.max(1)));
        // A cancellation may cut a metering slot: that part is neither measured nor counted as
        // commanded. (An event that ran whole is measured to its end, as it always was.)
        let end = match event.cancelled {
            true => event.start() + (event.end() - event.start()).div_euclid(slot_secs) * slot_secs,
            false => event.end(),
        };
        let mut per_interval = vec![0.0; event.intervals.len()];
        for (command, superseded) in commands.iter().filter(|(c, _)| c.device_key == *key) {
            let until = superseded.map_or(command.valid_until, |s| s.min(command.valid_until)).min(end);
            for (slot, interval) in per_interval.iter_mut().zip(&event.intervals) {
                let overlap = (until.min(interval.end) - command.valid_from.max(interval.start)).max(0);
                let wh = command.setpoint_w as f64 * overlap as f64 / 3600.0;
                *slot += if event.signal == Signal::Price { wh } else { (wh * sign).max(0.0) * sign };
            }
        }
        if event.signal == Signal::Price {
            for (command, superseded) in overriding.iter().filter(|(c, _)| c.device_key == *key) {
                let until = superseded.map_or(command.valid_until, |s| s.min(command.valid_until));
                for (slot, interval) in per_interval.iter_mut().zip(&event.intervals) {
                    if command.valid_from.max(interval.start) < until.min(interval.end) {
                        *slot = 0.0;
                    }
                }
            }
        }
        commanded.insert(*key, (slot_secs, end, per_interval));
    }
    // Days with events (this one's included) are not typical days.
    let mut excluded = event_days.clone();
    excluded.insert(event.start().div_euclid(86_400));
    let mut report_devices = Vec::new();
    let mut paid = Vec::new();
    let mut delivered_per_interval = vec![0.0f64; event.intervals.len()];
    for (key, (slot_secs, end, commanded_wh)) in &commanded {
        let (slot_secs, end) = (*slot_secs, *end);
        let Some(device) = devices.get(key) else { continue };
        let rows = by_device.remove(key).unwrap_or_default();
        // Slots counted from the event's start: readings off that grid are left out.
        let mut loads = LoadSeries { slot_secs, origin: event.start(), slots: HashMap::new() };
        for r in rows.iter().filter(|r| i64::from(r.reading.interval_secs) == slot_secs) {
            if let Some(slot) = loads.slot_at(r.reading.interval_start) {
                loads.slots.insert(slot, f64::from(r.reading.energy_imported_wh) - f64::from(r.reading.energy_exported_wh));
            }
        }
        let (baseline, accuracy, note) = device_baseline(device.kind(), &loads, temperatures, event.start(), end, method, &excluded);
        let mut delivered_wh = 0.0;
        let mut paid_total = 0u64;
        let mut device_intervals = Vec::new();
        if let Some(baseline) = &baseline {
            for (i, interval) in event.intervals.iter().enumerate() {
                let (mut delivered, mut based, mut metered_sum) = (0.0, 0.0, 0.0);
                let direction = direction(commanded_wh[i]);
                let (first, last) = ((interval.start - event.start()) / slot_secs, (interval.end - event.start()) / slot_secs);
                // A price schedule is known a day ahead: a meter-before rate could be inflated by
                // charging (or discharging) just before it starts. It is taken toward zero only,
                // so stopping what the device did before is never paid as a response.
                let toward_zero = event.signal == Signal::Price && baseline.method == baseline::METER_BEFORE_AFTER;
                for s in first..last {
                    if let (Some(metered), Some(&base)) = (loads.slots.get(&s), baseline.slots_wh.get(s as usize)) {
                        let base = match toward_zero {
                            true if direction > 0.0 => base.min(0.0),
                            true => base.max(0.0),
                            false => base,
                        };
                        delivered += direction * (base - metered);
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
                let pay = delivered.clamp(0.0, commanded_wh[i].abs()).floor() as u64;
                if pay > 0 {
                    paid.push((*key, interval.start, pay));
                    paid_total += pay;
                }
            }
        }
        let commanded_total: f64 = commanded_wh.iter().map(|wh| wh.abs()).sum();
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
            accuracy: accuracy.map(|a| BaselineAccuracy { days: a.days as u32, rrmse: a.rrmse, bias: a.bias }),
        });
    }
    let commanded_per_interval: Vec<f64> =
        (0..event.intervals.len()).map(|i| commanded.values().map(|(_, _, c)| c[i].abs()).sum()).collect();
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
                // A price interval's value is a price, not a target: the schedule is the target.
                target_w: if event.signal == Signal::Price { (commanded_per_interval[i] / hours).round() as i64 } else { interval.value },
                commanded_w: (commanded_per_interval[i] / hours).round() as i64,
                delivered_w: (delivered_per_interval[i] / hours).round() as i64,
            }
        })
        .collect();
    let target_wh: f64 = match event.signal {
        // A cap's or a price schedule's target is what the fleet was asked for, interval by interval.
        Signal::ImportCapacityLimit | Signal::Price => commanded_per_interval.iter().sum(),
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
        load_baseline: method.name().into(),
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

/// The program's baseline for loads and meters (falling back to meter-before when there is
/// not enough history, or none accurate enough, and saying so), with its accuracy on the
/// device's recent days; meter-before for everything else.
fn device_baseline(
    kind: DeviceKind,
    loads: &LoadSeries,
    temperatures: &Temperatures,
    start: i64,
    end: i64,
    method: &LoadMethod,
    excluded: &BTreeSet<i64>,
) -> (Option<Baseline>, Option<baseline::Accuracy>, Option<String>) {
    let mut note = None;
    if uses_day_matching(kind) {
        match method.baseline(loads, temperatures, start, end, excluded) {
            Ok((b, accuracy)) => return (Some(b), accuracy, None),
            Err(e) => {
                // A fixed method's errors name it already.
                let prefix = if matches!(method, LoadMethod::MostAccurate) { format!("{}: ", method.name()) } else { String::new() };
                note = Some(format!("{prefix}{e}; measured meter-before instead"))
            }
        }
    }
    match baseline::meter_before(loads, start, end) {
        Ok(b) => (Some(b), None, note),
        Err(e) => (None, None, Some(note.map_or(e.to_string(), |n| format!("{n}, which failed too: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovpp::state::DeviceStatus;
    use ovpp_wire::dispatch::event::EventInterval;
    use ovpp_wire::telemetry::validate::DeviceProfile;
    use ovpp_wire::telemetry::{GridResponse, Reading};
    use solana_sdk::pubkey::Pubkey;

    const KEY: DeviceKey = [7; 32];
    const START: i64 = 1_795_600_800; // on the 5-minute grid

    fn reading(start: i64, net_import_wh: i64) -> StoredReading {
        let reading = Reading {
            interval_start: start,
            interval_secs: 300,
            energy_generated_wh: 0,
            energy_consumed_wh: 0,
            energy_imported_wh: net_import_wh.max(0) as u32,
            energy_exported_wh: (-net_import_wh).max(0) as u32,
            average_power_w: 0,
            state_of_charge_permille: Some(500),
            storage_available_wh: Some(10_000),
            flex_up_w: 0,
            flex_down_w: 0,
            grid_response: GridResponse::FollowingDispatch,
            online: true,
        };
        StoredReading { device_key: KEY, reading, batch_sequence: 0, received_at: start + 300 }
    }

    /// One device's measurement inputs, CAISO 10-of-10 for loads.
    fn inputs(
        commands: Vec<(Command, Option<i64>)>,
        overriding: Vec<(Command, Option<i64>)>,
        device: RegisteredDevice,
        readings: Vec<StoredReading>,
    ) -> Inputs {
        Inputs {
            commands,
            overriding,
            devices: HashMap::from([(KEY, device)]),
            readings,
            method: LoadMethod::Fixed(super::super::baseline::CAISO_10_IN_10),
            event_days: BTreeSet::new(),
            temperatures: Temperatures::new(),
        }
    }

    /// With 15-minute meters a cancellation 20 minutes in cuts a metering slot: neither
    /// that part's delivery nor its commanded energy counts, so a device that followed
    /// is not marked down for it.
    #[test]
    fn a_cancellation_inside_a_metering_slot_counts_neither_side_of_it() {
        let (event, command, device) = cancelled_battery_event();
        let quarter = |slot: i64, net: i64| {
            let mut r = reading(START + slot * 900, net);
            r.reading.interval_secs = 900;
            r
        };
        // 300 Wh imported a quarter hour before; 300 exported in the first (600 delivered).
        let readings = vec![quarter(-2, 300), quarter(-1, 300), quarter(0, -300), quarter(1, 300)];
        let (report, _) = measure(&event, &inputs(vec![(command, Some(START + 1200))], vec![], device, readings));
        let d = &report.devices[0];
        assert_eq!((d.commanded_wh, d.delivered_wh, d.delivery_ratio), (600, 600, 1.0), "{d:?}");
    }

    /// The positive-only adjustment's worked example ends "no baseline adjustment for
    /// batteries": whatever the program's method, storage is metered before/after, unadjusted.
    #[test]
    fn batteries_get_no_baseline_adjustment() {
        let loads = LoadSeries { slot_secs: 300, origin: 0, slots: (-6..0).map(|s| (START / 300 + s, 100.0)).collect() };
        let method = LoadMethod::Fixed(super::super::baseline::FLEX_10_OF_10_UP);
        let (baseline, accuracy, note) =
            device_baseline(DeviceKind::HomeBattery, &loads, &Temperatures::new(), START, START + 900, &method, &BTreeSet::new());
        let baseline = baseline.unwrap();
        assert_eq!((baseline.method, baseline.adjustment, accuracy, note), ("METER_BEFORE_AFTER", None, None, None));
        assert_eq!(baseline.slots_wh, vec![100.0; 3]);
    }

    /// A battery asked for 2.4 kW (target 2 kW) over three quarter hours, the event cancelled
    /// 20 minutes in (the command superseded then).
    fn cancelled_battery_event() -> (GridEvent, Command, RegisteredDevice) {
        let interval = |id: i64| EventInterval { id, start: START + id * 900, end: START + (id + 1) * 900, value: 2_000 };
        let event = GridEvent {
            id: "e".into(),
            program_id: "p".into(),
            event_name: None,
            region: "DE-BY".into(),
            signal: Signal::DispatchSetpoint,
            intervals: (0..3).map(interval).collect(),
            created: START - 3600,
            modified: START + 1200,
            cancelled: true,
            priority: None,
            report_descriptors: None,
            source: None,
        };
        let command = Command {
            id: "c".into(),
            event_id: "e".into(),
            device_key: KEY,
            valid_from: START,
            valid_until: START + 2700,
            setpoint_w: 2_400,
            issued_at: START - 60,
        };
        let profile =
            DeviceProfile { kind: DeviceKind::HomeBattery, status: DeviceStatus::Active, rated_power_w: 5_000, energy_capacity_wh: 13_500 };
        let device = RegisteredDevice { key: KEY, owner: Pubkey::new_from_array(KEY), profile, region: "DE-BY".into(), location_cell: 0 };
        (event, command, device)
    }

    /// A price schedule: a battery told to charge at 2 kW in the cheap quarter hour and to
    /// discharge at 2 kW in the dear one (nothing in between), its meter-before rate 100 Wh
    /// imported per 5 minutes. It charges 150 Wh a slot more than that (450 of 500 Wh
    /// commanded), idles, then exports 100 Wh a slot: against the rate taken toward zero (0
    /// for a discharge, else stopping the pre-schedule import would count), 300 Wh. A power
    /// event's command in the dear quarter hour overrides the schedule there: that energy is
    /// the power event's, not paid twice.
    #[test]
    fn a_price_schedule_pays_energy_moved_as_commanded_against_baseline() {
        let (mut event, _, device) = cancelled_battery_event();
        event.signal = Signal::Price;
        event.cancelled = false;
        for (interval, price) in event.intervals.iter_mut().zip([50_000, 200_000, 400_000]) {
            interval.value = price;
        }
        let command = |id: &str, event_id: &str, quarter: i64, setpoint_w: i64| Command {
            id: id.into(),
            event_id: event_id.into(),
            device_key: KEY,
            valid_from: START + quarter * 900,
            valid_until: START + (quarter + 1) * 900,
            setpoint_w,
            issued_at: START - 60,
        };
        let schedule = [(command("charge", "e", 0, -2_000), None), (command("discharge", "e", 2, 2_000), None)];
        let net = |slot: i64| match slot {
            0..3 => 250,
            6..9 => -100,
            _ => 100,
        };
        let readings: Vec<StoredReading> = (-6..9).map(|slot| reading(START + slot * 300, net(slot))).collect();
        let (report, paid) = measure(&event, &inputs(schedule.to_vec(), vec![], device.clone(), readings.clone()));
        let d = &report.devices[0];
        assert_eq!(d.baseline, "METER_BEFORE_AFTER");
        let delivered: Vec<i64> = d.intervals.iter().map(|i| i.delivered_wh).collect();
        assert_eq!(delivered, [450, 0, 300], "charging counts up, idle not at all, discharging down");
        assert_eq!((d.commanded_wh, d.paid_wh), (1_000, 750));
        assert_eq!(paid, vec![(KEY, START, 450), (KEY, START + 1800, 300)]);
        // Charging hard just before the schedule does not make idling in the dear hour pay.
        let mut gamed = readings.clone();
        gamed.iter_mut().filter(|r| r.reading.interval_start < START).for_each(|r| r.reading.energy_imported_wh = 400);
        gamed.iter_mut().filter(|r| r.reading.interval_start >= START + 1800).for_each(|r| {
            r.reading.energy_imported_wh = 0;
            r.reading.energy_exported_wh = 0;
        });
        let (_, paid) = measure(&event, &inputs(schedule.to_vec(), vec![], device.clone(), gamed));
        assert_eq!(paid.iter().filter(|(_, start, _)| *start == START + 1800).count(), 0, "{paid:?}");
        assert_eq!(report.target_wh, 1_000, "a schedule's target is what it commanded");
        assert_eq!(report.intervals[0].target_w, 2_000);

        let peak = [(command("shed", "peak", 2, 3_000), None)];
        let (_, paid) = measure(&event, &inputs(schedule.to_vec(), peak.to_vec(), device, readings));
        assert_eq!(paid, vec![(KEY, START, 450)], "the dear quarter hour followed the power event");
    }

    /// A battery asked for 2 kW over three quarter hours, the event cancelled 20 minutes in:
    /// measured over those 20 minutes (its target and delivery), not the planned 45.
    #[test]
    fn a_cancelled_event_is_measured_over_the_time_it_ran() {
        let (event, command, device) = cancelled_battery_event();
        // 100 Wh imported per slot before; 100 Wh exported while it ran (200 Wh delivered a
        // slot); importing again after the cancellation.
        let readings: Vec<StoredReading> =
            (-6..9).map(|slot| reading(START + slot * 300, if (0..4).contains(&slot) { -100 } else { 100 })).collect();
        let (report, paid) = measure(&event, &inputs(vec![(command, Some(START + 1200))], vec![], device, readings));
        assert_eq!(report.intervals.len(), 2, "the third quarter hour never ran");
        assert_eq!((report.intervals[1].start, report.intervals[1].end), (START + 900, START + 1200));
        // 2 kW for 15 minutes and for 5 minutes.
        assert_eq!(report.target_wh, 667);
        assert_eq!(report.delivered_wh, 800);
        assert_eq!(report.end, START + 1200);
        assert_eq!(paid.iter().map(|(_, _, wh)| wh).sum::<u64>(), 800);
    }
}
