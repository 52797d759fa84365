//! Epoch close and the Merkle tree, in one run on this machine:
//! - `epoch_close/compute_and_sign_100k`: score 100,000 devices (inputs of 96 intervals
//!   each, already aggregated), split the emission, hash the leaves, build the tree, write
//!   the report, hash it and sign the epoch message;
//! - `epoch_close/aggregate_sql_10k_x_96`: the SQL aggregation of 10,000 devices x 96
//!   readings (960,000 rows) into those inputs, from SQLite;
//! - `close_from_accumulators/{sqlite,postgres}/{10k,100k,1m}`: a whole epoch close as the
//!   oracle runs it, for 10,000 to 1,000,000 devices whose inputs ingest accumulated: read
//!   the accumulators (one row per device), score, split, build the tree and the report,
//!   hash it and sign the epoch message (PostgreSQL: a server started on this machine);
//! - `merkle_1m/tree` beside `merkle_1m/raw_sha256`: the tree over 1,048,576 leaves, and a
//!   plain sha256 loop over the same node preimages (0x01 || a || b), same count.
//!
//! Run: `cargo bench -p ovpp-oracle --bench epoch`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::SigningKey;
use ovpp::merkle::MerkleTree;
use ovpp::state::{DeviceKind, DeviceStatus};
use ovpp_oracle::accumulate::{Accumulation, EpochSchedule};
use ovpp_oracle::epoch::{self, EpochSpec};
use ovpp_oracle::readings::GroupWrite;
use ovpp_oracle::store::Store;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::score::{EpochInputs, ScoringRules};
use ovpp_wire::telemetry::validate::DeviceProfile;
use ovpp_wire::telemetry::{GridResponse, Reading, SignedBatch, TelemetryBatch};
use sha2::{Digest, Sha256};

const SPEC: EpochSpec = EpochSpec { epoch: 1, start_ts: 1_790_000_000, end_ts: 1_790_000_000 + 96 * 900, emission: 10_000_000_000 };

fn device_key(i: u64) -> DeviceKey {
    Sha256::digest(i.to_le_bytes()).into()
}

fn registered(key: DeviceKey) -> RegisteredDevice {
    RegisteredDevice {
        key,
        owner: Pubkey::new_from_array(key),
        profile: DeviceProfile {
            kind: DeviceKind::HomeBattery,
            status: DeviceStatus::Active,
            rated_power_w: 5_000,
            energy_capacity_wh: 13_500,
        },
        region: "DE-BY".into(),
        location_cell: 0,
    }
}

fn compute_and_sign(c: &mut Criterion) {
    let n = 100_000u64;
    let registry: HashMap<DeviceKey, RegisteredDevice> = (0..n).map(|i| (device_key(i), registered(device_key(i)))).collect();
    let inputs: HashMap<DeviceKey, EpochInputs> = (0..n)
        .map(|i| {
            let inputs = EpochInputs {
                covered_secs: 96 * 900 - (i % 7) * 900,
                online_secs: 96 * 900 - (i % 5) * 900,
                generated_wh: 0,
                discharged_wh: 2_000 + i % 3_000,
                storage_available_wh_hours: 13_000 * 24,
                stress_flex_wh: 10_000 + i % 5_000,
                fault_intervals: u64::from(i % 97 == 0),
                demand_response_wh: 0,
                price_response_wh: None,
                accepted_batches: 96 - i % 7,
                rejected_batches: i % 3,
                through_sequence: 96,
            };
            (device_key(i), inputs)
        })
        .collect();
    let oracle = SigningKey::from_bytes(&[7; 32]);
    let rules = ScoringRules::default();
    let mut group = c.benchmark_group("epoch_close");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("compute_and_sign_100k", |b| {
        b.iter(|| {
            let closed = epoch::compute(&SPEC, &rules, &registry, &HashMap::new(), 0, &inputs).unwrap();
            closed.sign(&oracle)
        })
    });

    // 10k devices x 96 quarter-hour readings in SQLite.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("ovpp-epoch-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = runtime.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.join("oracle.db").display())).await.unwrap();
        for k in 0..96i64 {
            let batches: Vec<SignedBatch> = (0..10_000u64)
                .map(|i| SignedBatch {
                    batch: TelemetryBatch {
                        device_key: device_key(i),
                        sequence: k as u64 + 1,
                        readings: vec![reading(SPEC.start_ts + k * 900)],
                    },
                    signature: [0; 64],
                })
                .collect();
            let keys: Vec<_> = batches.iter().map(|b| b.batch.device_key).collect();
            let write = || GroupWrite { accepted: batches.iter().collect(), ..GroupWrite::default() };
            store.commit_group(&keys, 0, &Accumulation::default(), |_, _| (write(), ())).await.unwrap();
        }
        store
    });
    group.bench_function("aggregate_sql_10k_x_96", |b| {
        b.iter(|| runtime.block_on(store.epoch_inputs(SPEC.start_ts, SPEC.end_ts, rules.stress_hours_utc, None)).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn reading(start: i64) -> Reading {
    Reading {
        interval_start: start,
        interval_secs: 900,
        energy_generated_wh: 0,
        energy_consumed_wh: 100,
        energy_imported_wh: 100,
        energy_exported_wh: 500,
        average_power_w: 1_600,
        state_of_charge_permille: Some(500),
        storage_available_wh: Some(13_000),
        flex_up_w: 3_000,
        flex_down_w: 5_000,
        grid_response: GridResponse::Idle,
        online: true,
    }
}

fn merkle(c: &mut Criterion) {
    let leaves: Vec<[u8; 32]> = (0..1u64 << 20).map(device_key).collect();
    // The preimages the tree hashes: a node per pair, level by level (2^20 - 1 of them).
    let preimages: Vec<[u8; 65]> = {
        let tree_levels = {
            let mut levels = vec![leaves.clone()];
            while levels.last().unwrap().len() > 1 {
                let next = levels.last().unwrap().chunks(2).map(|p| ovpp::protocol::node_hash(&p[0], &p[1])).collect();
                levels.push(next);
            }
            levels
        };
        tree_levels[..tree_levels.len() - 1]
            .iter()
            .flat_map(|level| level.chunks(2))
            .map(|p| {
                let (lo, hi) = if p[0] <= p[1] { (p[0], p[1]) } else { (p[1], p[0]) };
                let mut out = [0u8; 65];
                out[0] = 1;
                out[1..33].copy_from_slice(&lo);
                out[33..].copy_from_slice(&hi);
                out
            })
            .collect()
    };
    let mut group = c.benchmark_group("merkle_1m");
    group.sample_size(10).measurement_time(Duration::from_secs(15));
    group.bench_function("tree", |b| b.iter_batched(|| leaves.clone(), |l| MerkleTree::new(l).unwrap().root(), BatchSize::LargeInput));
    group.bench_function("raw_sha256", |b| {
        b.iter(|| {
            for p in &preimages {
                black_box(Sha256::digest(p));
            }
        })
    });
    group.finish();
}

/// Stores `n` devices' accumulated inputs for `SPEC` through ingest's own write path (one
/// reading per device; the close reads one accumulator row per device whatever the count).
async fn accumulated_epoch(url: &str, n: u64) -> Store {
    let store = Store::open(url).await.unwrap();
    let accumulation = Accumulation {
        schedule: Some(EpochSchedule { start_ts: SPEC.start_ts, length_secs: SPEC.end_ts - SPEC.start_ts }),
        stress_hours_utc: ScoringRules::default().stress_hours_utc,
    };
    let all: Vec<u64> = (0..n).collect();
    for chunk in all.chunks(4096) {
        let batches: Vec<SignedBatch> = chunk
            .iter()
            .map(|&i| SignedBatch {
                batch: TelemetryBatch {
                    device_key: device_key(i),
                    sequence: 1,
                    readings: vec![reading(SPEC.start_ts + (i as i64 % 96) * 900)],
                },
                signature: [0; 64],
            })
            .collect();
        let keys: Vec<DeviceKey> = batches.iter().map(|b| b.batch.device_key).collect();
        let write = || GroupWrite { accepted: batches.iter().collect(), ..GroupWrite::default() };
        store.commit_group(&keys, 0, &accumulation, |_, _| (write(), ())).await.unwrap();
    }
    let rules = ScoringRules::default();
    assert!(store
        .accumulated_inputs(SPEC.start_ts, SPEC.end_ts, rules.stress_hours_utc)
        .await
        .unwrap()
        .is_some_and(|a| a.len() as u64 == n));
    store
}

fn close_from_accumulators(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("ovpp-close-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let oracle = SigningKey::from_bytes(&[7; 32]);
    let rules = ScoringRules::default();
    let mut group = c.benchmark_group("close_from_accumulators");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    for (label, n) in [("10k", 10_000u64), ("100k", 100_000), ("1m", 1_000_000)] {
        let registry: Vec<RegisteredDevice> = (0..n).map(|i| registered(device_key(i))).collect();
        for backend in ["sqlite", "postgres"] {
            let url = match backend {
                "sqlite" => format!("sqlite://{}", dir.join(format!("close-{label}.db")).display()),
                _ => runtime.block_on(ovpp_test_support::postgres::database(&format!("close_{label}"))),
            };
            let store = runtime.block_on(accumulated_epoch(&url, n));
            group.bench_function(format!("{backend}/{label}"), |b| {
                b.iter(|| {
                    let closed = runtime.block_on(epoch::close(&store, &SPEC, &rules, &registry, None)).unwrap();
                    assert!(closed.header.leaf_count > 0);
                    closed.sign(&oracle)
                })
            });
            runtime.block_on(store.close());
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, compute_and_sign, close_from_accumulators, merkle);
criterion_main!(benches);
