//! Measurement and verification against an implementation no one here wrote: the oracle's
//! CalTRACK regression baseline (`ovpp_oracle::dispatch::regression`) and LF Energy's
//! OpenDSM (`opendsm.drmeter.CaltrackDRModel`, in a venv this test makes once per machine
//! from `tests/mv/requirements.txt`) fitted on the same simulated series.

use std::collections::{BTreeSet, HashMap};

use ovpp::state::DeviceKind;
use ovpp_oracle::dispatch::baseline::LoadSeries;
use ovpp_oracle::dispatch::regression::{self, fahrenheit, Temperatures};
use ovpp_simulator::{temperature_c, Fleet};
use serde_json::{json, Value};

/// 2026-11-23, a Monday, 00:00 UTC: the day predicted.
const DAY: i64 = 1_795_392_000;
const LONGITUDE: f64 = 11.6;

/// The oracle's and OpenDSM's predictions agree to 1e-9 of the load (measured: 1.1e-12; both solve the same
/// least-squares problem exactly; the difference is floating-point rounding: the oracle
/// removes each hour of the week's mean and solves a 14-unknown system, OpenDSM
/// pseudo-inverts the 180-column design matrix).
const TOLERANCE: f64 = 1e-9;

/// 45 days of two simulated smart meters (15-minute readings, their heat pumps following
/// the simulated region's temperature), the second with whole hours and a whole day
/// missing: both models predict the next day's 24 hours, and they agree within [`TOLERANCE`].
#[test]
fn the_regression_baseline_matches_opendsm() {
    let python = crate::python_venv("ovpp-python-opendsm", "tests/mv/requirements.txt", std::path::Path::new("python3"));
    let mut fleet = Fleet::new(8, 5, 48.1, LONGITUDE);
    fleet.devices.retain(|d| d.profile.kind == DeviceKind::SmartMeter);
    assert_eq!(fleet.devices.len(), 2);
    let history = DAY - regression::LOOKBACK_DAYS * 86_400;
    // Each meter's region's temperatures, to the thousandth of a degree as the oracle stores them.
    let weather: Vec<Temperatures> = fleet
        .devices
        .iter()
        .map(|d| {
            (history..DAY + 86_400)
                .step_by(3600)
                .map(|h| (h, (temperature_c(d.region, h + 1800, LONGITUDE) * 1000.0).round() / 1000.0))
                .collect()
        })
        .collect();
    let mut loads: Vec<LoadSeries> = (0..2).map(|_| LoadSeries { slot_secs: 900, origin: 0, slots: HashMap::new() }).collect();
    // The second meter missed every 29th hour and one whole day.
    let missed = |t: i64| (t / 3600) % 29 == 0 || t.div_euclid(86_400) == DAY.div_euclid(86_400) - 12;
    for t in (history..DAY).step_by(900) {
        for (i, reading) in fleet.readings(t, 900).into_iter().enumerate() {
            if i == 1 && missed(t) {
                continue;
            }
            loads[i].slots.insert(t / 900, f64::from(reading.energy_imported_wh) - f64::from(reading.energy_exported_wh));
        }
    }
    // OpenDSM reads an hour that nets to exactly zero (a home's PV matching its load) as
    // missing; the oracle takes it as data. Such hours are left out of both here.
    for series in &mut loads {
        let mut sums: HashMap<i64, f64> = HashMap::new();
        for (slot, wh) in &series.slots {
            *sums.entry(slot.div_euclid(4)).or_default() += wh;
        }
        series.slots.retain(|slot, _| sums[&slot.div_euclid(4)] != 0.0);
    }
    let hours: Vec<i64> = (DAY..DAY + 86_400).step_by(3600).collect();
    let mut ours = Vec::new();
    let mut cases = Vec::new();
    for (series, temperatures) in loads.iter().zip(&weather) {
        let (model, days) = regression::fit(series, temperatures, DAY, &BTreeSet::new(), i64::MIN).unwrap();
        assert!(days.len() >= 44, "{} days fitted", days.len());
        ours.push(hours.iter().map(|h| model.predict(*h, fahrenheit(temperatures[h])).unwrap()).collect::<Vec<f64>>());
        let mut meter: Vec<(i64, f64)> = series.slots.iter().map(|(s, wh)| (s * 900, *wh)).collect();
        meter.sort_by_key(|(t, _)| *t);
        let hourly =
            |range: std::ops::Range<i64>| -> Vec<(i64, f64)> { range.step_by(3600).map(|h| (h, fahrenheit(temperatures[&h]))).collect() };
        cases.push(json!({"meter": meter, "temperature": hourly(history..DAY), "reporting": hourly(DAY..DAY + 86_400)}));
    }
    let script = crate::repo().join("tests/mv/opendsm_crosscheck.py");
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &json!({"cases": cases})).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut worst: f64 = 0.0;
    for (case, ours) in ours.iter().enumerate() {
        let predicted = theirs["predicted"][case].as_array().unwrap();
        assert_eq!(predicted.len(), 24);
        for (hour, (o, t)) in ours.iter().zip(predicted).enumerate() {
            let t = t.as_f64().unwrap_or_else(|| panic!("OpenDSM has no prediction for hour {hour} of case {case}"));
            let gap = (o - t).abs() / t.abs().max(1.0);
            worst = worst.max(gap);
            assert!(gap <= TOLERANCE, "case {case}, hour {hour}: oracle {o} Wh, OpenDSM {t} Wh");
        }
    }
    // The temperature term is not idle: the coldest and mildest hours of the day differ.
    let spread = ours[0].iter().cloned().fold(f64::MIN, f64::max) - ours[0].iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 100.0, "{:?}", ours[0]);
    eprintln!("largest relative difference from OpenDSM: {worst:e}");
}

/// The regression baseline in the running oracle: 46 days of a region's telemetry (15-minute
/// readings, to two oracles), the region's temperatures put by the grid operator over HTTP,
/// a program measured with `CALTRACK_HOURLY`, an evening shed event followed by the EV
/// chargers. The chargers are measured against the regression, with its accuracy on their
/// held-out recent days; a co-signer with no weather of its own re-measures the event from
/// the record (which carries the temperatures) and its own readings, to the same report.
#[tokio::test]
async fn an_event_is_measured_with_the_regression_from_the_operators_temperatures() {
    use crate::dispatch::{event_json, registered_fleet, TOKEN};
    use ovpp_oracle::dispatch::plan::{capability, Direction};
    use ovpp_oracle::dispatch::DispatchSettings;
    use ovpp_simulator::Sender;
    use ovpp_wire::clock::unix_now;
    use ovpp_wire::dispatch::command::Preferences;
    use ovpp_wire::dispatch::event::WireEvent;
    use ovpp_wire::dispatch::weather::{HourlyTemperature, TemperatureSeries};

    let (chain, mut fleet) = registered_fleet(20, 17).await;
    let options = || ovpp_oracle::service::Options {
        policy: ovpp_wire::telemetry::validate::Policy { retention_secs: 60 * 86_400, ..Default::default() },
        registry_refresh: std::time::Duration::from_secs(3600),
        dispatch: DispatchSettings { grid_tokens: vec![TOKEN.into()], ..DispatchSettings::default() },
        ..Default::default()
    };
    let primary = crate::start_oracle_options(&chain, &crate::test_database("mv-primary").await, options()).await;
    let cosigner = crate::start_oracle_options(&chain, &crate::test_database("mv-cosigner").await, options()).await;
    for oracle in [&primary, &cosigner] {
        oracle.state.registry.refresh().await.unwrap();
    }
    let sender = Sender::to_all(&[primary.base.clone(), cosigner.base.clone()]);
    // The event day: the last whole UTC day ending at least three hours ago. History up to
    // its 16:00; the event in the first evening hour in which the first EV charger charged
    // all through the day before (its car comes home at the same time each day).
    let day = (unix_now() - 3 * 3600 - 86_400).div_euclid(86_400) * 86_400;
    let history = day - 46 * 86_400;
    let sent = sender.send(&fleet.history(history, day + 16 * 3600, 900, 1440)).await.unwrap();
    assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);
    let charger = fleet.devices.iter().find(|d| d.profile.kind == DeviceKind::EvCharger).unwrap();
    let (region, charger_key) = (charger.region, charger.device_key());
    let before = primary.state.store.readings_between(day - 86_400 + 16 * 3600, day).await.unwrap();
    // Charging from a quarter hour before the hour (what the plan sees) to its end.
    let charged = |hour: i64| {
        let from = day - 86_400 + hour * 3600 - 900;
        let slots = before.iter().filter(|r| r.device_key == charger_key && (from..from + 4500).contains(&r.reading.interval_start));
        slots.filter(|r| r.reading.energy_imported_wh > 2_000).count() == 5
    };
    let hour = (17..23).find(|h| charged(*h)).expect("the charger charges some evening hour");
    let start = day + hour * 3600;
    let sent = sender.send(&fleet.history(day + 16 * 3600, start, 900, 1440)).await.unwrap();
    assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);

    // The grid operator's weather input for the charger's region.
    let hours: Vec<HourlyTemperature> = (history..start + 3 * 3600)
        .step_by(3600)
        .map(|h| HourlyTemperature { start: h, celsius: temperature_c(region, h + 1800, LONGITUDE) })
        .collect();
    let url = format!("{}/v1/regions/{region}/temperatures", primary.base);
    let body = TemperatureSeries { hours: hours.clone() };
    let refused = primary.http.put(&url).json(&body).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401, "weather is the grid operator's input");
    let put = primary.http.put(&url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 200, "{}", put.text().await.unwrap());
    let bad = TemperatureSeries { hours: vec![HourlyTemperature { start: start + 1, celsius: 5.0 }] };
    let answer = primary.http.put(&url).bearer_auth(TOKEN).json(&bad).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_temperatures", "{error}");
    let read: TemperatureSeries =
        primary.http.get(format!("{url}?from={}&to={}", start, start + 3600)).send().await.unwrap().json().await.unwrap();
    assert_eq!(read.hours.len(), 1);
    assert!((read.hours[0].celsius - hours.iter().find(|h| h.start == start).unwrap().celsius).abs() < 0.0005, "stored to the thousandth");

    // A program measured with the regression; a shed event of most of what the chargers can give.
    let program = serde_json::from_value(json!({"programName": "heat-wave", "baseline": "CALTRACK_HOURLY"})).unwrap();
    primary.state.dispatch.create_program(program, start - 600).await.unwrap();
    let mut capable = 0;
    for d in primary.state.registry.all().await.iter().filter(|d| d.region == region && d.kind() == DeviceKind::EvCharger) {
        let latest = primary.state.fleet.latest(&d.key).await.map(|l| l.reading);
        capable += capability(d, latest.as_ref(), &Preferences::default(), Direction::Up, start - 60, start + 3600, 0);
    }
    assert!(capable > 0, "the region's chargers are charging at the event ({hour}:00)");
    let wire: WireEvent =
        serde_json::from_value(event_json("heat-wave", region, "DISPATCH_SETPOINT", start, "PT15M", &[capable as f64 / 1000.0 * 0.5; 4]))
            .unwrap();
    let event = primary.state.dispatch.put_event(&wire, None, start - 120).await.unwrap();
    for t in (start..start + 3600).step_by(900) {
        primary.state.dispatch.tick(t).await.unwrap();
        for device in &mut fleet.devices {
            let current = primary.state.dispatch.commands_for(&device.device_key(), t).await.current;
            device.dispatch = current.map(|c| (c.setpoint_w, c.valid_until));
        }
        let sent = sender.send(&fleet.tick(t, 900)).await.unwrap();
        assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);
    }
    primary.state.dispatch.tick(start + 3600 + 300).await.unwrap();
    let report = primary.state.dispatch.report(&event.id).await.unwrap().expect("measured");
    assert_eq!(report.load_baseline, "CALTRACK_HOURLY");
    let chargers: Vec<_> = report.devices.iter().filter(|d| d.kind == "ev_charger").collect();
    assert!(!chargers.is_empty(), "{report:#?}");
    for charger in &chargers {
        assert_eq!(charger.baseline, "CALTRACK_HOURLY", "{charger:?}");
        assert!(charger.baseline_days.len() >= regression::MIN_DAYS, "{charger:?}");
        let accuracy = charger.accuracy.as_ref().expect("tested on held-out days");
        assert!(accuracy.days >= 3 && accuracy.rrmse.is_finite(), "{accuracy:?}");
        eprintln!(
            "charger: commanded {} Wh, delivered {} Wh against CALTRACK_HOURLY, {accuracy:?}",
            charger.commanded_wh, charger.delivered_wh
        );
    }

    // The co-signer has no temperatures: the record brings the ones measured with.
    let records = primary.state.dispatch.records_credited(start, start + 86_400).await.unwrap();
    let [record] = records.as_slice() else { panic!("one record: {records:?}") };
    // Exactly the hours the primary read: the regression's lookback and the event.
    let lookback = ovpp_oracle::dispatch::measure::lookback_secs(&ovpp_oracle::dispatch::baseline::LoadMethod::Regression);
    let read = hours.iter().filter(|h| h.start >= start - lookback && h.start < start + 3600).count();
    assert_eq!(record.measured_with.temperatures.len(), read);
    // What the co-signer measures with is the record's: its own store has no weather.
    let url = format!("{}/v1/regions/{region}/temperatures?from={history}&to={}", cosigner.base, start + 3600);
    let own: TemperatureSeries = cosigner.http.get(url).send().await.unwrap().json().await.unwrap();
    assert!(own.hours.is_empty());
    cosigner.state.dispatch.remeasure(record, unix_now()).await.unwrap();
    let theirs = cosigner.state.dispatch.report(&event.id).await.unwrap().expect("re-measured");
    assert_eq!(theirs.devices, report.devices, "the same baselines, deliveries and accuracies from the co-signer's own readings");
}
