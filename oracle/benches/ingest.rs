//! Ingest throughput, in one run on this machine:
//! - `raw_batch_verify`: ed25519 batch verification of 64 prepared signatures, on one
//!   core and on every core (one verifier thread per core);
//! - `http_end_to_end/{sqlite,postgres}`: signed readings posted over HTTP (binary bodies;
//!   8 gateways of 128 devices, each sending its requests back to back, all at once),
//!   verified, validated and durably committed, with their epoch accumulators, by
//!   `ovpp-oracle`'s own service, client and server in this process (the client's encoding
//!   and HTTP work share the two cores); into SQLite, then into a PostgreSQL server started
//!   on this machine (`ovpp-test-support`: fsync on, so commits are durable).
//!
//! - `ingest_growth/{sqlite,postgres}/..._{10k,100k,1m}_registered`: the same with that many
//!   more devices registered and stored (a cursor, an accumulator, a reading each).
//!
//! Throughput is in signatures (= batches = readings: one reading per batch) per second.
//! Run: `cargo bench -p ovpp-oracle --bench ingest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signature, VerifyingKey};
use ovpp_chain::RpcChain;
use ovpp_oracle::accumulate::{Accumulation, EpochSchedule};
use ovpp_oracle::readings::GroupWrite;
use ovpp_oracle::store::Store;
use ovpp_simulator::{Fleet, Sender};
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::RegisteredDevice;
use ovpp_wire::telemetry::validate::DeviceCursor;
use ovpp_wire::telemetry::SignedBatch;
use ovpp_wire::telemetry::{Reading, TelemetryBatch};
use sha2::Digest;

const CHUNK: usize = 64;
const GATEWAYS: usize = 8;
const DEVICES_PER_GATEWAY: usize = 128;
const SECS: u32 = 10;

struct Prepared {
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    keys: Vec<VerifyingKey>,
}

fn prepare(batches: &[SignedBatch]) -> Prepared {
    Prepared {
        messages: batches.iter().map(|b| b.batch.signing_bytes()).collect(),
        signatures: batches.iter().map(|b| Signature::from_bytes(&b.signature)).collect(),
        keys: batches.iter().map(|b| VerifyingKey::from_bytes(&b.batch.device_key).unwrap()).collect(),
    }
}

fn verify(p: &Prepared) {
    let messages: Vec<&[u8]> = p.messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&messages, &p.signatures, &p.keys).expect("valid batch");
}

fn raw_batch_verify(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut fleet = Fleet::new(CHUNK * cores, 1, 48.1, 11.6);
    let chunks: Vec<Prepared> = fleet.tick(unix_now() - 600, 60).chunks(CHUNK).map(prepare).collect();
    let mut group = c.benchmark_group("raw_batch_verify");
    group.throughput(Throughput::Elements(CHUNK as u64));
    group.bench_function("one_core", |b| b.iter(|| verify(&chunks[0])));
    group.throughput(Throughput::Elements((CHUNK * cores) as u64));
    group.bench_function(format!("{cores}_cores"), |b| {
        b.iter(|| std::thread::scope(|s| chunks.iter().for_each(|chunk| drop(s.spawn(|| verify(chunk))))))
    });
    group.finish();
}

fn http_end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("ovpp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("http_end_to_end");
    let databases = [
        ("sqlite", format!("sqlite://{}", dir.join("oracle.db").display())),
        ("postgres", runtime.block_on(ovpp_test_support::postgres::database("ingest_bench"))),
    ];
    for (backend, url) in databases {
        bench_backend(&runtime, &mut group, backend, &url, "");
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `http_end_to_end` with 10^4, 10^5 and 10^6 more devices registered, each with a cursor,
/// an accumulator and a reading stored (three hours ago, outside the live fleet view): how
/// ingest grows with the fleet in the database.
fn ingest_growth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("ovpp-growth-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("ingest_growth");
    for (label, n) in [("10k", 10_000u64), ("100k", 100_000), ("1m", 1_000_000)] {
        for backend in ["sqlite", "postgres"] {
            let url = match backend {
                "sqlite" => format!("sqlite://{}", dir.join(format!("growth-{label}.db")).display()),
                _ => runtime.block_on(ovpp_test_support::postgres::database(&format!("growth_{label}"))),
            };
            runtime.block_on(register_idle_devices(&url, n));
            bench_backend(&runtime, &mut group, backend, &url, &format!("/{label}_registered"));
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` devices registered (keys from a hash of their index), each with one accepted reading
/// three hours ago, stored through ingest's own write path.
async fn register_idle_devices(url: &str, n: u64) {
    let store = Store::open(url).await.unwrap();
    let key = |i: u64| -> [u8; 32] { sha2::Sha256::digest(i.to_le_bytes()).into() };
    let owner = Pubkey::new_unique();
    let profile = ovpp_simulator::typical_profile(ovpp::state::DeviceKind::HomeBattery);
    let at = (unix_now() - 3 * 3600) / 60 * 60;
    let accumulation = Accumulation { schedule: Some(EpochSchedule { start_ts: 0, length_secs: 3600 }), stress_hours_utc: [16, 20] };
    let all: Vec<u64> = (0..n).collect();
    for chunk in all.chunks(8192) {
        let devices: Vec<RegisteredDevice> =
            chunk.iter().map(|&i| RegisteredDevice { key: key(i), owner, profile, region: "DE-BY".into(), location_cell: 0 }).collect();
        store.upsert_devices(&devices, unix_now()).await.unwrap();
        let batches: Vec<SignedBatch> = chunk
            .iter()
            .map(|&i| SignedBatch {
                batch: TelemetryBatch { device_key: key(i), sequence: 1, readings: vec![Reading::empty(at, 60)] },
                signature: [0; 64],
            })
            .collect();
        let cursors = batches
            .iter()
            .map(|b| {
                (
                    b.batch.device_key,
                    DeviceCursor { last_sequence: Some(1), last_interval_end: Some(at + 60), last_signature: Some([0; 64]) },
                )
            })
            .collect();
        let keys: Vec<_> = batches.iter().map(|b| b.batch.device_key).collect();
        let write = || GroupWrite { accepted: batches.iter().collect(), cursors: Vec::clone(&cursors), rejected: vec![] };
        store.commit_group(&keys, unix_now(), &accumulation, |_, _| (write(), ())).await.unwrap();
    }
    store.close().await;
}

fn bench_backend(
    runtime: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    backend: &str,
    url: &str,
    label: &str,
) {
    let devices = GATEWAYS * DEVICES_PER_GATEWAY;
    let mut fleet = Fleet::new(devices, 2, 48.1, 11.6);
    let base = runtime.block_on(async {
        // The registry as a sync would have cached it; the chain itself is not reachable.
        let store = Store::open(url).await.unwrap();
        let owner = Pubkey::new_unique();
        let registered: Vec<_> = fleet.devices.iter().map(|d| d.as_registered(owner)).collect();
        store.upsert_devices(&registered, unix_now()).await.unwrap();
        store.close().await;
        let chain = Arc::new(RpcChain::new("http://127.0.0.1:1".into()));
        let options = ovpp_oracle::service::Options { registry_refresh: Duration::from_secs(3600), ..Default::default() };
        let state = ovpp_oracle::service::start(url, chain, options).await.unwrap();
        // Hourly epochs, as a chain's config would set: every reading is also accumulated.
        state.ingestor.set_schedule(EpochSchedule { start_ts: 0, length_secs: 3600 });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, ovpp_oracle::server::router(state)).await });
        base
    });
    let sender = Arc::new(Sender::new(&base));
    // Every round is one new interval for every device, starting days back (within the
    // retention window) so that rounds never reach the present.
    let mut next = unix_now() - 6 * 86_400;
    group.throughput(Throughput::Elements(devices as u64)).sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function(format!("{backend}/{GATEWAYS}x{DEVICES_PER_GATEWAY}_batches_per_request{label}"), |b| {
        b.iter_custom(|rounds| {
            // Per gateway, its requests in order: one per round.
            let mut gateways: Vec<Vec<Vec<SignedBatch>>> = vec![Vec::new(); GATEWAYS];
            for _ in 0..rounds {
                let round = fleet.tick(next, SECS);
                next += i64::from(SECS);
                for (gateway, request) in gateways.iter_mut().zip(round.chunks(DEVICES_PER_GATEWAY)) {
                    gateway.push(request.to_vec());
                }
            }
            let started = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = gateways
                    .into_iter()
                    .map(|requests| {
                        let sender = sender.clone();
                        tokio::spawn(async move {
                            for request in requests {
                                let sent = sender.send(&request).await.unwrap();
                                assert_eq!((sent.accepted, sent.rejected), (DEVICES_PER_GATEWAY as u64, 0), "{:?}", sent.reasons);
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            started.elapsed()
        })
    });
}

criterion_group!(benches, raw_batch_verify, http_end_to_end, ingest_growth);
criterion_main!(benches);
