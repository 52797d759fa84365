//! Allocation of one event across 100,000 devices (random capabilities and reliabilities),
//! the goal being at most 100 ms, alone and with the capability of each device computed from
//! its latest reading (a whole planning step); and a day-ahead price schedule (96 quarter
//! hours) for 10,000 batteries; and the measurement of a 2-hour event over 100 smart
//! meters with 46 days of 15-minute history, with one baseline method (and its accuracy)
//! and with the most accurate of all. Run: `cargo bench -p ovpp-oracle --bench dispatch`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ovpp_oracle::dispatch::allocate::{allocate, Candidate, WEIGHT_SCALE};
use ovpp_oracle::dispatch::schedule::{schedule, Storage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn allocation(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(4);
    let fleet: Vec<Candidate> = (0..100_000u64)
        .map(|i| {
            let mut device = [0u8; 32];
            device[..8].copy_from_slice(&i.to_le_bytes());
            Candidate { device, capacity_w: rng.gen_range(0..11_000), weight_ppm: rng.gen_range(1..=WEIGHT_SCALE) }
        })
        .collect();
    let capability: u64 = fleet.iter().map(|c| c.capacity_w).sum();
    c.bench_function("allocate_100k_devices", |b| b.iter(|| allocate(black_box(&fleet), capability / 3, 1_000)));
}

/// A planning step for 100,000 simulated devices: capability from each one's latest
/// reading, registry entry and preferences, then the allocation.
fn planning_step(c: &mut Criterion) {
    use ovpp_oracle::dispatch::plan::{candidates, Direction};
    use ovpp_wire::dispatch::command::Preferences;
    let mut fleet = ovpp_simulator::Fleet::new(100_000, 6, 48.1, 11.6);
    let start = 1_795_600_800; // a November evening, 17:20 UTC
    let readings: Vec<_> = fleet.tick(start, 300).into_iter().map(|b| b.batch.readings[0]).collect();
    let registered: Vec<_> = fleet.devices.iter().map(|d| d.as_registered(Default::default())).collect();
    let prefs = Preferences::default();
    // Reliabilities as measured history would spread them.
    let mut rng = StdRng::seed_from_u64(7);
    let weights: Vec<u32> = (0..registered.len()).map(|_| rng.gen_range(WEIGHT_SCALE / 4..=WEIGHT_SCALE)).collect();
    let now = start + 300;
    let devices = || registered.iter().zip(&readings).zip(&weights).map(|((d, r), w)| (d, Some(r), &prefs, *w, 0));
    let able = candidates(devices(), Direction::Up, now, now + 900);
    eprintln!("plan_step_100k_devices: {} of 100000 devices can deliver", able.len());
    c.bench_function("plan_step_100k_devices", |b| {
        b.iter(|| {
            let eligible = candidates(devices(), Direction::Up, now, now + 900);
            let capability: u64 = eligible.iter().map(|c| c.capacity_w).sum();
            allocate(black_box(&eligible), capability / 3, 1_000)
        })
    });
}

fn day_ahead_schedule(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(5);
    // A day-ahead curve: night trough, morning and evening peaks, midday solar dip, noise.
    let prices: Vec<f64> = (0..96)
        .map(|q| {
            let h = q as f64 / 4.0;
            let bump = |c: f64, w: f64, a: f64| a * (-((h - c) / w).powi(2)).exp();
            0.20 + bump(8.0, 1.5, 0.10) + bump(19.0, 2.0, 0.18) - bump(13.0, 2.5, 0.12) - bump(3.0, 2.0, 0.08) + rng.gen_range(-0.01..0.01)
        })
        .collect();
    let batteries: Vec<Storage> = (0..10_000)
        .map(|_| {
            let capacity_wh = rng.gen_range(5_000..20_000);
            Storage {
                capacity_wh,
                power_w: rng.gen_range(3_000..10_000),
                stored_wh: rng.gen_range(0..capacity_wh),
                reserve_wh: capacity_wh / 5,
                efficiency: 0.95,
                wear_per_kwh: 0.02,
                can_discharge: true,
                needs: None,
            }
        })
        .collect();
    let mut group = c.benchmark_group("schedule");
    group.sample_size(10);
    group.bench_function("day_ahead_10k_batteries_96_slots", |b| {
        b.iter(|| batteries.iter().map(|s| schedule(black_box(s), &prices, 900).map(|s| s.cost).unwrap_or(0.0)).sum::<f64>())
    });
    group.finish();
}

/// A region's temperature at the hour starting at `t`, °C: a daily cycle and a slower swing.
fn celsius(t: i64) -> f64 {
    let (hour, day) = (t.rem_euclid(86_400) as f64 / 3600.0, t as f64 / 86_400.0);
    5.0 + 6.0 * (2.0 * std::f64::consts::PI * (hour - 9.0) / 24.0).sin() + 3.0 * (2.0 * std::f64::consts::PI * day / 3.7).sin()
}

/// The hourly temperatures over the 47 days before `start` and the event.
fn temperatures(start: i64) -> ovpp_oracle::dispatch::regression::Temperatures {
    (-(47 * 24)..4).map(|h| start.div_euclid(3600) * 3600 + h * 3600).map(|t| (t, celsius(t))).collect()
}

/// 100 smart meters commanded in a 2-hour shed event, 46 days of 15-minute readings each
/// (a daily shape with noise), measured with CAISO 10-of-10 and with MOST_ACCURATE.
fn measurement(c: &mut Criterion) {
    use std::collections::{BTreeSet, HashMap};

    use ovpp::state::{DeviceKind, DeviceStatus};
    use ovpp_oracle::dispatch::baseline::{LoadMethod, CAISO_10_IN_10};
    use ovpp_oracle::dispatch::measure::{measure, Inputs};
    use ovpp_oracle::readings::StoredReading;
    use ovpp_wire::device::RegisteredDevice;
    use ovpp_wire::dispatch::command::Command;
    use ovpp_wire::dispatch::event::{EventInterval, GridEvent, Signal};
    use ovpp_wire::telemetry::validate::DeviceProfile;
    use ovpp_wire::telemetry::{GridResponse, Reading};

    const DEVICES: u64 = 100;
    let start: i64 = 1_795_600_800 + 17 * 3600; // a Wednesday, 17:00 UTC
    let mut rng = StdRng::seed_from_u64(21);
    let keys: Vec<[u8; 32]> = (0..DEVICES)
        .map(|i| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            key
        })
        .collect();
    let profile =
        DeviceProfile { kind: DeviceKind::SmartMeter, status: DeviceStatus::Active, rated_power_w: 20_000, energy_capacity_wh: 0 };
    let devices: HashMap<[u8; 32], RegisteredDevice> = keys
        .iter()
        .map(|k| {
            (
                *k,
                RegisteredDevice {
                    key: *k,
                    owner: solana_sdk::pubkey::Pubkey::new_from_array(*k),
                    profile,
                    region: "DE-BY".into(),
                    location_cell: 0,
                },
            )
        })
        .collect();
    let mut readings = Vec::new();
    for key in &keys {
        for q in -(46 * 96)..8 {
            let t = start + q * 900;
            let hour = t.rem_euclid(86_400) / 3600;
            let shape = if (17..21).contains(&hour) { 900.0 } else { 400.0 };
            // Heating below 12 °C.
            let heating = 25.0 * (12.0 - celsius(t.div_euclid(3600) * 3600)).max(0.0);
            let wh = ((shape + heating) * rng.gen_range(0.8..1.2)) as u32;
            let reading = Reading {
                interval_start: t,
                interval_secs: 900,
                energy_generated_wh: 0,
                energy_consumed_wh: wh,
                energy_imported_wh: wh,
                energy_exported_wh: 0,
                average_power_w: -(wh as i32) * 4,
                state_of_charge_permille: None,
                storage_available_wh: None,
                flex_up_w: 0,
                flex_down_w: 0,
                grid_response: GridResponse::Idle,
                online: true,
            };
            readings.push(StoredReading { device_key: *key, reading, batch_sequence: 0, received_at: t + 900 });
        }
    }
    let event = GridEvent {
        id: "e".into(),
        program_id: "p".into(),
        event_name: None,
        region: "DE-BY".into(),
        signal: Signal::DispatchSetpoint,
        intervals: (0..8).map(|i| EventInterval { id: i, start: start + i * 900, end: start + (i + 1) * 900, value: 100_000 }).collect(),
        created: start - 3600,
        modified: start - 3600,
        cancelled: false,
        priority: None,
        report_descriptors: None,
        source: None,
    };
    let commands: Vec<(Command, Option<i64>)> = keys
        .iter()
        .map(|k| {
            let command = Command {
                id: format!("c{}", k[0]),
                event_id: "e".into(),
                device_key: *k,
                valid_from: start,
                valid_until: start + 7200,
                setpoint_w: 1_000,
                issued_at: start - 60,
            };
            (command, None)
        })
        .collect();
    let mut group = c.benchmark_group("measure_100_meters_46_days");
    group.sample_size(10);
    let mut inputs = Inputs {
        commands,
        overriding: vec![],
        devices,
        readings,
        method: LoadMethod::MostAccurate,
        event_days: BTreeSet::new(),
        temperatures: temperatures(start),
    };
    for (name, method) in [
        ("caiso_10_in_10", LoadMethod::Fixed(CAISO_10_IN_10)),
        ("caltrack_hourly", LoadMethod::Regression),
        ("most_accurate", LoadMethod::MostAccurate),
    ] {
        inputs.method = method;
        group.bench_function(name, |b| b.iter(|| measure(black_box(&event), &inputs)));
    }
    group.finish();
}

criterion_group!(benches, allocation, planning_step, day_ahead_schedule, measurement);
criterion_main!(benches);
