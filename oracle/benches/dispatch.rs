//! Allocation of one event across 100,000 devices (random capabilities and reliabilities),
//! the goal being at most 100 ms, alone and with the capability of each device computed from
//! its latest reading (a whole planning step); and a day-ahead price schedule (96 quarter
//! hours) for 10,000 batteries. Run: `cargo bench -p ovpp-oracle --bench dispatch`.

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

criterion_group!(benches, allocation, planning_step, day_ahead_schedule);
criterion_main!(benches);
