//! Allocation of one event across 100,000 devices (random capabilities and reliabilities),
//! the goal being at most 100 ms. Run: `cargo bench -p ovpp-oracle --bench dispatch`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ovpp_oracle::dispatch::allocate::{allocate, Candidate, WEIGHT_SCALE};
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

criterion_group!(benches, allocation);
criterion_main!(benches);
