//! Storage on both backends (SQLite and a real PostgreSQL server): the epoch inputs kept
//! incrementally at ingest give byte-identical reports to the scan over readings, whatever
//! path a close takes; several ingest writers on one database judge every batch once; and
//! pruning keeps what epochs and baselines still need.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use ovpp_chain::RpcChain;
use ovpp_oracle::accumulate::EpochSchedule;
use ovpp_oracle::epoch::{self, EpochSpec};
use ovpp_oracle::fleet::Fleet as FleetView;
use ovpp_oracle::ingest::Ingestor;
use ovpp_oracle::loads::Load;
use ovpp_oracle::metrics::Metrics;
use ovpp_oracle::registry::Registry;
use ovpp_oracle::store::Store;
use ovpp_oracle::tasks::Tasks;
use ovpp_simulator::Fleet;
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::score::ScoringRules;
use ovpp_wire::telemetry::validate::{Accepted, Outcome, Policy, Reject};
use ovpp_wire::telemetry::{GridResponse, SignedBatch, TelemetryBatch};

const DEVICES: usize = 24;
const SECS: u32 = 300;
const EPOCH_SECS: i64 = 3600;
/// Readings per batch: 3 x 5 min, so some batches straddle an epoch boundary.
const PER_BATCH: i64 = 3;

async fn sqlite(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ovpp-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("oracle.db").display())
}

async fn postgres(name: &str) -> String {
    ovpp_test_support::postgres::database(name).await
}

struct Setup {
    store: Store,
    ingestor: Ingestor,
    registry: Vec<RegisteredDevice>,
    schedule: EpochSchedule,
    rules: ScoringRules,
    fleet: Fleet,
    _tasks: Tasks,
}

/// A store with a registered fleet and an ingest writer on it (no chain: the registry is
/// the cached one), the epoch schedule starting at `start` (on the hour). The rules' stress
/// window is the hour of the first epoch, so that the stress sums are not all zero.
async fn setup(url: &str, seed: u64, start: i64) -> Setup {
    let store = Store::open(url).await.unwrap();
    let fleet = Fleet::new(DEVICES, seed, 48.1, 11.6);
    let owner = Pubkey::new_unique();
    let registry: Vec<_> = fleet.devices.iter().map(|d| d.as_registered(owner)).collect();
    store.upsert_devices(&registry, unix_now()).await.unwrap();
    let hour = (start.rem_euclid(86_400) / 3600) as u8;
    let rules = ScoringRules { stress_hours_utc: [hour, hour + 1], ..ScoringRules::default() };
    let ingestor = start_ingestor(&store, &registry, rules.stress_hours_utc).await;
    Setup {
        store,
        ingestor,
        registry,
        schedule: EpochSchedule { start_ts: start, length_secs: EPOCH_SECS },
        rules,
        fleet,
        _tasks: Tasks::default(),
    }
}

async fn start_ingestor(store: &Store, registry: &[RegisteredDevice], stress_hours_utc: [u8; 2]) -> Ingestor {
    let chain = Arc::new(RpcChain::new("http://127.0.0.1:1".into()));
    let registry = Arc::new(Registry::new(chain, registry.to_vec()));
    let tasks = Box::leak(Box::new(Tasks::default()));
    Ingestor::start(
        store.clone(),
        registry,
        Arc::new(FleetView::default()),
        Arc::new(Metrics::default()),
        Policy::default(),
        store.fence().await.unwrap(),
        stress_hours_utc,
        tasks,
    )
}

impl Setup {
    fn spec(&self, k: i64) -> EpochSpec {
        let start_ts = self.schedule.start_ts + k * EPOCH_SECS;
        EpochSpec { epoch: 1 + k as u64, start_ts, end_ts: start_ts + EPOCH_SECS, emission: 1_000_000_000 }
    }

    /// One request: every device's batch of `PER_BATCH` readings from `start`, some of them
    /// marked faulty.
    fn request(&mut self, start: i64) -> Vec<SignedBatch> {
        let mut readings: Vec<Vec<_>> = vec![Vec::new(); DEVICES];
        for k in 0..PER_BATCH {
            for (i, mut r) in self.fleet.readings(start + k * i64::from(SECS), SECS).into_iter().enumerate() {
                if (i + k as usize).is_multiple_of(7) {
                    r.grid_response = GridResponse::Fault;
                }
                readings[i].push(r);
            }
        }
        let sequence = (start + PER_BATCH * i64::from(SECS)) as u64;
        self.fleet
            .devices
            .iter()
            .zip(readings)
            .map(|(d, readings)| TelemetryBatch { device_key: d.device_key(), sequence, readings }.sign(&d.key))
            .collect()
    }
}

/// Three hours ago, on the hour.
fn three_hours_ago() -> i64 {
    (unix_now() - 3 * EPOCH_SECS).div_euclid(EPOCH_SECS) * EPOCH_SECS
}

fn statuses(outcomes: &[Outcome]) -> BTreeSet<String> {
    outcomes
        .iter()
        .map(|o| match o {
            Ok(Accepted::Stored) => "stored".to_string(),
            Ok(Accepted::AlreadyStored) => "already_stored".to_string(),
            Err(reject) => reject.code().to_string(),
        })
        .collect()
}

/// The report of epoch `spec` closed from the readings, never from accumulators.
async fn close_from_readings(s: &Setup, spec: &EpochSpec, cutoff: Option<&HashMap<DeviceKey, u64>>) -> Vec<u8> {
    let inputs = s.store.epoch_inputs_from_readings(spec.start_ts, spec.end_ts, s.rules.stress_hours_utc, cutoff).await.unwrap();
    let registry: HashMap<_, _> = s.registry.iter().map(|d| (d.key, d.clone())).collect();
    epoch::compute(spec, &s.rules, &registry, &Default::default(), 0, &inputs).unwrap().report
}

async fn accumulated_reports_equal_the_scan(url: &str) {
    let mut s = setup(url, 5, three_hours_ago()).await;
    // Readings from ten minutes before the first epoch to the end of the second (batches
    // straddle the epoch boundaries). The
    // first two requests arrive before ingest knows the schedule (stored unaccumulated).
    let first = s.schedule.start_ts - 600;
    let mut sent = 0;
    for k in 0.. {
        let start = first + k * PER_BATCH * i64::from(SECS);
        if start >= s.schedule.start_ts + 2 * EPOCH_SECS {
            break;
        }
        if k == 2 {
            s.ingestor.set_schedule(s.schedule);
        }
        let request = s.request(start);
        assert_eq!(statuses(&s.ingestor.ingest(request.clone()).await.unwrap()), BTreeSet::from(["stored".to_string()]));
        // The same request again: already stored, and nothing counted twice.
        assert_eq!(statuses(&s.ingestor.ingest(request).await.unwrap()), BTreeSet::from(["already_stored".to_string()]));
        sent += 1;
    }
    assert!(sent >= 8);
    // A device's own bad batch (energy beyond its rating) is counted against it in the epoch
    // it arrives in (D, the one running now).
    let mut reading = s.fleet.readings(s.schedule.start_ts + 2 * EPOCH_SECS + 1800, SECS)[1];
    reading.energy_consumed_wh = u32::MAX;
    let d = &s.fleet.devices[1];
    let bad = TelemetryBatch { device_key: d.device_key(), sequence: i64::MAX as u64 - 1, readings: vec![reading] }.sign(&d.key);
    let outcome = s.ingestor.ingest(vec![bad]).await.unwrap();
    assert!(matches!(outcome[0], Err(Reject::EnergyAbovePowerTime)), "{outcome:?}");

    let (a, b, d) = (s.spec(0), s.spec(1), s.spec(3));
    // Epoch A holds readings stored before the schedule was known: it must be read from the
    // readings. Epoch B was accumulated whole.
    assert!(s.store.accumulated_inputs(a.start_ts, a.end_ts, s.rules.stress_hours_utc).await.unwrap().is_none());
    let sums =
        s.store.accumulated_inputs(b.start_ts, b.end_ts, s.rules.stress_hours_utc).await.unwrap().expect("epoch B from accumulators");
    assert_eq!(sums.len(), DEVICES);
    let registry: HashMap<_, _> = s.registry.iter().map(|d| (d.key, d.clone())).collect();
    for spec in [a, b, d] {
        let fast = s.store.epoch_inputs(spec.start_ts, spec.end_ts, s.rules.stress_hours_utc, None).await.unwrap();
        let scan = s.store.epoch_inputs_from_readings(spec.start_ts, spec.end_ts, s.rules.stress_hours_utc, None).await.unwrap();
        assert_eq!(fast, scan, "epoch {}: inputs", spec.epoch);
        // Compared with no history (B's close would need A's leaves).
        let from_fast = epoch::compute(&spec, &s.rules, &registry, &Default::default(), 0, &fast).unwrap().report;
        assert_eq!(from_fast, close_from_readings(&s, &spec, None).await, "epoch {}: report bytes", spec.epoch);
    }
    let inputs = |spec: EpochSpec| {
        let store = s.store.clone();
        let stress = s.rules.stress_hours_utc;
        async move { store.epoch_inputs(spec.start_ts, spec.end_ts, stress, None).await.unwrap() }
    };
    let (in_a, in_b, in_d) = (inputs(a).await, inputs(b).await, inputs(d).await);
    assert!(in_a.values().any(|i| i.stress_flex_wh > 0) && in_b.values().all(|i| i.stress_flex_wh == 0), "stress window is A's hour");
    assert!(in_b.values().any(|i| i.fault_intervals > 0) && in_b.values().all(|i| i.accepted_batches >= 4));
    assert_eq!(in_d.get(&s.fleet.devices[1].device_key()).map(|i| i.rejected_batches), Some(1));
    // The real close of A (the first epoch) takes the same path and gives the same bytes.
    let closed = epoch::close(&s.store, &a, &s.rules, &s.registry, None).await.unwrap();
    assert_eq!(closed.report, close_from_readings(&s, &a, None).await);
    // A co-signer's cutoff at the devices' last batches takes the accumulators too and gives
    // the same bytes; a cutoff short of them falls back to the readings, still equal.
    let through: HashMap<DeviceKey, u64> = sums.iter().map(|(k, s)| (*k, s.through_sequence as u64)).collect();
    let short: HashMap<DeviceKey, u64> = through.iter().map(|(k, t)| (*k, t - PER_BATCH as u64 * u64::from(SECS))).collect();
    for cutoff in [&through, &short] {
        let inputs = s.store.epoch_inputs(b.start_ts, b.end_ts, s.rules.stress_hours_utc, Some(cutoff)).await.unwrap();
        let report = epoch::compute(&b, &s.rules, &registry, &Default::default(), 0, &inputs).unwrap().report;
        assert_eq!(report, close_from_readings(&s, &b, Some(cutoff)).await);
    }
    // Another stress window (a rules change) cannot use these accumulators.
    assert!(s.store.accumulated_inputs(b.start_ts, b.end_ts, [0, 1]).await.unwrap().is_none());
    s.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accumulated_reports_equal_the_scan_sqlite() {
    accumulated_reports_equal_the_scan(&sqlite("accumulate").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accumulated_reports_equal_the_scan_postgres() {
    accumulated_reports_equal_the_scan(&postgres("accumulate").await).await;
}

/// Four ingest writers, each with its own connections (as four processes), take the same
/// requests at once: each batch is stored by one and found already stored by the others,
/// and the accumulators hold each reading once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_store_each_batch_once_postgres() {
    let url = postgres("writers").await;
    let mut s = setup(&url, 9, three_hours_ago()).await;
    s.ingestor.set_schedule(s.schedule);
    let mut writers = vec![s.ingestor.clone()];
    for _ in 0..3 {
        let store = Store::open(&url).await.unwrap();
        let ingestor = start_ingestor(&store, &s.registry, s.rules.stress_hours_utc).await;
        ingestor.set_schedule(s.schedule);
        writers.push(ingestor);
    }
    let requests: Vec<Vec<SignedBatch>> = (0..8).map(|k| s.request(s.schedule.start_ts + k * PER_BATCH * i64::from(SECS))).collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for request in &requests {
        let answers = futures_util::future::join_all(writers.iter().map(|w| w.ingest(request.clone()))).await;
        for answer in answers {
            for outcome in answer.unwrap() {
                *counts.entry(statuses(&[outcome]).into_iter().next().unwrap()).or_default() += 1;
            }
        }
    }
    let batches = requests.len() * DEVICES;
    assert_eq!(counts, HashMap::from([("stored".to_string(), batches), ("already_stored".to_string(), 3 * batches)]));
    assert_eq!(s.store.reading_count().await.unwrap(), (batches as i64) * PER_BATCH);
    let (a, b) = (s.spec(0), s.spec(1));
    for spec in [a, b] {
        let fast = s.store.epoch_inputs(spec.start_ts, spec.end_ts, s.rules.stress_hours_utc, None).await.unwrap();
        let scan = s.store.epoch_inputs_from_readings(spec.start_ts, spec.end_ts, s.rules.stress_hours_utc, None).await.unwrap();
        assert_eq!(fast, scan);
    }
    assert!(s.store.accumulated_inputs(a.start_ts, a.end_ts, s.rules.stress_hours_utc).await.unwrap().is_some());
}

/// Pruning keeps the open epoch, every unposted epoch and the baseline lookback, and
/// removes the same readings on both backends (PostgreSQL: a whole day's partition). Epoch
/// A is the last hour before yesterday's midnight, B the first after it.
async fn pruning_keeps_what_is_needed(url: &str) {
    let midnight = (unix_now() - 86_400).div_euclid(86_400) * 86_400;
    let mut s = setup(url, 13, midnight - EPOCH_SECS).await;
    s.ingestor.set_schedule(s.schedule);
    for k in 0..8 {
        let request = s.request(s.schedule.start_ts + k * PER_BATCH * i64::from(SECS));
        s.ingestor.ingest(request).await.unwrap();
    }
    let total = s.store.reading_count().await.unwrap();
    let before_midnight = s.store.readings_between(i64::MIN, midnight).await.unwrap().len() as i64;
    assert!(before_midnight > 0 && before_midnight < total);
    let now = unix_now();
    // Keeping nothing: the open epoch (nothing closed yet) holds everything back.
    let horizon = ovpp_oracle::retention::horizon(&s.store, 0, now).await.unwrap();
    assert!(horizon <= s.schedule.start_ts, "{horizon} > {}", s.schedule.start_ts);
    s.store.prune_readings(horizon).await.unwrap();
    assert_eq!(s.store.reading_count().await.unwrap(), total);
    // Epoch A closed but not posted (a co-signer may still recompute it): kept.
    let a = s.spec(0);
    let closed = epoch::close(&s.store, &a, &s.rules, &s.registry, None).await.unwrap();
    s.store.save_epoch(&closed, now).await.unwrap();
    let horizon = ovpp_oracle::retention::horizon(&s.store, 0, now).await.unwrap();
    assert!(horizon <= a.start_ts);
    s.store.prune_readings(horizon).await.unwrap();
    assert_eq!(s.store.reading_count().await.unwrap(), total);
    // Posted: the readings before the day boundary under the open epoch go, with the day's
    // load profiles.
    assert_eq!(s.store.roll_up_day(midnight / 86_400 - 1).await.unwrap(), DEVICES);
    s.store.mark_epoch_posted(a.epoch, None, now).await.unwrap();
    let horizon = ovpp_oracle::retention::horizon(&s.store, 0, now).await.unwrap();
    assert_eq!(horizon, midnight);
    s.store.prune_readings(horizon).await.unwrap();
    let left = s.store.readings_between(i64::MIN, i64::MAX).await.unwrap();
    assert!(left.iter().all(|r| r.reading.interval_start >= midnight));
    assert_eq!(left.len() as i64, total - before_midnight);
    let keys: Vec<DeviceKey> = s.fleet.devices.iter().map(|d| d.device_key()).collect();
    let history = s.store.load_history(&keys, midnight - 86_400, now).await.unwrap();
    assert!(history.values().flatten().all(|l| l.interval_start >= midnight), "no profile of a pruned day");
    assert!(history.values().flatten().count() > 0);
    // Epoch B's inputs are intact, from its accumulators.
    let b = s.spec(1);
    let fast = s.store.epoch_inputs(b.start_ts, b.end_ts, s.rules.stress_hours_utc, None).await.unwrap();
    assert_eq!(fast, s.store.epoch_inputs_from_readings(b.start_ts, b.end_ts, s.rules.stress_hours_utc, None).await.unwrap());
    assert_eq!(fast.len(), DEVICES);
    assert!(s.store.accumulated_inputs(b.start_ts, b.end_ts, s.rules.stress_hours_utc).await.unwrap().is_some());
    // Keeping too little for a baseline's lookback is refused at start-up.
    assert!(ovpp_oracle::retention::min_keep_days() >= 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_what_is_needed_sqlite() {
    pruning_keeps_what_is_needed(&sqlite("prune").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_what_is_needed_postgres() {
    pruning_keeps_what_is_needed(&postgres("prune").await).await;
}

/// The devices' loads as the readings say them, per device in time order.
async fn loads_from_readings(store: &Store, start: i64, end: i64) -> HashMap<DeviceKey, Vec<Load>> {
    let mut out: HashMap<DeviceKey, Vec<Load>> = HashMap::new();
    for r in store.readings_between(start, end).await.unwrap() {
        out.entry(r.device_key).or_default().push(Load::of(&r.reading));
    }
    out
}

/// Daily load profiles hold exactly what the readings say, rolled up or not, and a late
/// reading for a rolled-up day is never missing from what a baseline reads.
async fn load_profiles_equal_the_readings(url: &str) {
    let today = unix_now().div_euclid(86_400);
    let mut s = setup(url, 17, (today - 2) * 86_400).await;
    let keys: Vec<DeviceKey> = s.fleet.devices.iter().map(|d| d.device_key()).collect();
    let late = keys[3];
    // Two days and today so far; device 3 goes silent in the afternoon of yesterday.
    let silent_from = (today - 1) * 86_400 + 15 * 3600;
    let mut held: Vec<SignedBatch> = Vec::new();
    let mut t = (today - 2) * 86_400;
    while t + PER_BATCH * i64::from(SECS) < unix_now() - 60 {
        let mut request = s.request(t);
        if (silent_from..today * 86_400).contains(&t) {
            held.push(request.remove(3));
        } else if t >= today * 86_400 && !held.is_empty() {
            request.remove(3); // it comes back with its backlog below
        }
        s.ingestor.ingest(request).await.unwrap();
        t += PER_BATCH * i64::from(SECS);
    }
    let (start, end) = ((today - 2) * 86_400, unix_now());
    let history = s.store.load_history(&keys, start, end).await.unwrap();
    let expected = loads_from_readings(&s.store, start, end).await;
    assert_eq!(history, expected, "nothing rolled up yet: from the readings");

    // Days are rolled up a day after they end (ingest judges lateness by its own clock);
    // tomorrow both finished days are due.
    assert_eq!(s.store.days_to_roll_up(today).await.unwrap(), vec![today - 2]);
    assert_eq!(s.store.days_to_roll_up(today + 1).await.unwrap(), vec![today - 2, today - 1]);
    for day in [today - 2, today - 1] {
        assert_eq!(s.store.roll_up_day(day).await.unwrap(), DEVICES);
    }
    assert_eq!(s.store.days_to_roll_up(today + 1).await.unwrap(), Vec::<i64>::new());
    assert_eq!(s.store.load_history(&keys, start, end).await.unwrap(), expected, "rolled up: the same");
    // Only some devices, and a span starting mid-day: the same as the readings say.
    let some = &keys[..5];
    let mid = start + 86_400 / 2 + 300;
    let partial: HashMap<_, _> = loads_from_readings(&s.store, mid, end).await.into_iter().filter(|(k, _)| some.contains(k)).collect();
    assert_eq!(s.store.load_history(some, mid, end).await.unwrap(), partial);

    // Device 3's backlog for yesterday arrives: the day is read from the readings again
    // until it is rolled up anew, and then the profile has the late readings.
    for batch in held {
        let outcome = s.ingestor.ingest(vec![batch]).await.unwrap();
        assert!(matches!(outcome[0], Ok(Accepted::Stored)), "{outcome:?}");
    }
    let expected = loads_from_readings(&s.store, start, end).await;
    assert_eq!(s.store.days_to_roll_up(today + 1).await.unwrap(), vec![today - 1]);
    assert_eq!(s.store.load_history(&keys, start, end).await.unwrap(), expected, "late readings included");
    assert_eq!(s.store.roll_up_day(today - 1).await.unwrap(), 1, "only the late device's profile is made again");
    assert_eq!(s.store.load_history(&keys, start, end).await.unwrap(), expected);
    assert!(expected[&late].iter().any(|l| (silent_from..today * 86_400).contains(&l.interval_start)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_profiles_equal_the_readings_sqlite() {
    load_profiles_equal_the_readings(&sqlite("loads").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_profiles_equal_the_readings_postgres() {
    load_profiles_equal_the_readings(&postgres("loads").await).await;
}
