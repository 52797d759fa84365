//! Durability: the oracle runs as a real process, is killed with SIGKILL while devices are
//! sending, and restarted. Every acknowledged reading is stored exactly once; a request
//! in flight at the kill is stored whole or not at all; devices that retry what was not
//! acknowledged end with every reading stored exactly once, and no retry is held against
//! them as a replay. The same on PostgreSQL; and two `serve` processes sharing one
//! PostgreSQL database, sent the same batches at once, store each reading once, and when
//! the leader among them is killed the other takes over.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use ovpp_oracle::store::Store;
use ovpp_simulator::Fleet;
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::DeviceKey;
use ovpp_wire::telemetry::SignedBatch;
use serde_json::Value;

const DEVICES: usize = 40;
const LANES: usize = 4;
const INTERVALS: i64 = 40;
const SECS: u32 = 60;

struct Oracle {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `ovpp-oracle serve` on the database at `url`, logging into `dir`. The chain URL
/// answers nothing: ingest runs on the registry cached in the database, which the test
/// seeded.
async fn start(dir: &Path, url: &str, log: &str) -> Oracle {
    // The port is free when picked but could be taken before the oracle binds it: then
    // the oracle exits and another port is tried.
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ovpp-oracle"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--url", "http://127.0.0.1:1", "--registry-refresh-secs", "3600"])
            .args(["--database-url", url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).unwrap())
            .spawn()
            .expect("start ovpp-oracle");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Oracle { child, base };
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("ovpp-oracle did not come up; see {}", dir.join(log).display());
}

/// What the oracle answered to one request: `Some(statuses)` or `None` (no answer).
async fn post(http: &reqwest::Client, base: &str, batches: &[SignedBatch]) -> Option<Vec<String>> {
    let response = http
        .post(format!("{base}/v1/telemetry"))
        .header("content-type", "application/octet-stream")
        .body(ovpp_wire::telemetry::encode_batches(batches))
        .send()
        .await
        .ok()?;
    assert_eq!(response.status().as_u16(), 200, "the oracle answered, so it must have taken the request");
    let body: Value = response.json().await.ok()?;
    Some(body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_string()).collect())
}

type ReadingKey = (DeviceKey, i64);

fn reading_keys(requests: &[Vec<SignedBatch>]) -> BTreeSet<ReadingKey> {
    requests.iter().flatten().flat_map(|b| b.batch.readings.iter().map(|r| (b.batch.device_key, r.interval_start))).collect()
}

/// The readings stored (the primary key makes each `(device, interval start)` unique;
/// the final comparison with what was sent shows nothing is missing or extra).
async fn stored(url: &str) -> BTreeSet<ReadingKey> {
    let store = Store::open(url).await.unwrap();
    let keys = store.readings_between(i64::MIN, i64::MAX).await.unwrap().iter().map(|r| (r.device_key, r.reading.interval_start)).collect();
    store.close().await;
    keys
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ovpp-durability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Registers a simulated fleet in the database at `url` (as a registry sync would have
/// cached it) and makes its requests: `LANES` gateways, each for a share of the devices,
/// sending one request per interval in order.
async fn fleet_requests(url: &str) -> Vec<Vec<Vec<SignedBatch>>> {
    let mut fleet = Fleet::new(DEVICES, 11, 48.1, 11.6);
    let owner = Pubkey::new_unique();
    let store = Store::open(url).await.unwrap();
    let registered: Vec<_> = fleet.devices.iter().map(|d| d.as_registered(owner)).collect();
    store.upsert_devices(&registered, unix_now()).await.unwrap();
    store.close().await;
    let first = (unix_now() - INTERVALS * i64::from(SECS) - 600) / 60 * 60;
    let mut lanes: Vec<Vec<Vec<SignedBatch>>> = vec![Vec::new(); LANES];
    for k in 0..INTERVALS {
        let batches = fleet.tick(first + k * i64::from(SECS), SECS);
        for (lane, chunk) in lanes.iter_mut().zip(batches.chunks(DEVICES / LANES)) {
            lane.push(chunk.to_vec());
        }
    }
    lanes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_readings_survive_sigkill_exactly_once_sqlite() {
    let dir = test_dir("sqlite");
    let url = format!("sqlite://{}", dir.join("oracle.db").display());
    acknowledged_readings_survive_sigkill_exactly_once(&dir, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_readings_survive_sigkill_exactly_once_postgres() {
    let dir = test_dir("postgres");
    let url = ovpp_test_support::postgres::database("durability").await;
    acknowledged_readings_survive_sigkill_exactly_once(&dir, &url).await;
}

async fn acknowledged_readings_survive_sigkill_exactly_once(dir: &Path, url: &str) {
    let lanes = Arc::new(fleet_requests(url).await);
    let url = url.to_string();
    let mut oracle = start(dir, &url, "first.log").await;
    let acks = Arc::new(AtomicUsize::new(0));
    let total_requests = LANES * INTERVALS as usize;
    let tasks: Vec<_> = (0..LANES)
        .map(|lane| {
            let (lanes, acks, base) = (lanes.clone(), acks.clone(), oracle.base.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                // Returns how many requests were acknowledged, in order.
                for (i, request) in lanes[lane].iter().enumerate() {
                    match post(&http, &base, request).await {
                        Some(statuses) => {
                            assert!(statuses.iter().all(|s| s == "accepted"), "{statuses:?}");
                            acks.fetch_add(1, Ordering::SeqCst);
                        }
                        None => return i,
                    }
                }
                lanes[lane].len()
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::SeqCst) < total_requests / 3 {
        assert!(
            std::time::Instant::now() < deadline && !tasks.iter().all(|t| t.is_finished()),
            "the lanes stopped before a third was sent"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    oracle.child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    oracle.child.wait().unwrap();
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    assert!(acked.iter().any(|&n| n < INTERVALS as usize), "the kill came mid-stream: {acked:?}");

    // After the crash: every acknowledged reading is there exactly once; beyond them, at
    // most each lane's one request in flight, whole.
    let after_crash = stored(&url).await;
    for (lane, &n) in acked.iter().enumerate() {
        let acknowledged = reading_keys(&lanes[lane][..n]);
        assert!(acknowledged.is_subset(&after_crash), "lane {lane}: an acknowledged reading was lost");
        let never_sent = reading_keys(&lanes[lane][(n + 1).min(lanes[lane].len())..]);
        assert!(never_sent.is_disjoint(&after_crash), "lane {lane}: a reading never sent is stored");
        if let Some(in_flight) = lanes[lane].get(n) {
            let in_flight = reading_keys(std::slice::from_ref(in_flight));
            let kept = in_flight.intersection(&after_crash).count();
            assert!(kept == 0 || kept == in_flight.len(), "lane {lane}: the request in flight was stored in part");
        }
    }

    // Restart; the gateways resend from their first unacknowledged request.
    let mut oracle = start(dir, &url, "second.log").await;
    let http = reqwest::Client::new();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for (lane, &n) in acked.iter().enumerate() {
        for request in &lanes[lane][n..] {
            for status in post(&http, &oracle.base, request).await.expect("restarted oracle answers") {
                *statuses.entry(status).or_default() += 1;
            }
        }
    }
    assert_eq!(statuses.keys().filter(|s| *s != "accepted" && *s != "already_stored").count(), 0, "{statuses:?}");
    // SIGTERM (what a service manager sends): an orderly stop, exit status 0.
    let term = Command::new("kill").args(["-TERM", &oracle.child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let mut exited = None;
    for _ in 0..300 {
        exited = oracle.child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.unwrap_or_else(|| panic!("no exit 15 s after SIGTERM; see {}", dir.display()));
    assert!(status.success(), "exit after SIGTERM: {status}");

    let finally = stored(&url).await;
    let all_sent: BTreeSet<ReadingKey> = lanes.iter().flat_map(|lane| reading_keys(lane)).collect();
    assert_eq!(finally, all_sent, "every reading stored exactly once");
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.rejection_counts().await.unwrap(), vec![], "no retry counted as a replay");
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn health(http: &reqwest::Client, base: &str) -> Option<Value> {
    http.get(format!("{base}/healthz")).send().await.ok()?.json().await.ok()
}

/// Two `serve` processes on one PostgreSQL database, as behind a load balancer or with
/// gateways that send to every oracle: each request goes to both at once. Every batch is
/// stored by exactly one of them and found already stored by the other (never a replay);
/// every reading is stored once. One of them leads; SIGKILL it and the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgres_database() {
    let dir = test_dir("shared");
    let url = ovpp_test_support::postgres::database("shared").await;
    let lanes = fleet_requests(&url).await;
    let mut oracles = [start(&dir, &url, "a.log").await, start(&dir, &url, "b.log").await];
    let bases: Vec<String> = oracles.iter().map(|o| o.base.clone()).collect();

    let tasks: Vec<_> = lanes
        .iter()
        .cloned()
        .map(|lane| {
            let bases = bases.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut statuses: HashMap<(String, String), usize> = HashMap::new();
                for request in &lane {
                    let (a, b) = tokio::join!(post(&http, &bases[0], request), post(&http, &bases[1], request));
                    for (sa, sb) in a.expect("first oracle answers").into_iter().zip(b.expect("second oracle answers")) {
                        let mut pair = [sa, sb];
                        pair.sort();
                        let [x, y] = pair;
                        *statuses.entry((x, y)).or_default() += 1;
                    }
                }
                statuses
            })
        })
        .collect();
    let mut statuses: HashMap<(String, String), usize> = HashMap::new();
    for task in tasks {
        for (pair, n) in task.await.unwrap() {
            *statuses.entry(pair).or_default() += n;
        }
    }
    let batches = DEVICES * INTERVALS as usize;
    assert_eq!(
        statuses,
        HashMap::from([(("accepted".to_string(), "already_stored".to_string()), batches)]),
        "each batch stored by one process"
    );
    let all_sent: BTreeSet<ReadingKey> = lanes.iter().flat_map(|lane| reading_keys(lane)).collect();
    assert_eq!(stored(&url).await, all_sent, "every reading stored exactly once");
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.rejection_counts().await.unwrap(), vec![], "no batch counted as a replay");
    store.close().await;

    // Exactly one leader; killed, the other takes over.
    let http = reqwest::Client::new();
    let leaders =
        |healths: Vec<Option<Value>>| -> Vec<bool> { healths.iter().map(|h| h.as_ref().is_some_and(|h| h["leader"] == true)).collect() };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let first_leader = loop {
        let now = leaders(vec![health(&http, &bases[0]).await, health(&http, &bases[1]).await]);
        match now.as_slice() {
            [true, false] => break 0,
            [false, true] => break 1,
            [true, true] => panic!("two leaders at once"),
            _ => assert!(std::time::Instant::now() < deadline, "no leader within 20 s"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let other = 1 - first_leader;
    oracles[first_leader].child.kill().expect("SIGKILL");
    oracles[first_leader].child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !health(&http, &bases[other]).await.is_some_and(|h| h["leader"] == true) {
        assert!(std::time::Instant::now() < deadline, "the other process did not take over within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = oracles[other].child.kill();
    let _ = oracles[other].child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
