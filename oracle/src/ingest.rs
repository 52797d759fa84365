//! The ingest pipeline: signatures verified in parallel (ed25519 batch verification on
//! the blocking pool, so both cores work), then one writer task that commits whole groups of
//! requests in one transaction (group commit), validating each batch against its device's
//! cursor as read inside that transaction (so several oracle processes sharing a PostgreSQL
//! database judge each batch once). A request is answered only after its transaction is on
//! disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use tokio::sync::{mpsc, oneshot};

use crate::accumulate::{Accumulation, EpochSchedule};
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::readings::GroupWrite;
use crate::registry::Registry;
use crate::store::Store;
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::DeviceKey;
use ovpp_wire::telemetry::validate::{validate, Accepted, DeviceCursor, DeviceProfile, Outcome, Policy, Reject};
use ovpp_wire::telemetry::SignedBatch;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("chain unavailable for device lookup: {0}")]
    ChainUnavailable(String),
    #[error("storage failed, nothing from this request was stored: {0}")]
    Storage(String),
    #[error("the ingest writer has stopped")]
    Stopped,
}

struct Job {
    batches: Vec<(SignedBatch, bool, Option<DeviceProfile>)>,
    reply: oneshot::Sender<Result<Vec<Outcome>, IngestError>>,
}

#[derive(Clone)]
pub struct Ingestor {
    jobs: mpsc::Sender<Job>,
    /// End of the latest closed epoch: earlier intervals are refused, so a closed epoch's
    /// inputs never change after its report is published.
    closed_until: Arc<AtomicI64>,
    registry: Arc<Registry>,
    store: Store,
    metrics: Arc<Metrics>,
    accumulation: Arc<Mutex<Accumulation>>,
}

/// Requests merged into one transaction at most.
const MAX_GROUP: usize = 256;
/// Groups committed at once with PostgreSQL.
const CONCURRENT_GROUPS: usize = 8;
/// Batches per signature-verification task.
const VERIFY_CHUNK: usize = 64;

impl Ingestor {
    /// Starts the writer task; intervals before `closed_until` (the end of the latest epoch
    /// closed) are refused. Epoch accumulators are kept once the schedule is known
    /// ([`Ingestor::set_schedule`]), with the rules' `stress_hours_utc`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        store: Store,
        registry: Arc<Registry>,
        fleet: Arc<Fleet>,
        metrics: Arc<Metrics>,
        policy: Policy,
        closed_until: i64,
        stress_hours_utc: [u8; 2],
        tasks: &crate::tasks::Tasks,
    ) -> Self {
        let closed_until = Arc::new(AtomicI64::new(closed_until));
        let accumulation = Arc::new(Mutex::new(Accumulation { schedule: None, stress_hours_utc }));
        let (jobs, rx) = mpsc::channel(1024);
        let writer = Writer {
            store: store.clone(),
            fleet,
            metrics: metrics.clone(),
            policy,
            closed_until: closed_until.clone(),
            accumulation: accumulation.clone(),
        };
        tasks.spawn("ingest_writer", writer.run(rx));
        Self { jobs, closed_until, registry, store, metrics, accumulation }
    }

    /// The chain's epoch schedule, read from its config: from now on each accepted reading
    /// is also added to its epoch's accumulator.
    pub fn set_schedule(&self, schedule: EpochSchedule) {
        self.accumulation.lock().expect("accumulation settings").schedule = Some(schedule);
    }

    /// From now on, refuse readings whose interval starts before `end_ts` (an epoch up to
    /// there is being closed; never moves backwards). Returns once every group that could
    /// still have taken such readings is committed, so the epoch's inputs are fixed.
    pub async fn close_until(&self, end_ts: i64) -> Result<(), IngestError> {
        self.closed_until.fetch_max(end_ts, Ordering::SeqCst);
        // The fence in the database holds every process sharing it (and waits for what they
        // are committing); this process's writer commits groups in order, so an empty job
        // behind them is a barrier for its own.
        self.store.fence_epoch(end_ts).await.map_err(|e| IngestError::Storage(e.to_string()))?;
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { batches: Vec::new(), reply }).await.map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?.map(|_| ())
    }

    pub async fn ingest(&self, batches: Vec<SignedBatch>) -> Result<Vec<Outcome>, IngestError> {
        let started = Instant::now();
        let all_keys: Vec<DeviceKey> = batches.iter().map(|b| b.batch.device_key).collect();
        let known = self.registry.verifying_keys(&all_keys).await;
        let (batches, valid) = verify_signatures(batches, known).await;
        let keys: Vec<DeviceKey> = batches.iter().zip(&valid).filter(|(_, ok)| **ok).map(|(b, _)| b.batch.device_key).collect();
        let found = self.registry.resolve(&keys).await.map_err(|e| IngestError::ChainUnavailable(e.to_string()))?;
        if !found.is_empty() {
            self.store.upsert_devices(&found, unix_now()).await.map_err(|e| IngestError::Storage(e.to_string()))?;
        }
        let mut items = Vec::with_capacity(batches.len());
        for (batch, ok) in batches.into_iter().zip(valid) {
            let profile = self.registry.get(&batch.batch.device_key).await.map(|d| d.profile);
            items.push((batch, ok, profile));
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { batches: items, reply }).await.map_err(|_| IngestError::Stopped)?;
        let result = answer.await.map_err(|_| IngestError::Stopped)?;
        self.metrics.observe_request(started.elapsed());
        result
    }
}

/// Verifies every batch's signature, returning the batches and a verdict each. One batch
/// verification per chunk; a failing chunk is re-checked one by one to find the culprits.
/// `known` holds the decompressed keys of registered devices (decompressing a key costs
/// about half a verification).
async fn verify_signatures(batches: Vec<SignedBatch>, known: Vec<Option<VerifyingKey>>) -> (Vec<SignedBatch>, Vec<bool>) {
    let mut chunks: Vec<(Vec<SignedBatch>, Vec<Option<VerifyingKey>>)> = Vec::new();
    let mut batches = batches.into_iter().peekable();
    let mut known = known.into_iter();
    while batches.peek().is_some() {
        let chunk: Vec<SignedBatch> = batches.by_ref().take(VERIFY_CHUNK).collect();
        let keys = known.by_ref().take(chunk.len()).collect();
        chunks.push((chunk, keys));
    }
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|(chunk, keys)| {
            tokio::task::spawn_blocking(move || {
                let verdicts = verify_chunk(&chunk, keys);
                (chunk, verdicts)
            })
        })
        .collect();
    let mut out = (Vec::new(), Vec::new());
    for task in tasks {
        // A verification task only panics if ed25519-dalek does; treat that as a bug.
        let (chunk, verdicts) = task.await.expect("signature verification task");
        out.0.extend(chunk);
        out.1.extend(verdicts);
    }
    out
}

/// Verdicts for one chunk; `keys[i]` is batch i's key if already decompressed.
pub fn verify_chunk(chunk: &[SignedBatch], keys: Vec<Option<VerifyingKey>>) -> Vec<bool> {
    let keys: Vec<Option<VerifyingKey>> = chunk
        .iter()
        .zip(keys.into_iter().chain(std::iter::repeat(None)))
        .map(|(b, known)| known.or_else(|| VerifyingKey::from_bytes(&b.batch.device_key).ok().filter(|k| !k.is_weak())))
        .collect();
    let messages: Vec<Vec<u8>> = chunk.iter().map(|b| b.batch.signing_bytes()).collect();
    if keys.iter().all(Option::is_some) {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<Signature> = chunk.iter().map(|b| Signature::from_bytes(&b.signature)).collect();
        let verifying: Vec<VerifyingKey> = keys.iter().flatten().copied().collect();
        if ed25519_dalek::verify_batch(&refs, &signatures, &verifying).is_ok() {
            return vec![true; chunk.len()];
        }
    }
    chunk.iter().map(SignedBatch::verify_signature).collect()
}

#[derive(Clone)]
struct Writer {
    store: Store,
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    policy: Policy,
    closed_until: Arc<AtomicI64>,
    accumulation: Arc<Mutex<Accumulation>>,
}

impl Writer {
    /// Groups the jobs and commits each group: one group at a time with SQLite (one writer
    /// connection), several at once with PostgreSQL, where a group's transaction spends most
    /// of its time waiting on the server, and the per-device locks keep concurrent groups
    /// apart as they keep processes apart. Ends (the task is then reported dead) if a writer
    /// does.
    async fn run(self, rx: mpsc::Receiver<Job>) {
        let writers = if self.store.is_shared() { CONCURRENT_GROUPS } else { 1 };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut running = tokio::task::JoinSet::new();
        for _ in 0..writers {
            let (writer, rx) = (self.clone(), rx.clone());
            running.spawn(async move { writer.drain(&rx).await });
        }
        if let Some(Err(e)) = running.join_next().await {
            tracing::error!(error = %e, "an ingest writer failed");
        }
    }

    async fn drain(&self, rx: &tokio::sync::Mutex<mpsc::Receiver<Job>>) {
        loop {
            let jobs = {
                let mut rx = rx.lock().await;
                let Some(first) = rx.recv().await else { return };
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                jobs
            };
            self.commit_group(jobs).await;
        }
    }

    async fn commit_group(&self, jobs: Vec<Job>) {
        let now = unix_now();
        let accumulation = *self.accumulation.lock().expect("accumulation settings");
        let devices: Vec<DeviceKey> = jobs.iter().flat_map(|j| j.batches.iter().map(|(b, _, _)| b.batch.device_key)).collect();
        let policy = &self.policy;
        let judged = self
            .store
            .commit_group(&devices, now, &accumulation, |stored, fence| {
                let closed_until = self.closed_until.fetch_max(fence, Ordering::SeqCst).max(fence);
                judge(&jobs, stored, closed_until, now, policy)
            })
            .await;
        match judged {
            Ok((write, outcomes)) => {
                self.fleet.record(&write.accepted, now).await;
                self.metrics.record_outcomes(outcomes.iter().flatten(), write.accepted.iter().map(|b| b.batch.readings.len() as u64).sum());
                drop(write);
                for (job, result) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "ingest commit failed; the group is refused");
                self.metrics.storage_failures.fetch_add(1, Ordering::Relaxed);
                for job in jobs {
                    let _ = job.reply.send(Err(IngestError::Storage(e.to_string())));
                }
            }
        }
    }
}

/// Judges every batch of a group, in order, against the cursors stored (`stored`, read in the
/// group's transaction) and those of earlier batches of the group; returns what to write
/// and each request's outcomes.
fn judge<'a>(
    jobs: &'a [Job],
    stored: &HashMap<DeviceKey, DeviceCursor>,
    closed_until: i64,
    now: i64,
    policy: &Policy,
) -> (GroupWrite<'a>, Vec<Vec<Outcome>>) {
    let mut overlay: HashMap<DeviceKey, DeviceCursor> = HashMap::new();
    let mut write = GroupWrite::default();
    let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut job_outcomes = Vec::with_capacity(job.batches.len());
        for (batch, signature_ok, profile) in &job.batches {
            let key = batch.batch.device_key;
            let cursor = overlay.get(&key).or_else(|| stored.get(&key)).copied().unwrap_or_default();
            let outcome = if !*signature_ok {
                Err(Reject::BadSignature)
            } else if cursor.last_sequence == Some(batch.batch.sequence) && cursor.last_signature == Some(batch.signature) {
                // A valid signature equal to the stored one covers the same bytes.
                Ok(Accepted::AlreadyStored)
            } else {
                validate(&batch.batch, profile.as_ref(), &cursor, now, policy).and_then(|()| {
                    match batch.batch.readings.iter().any(|r| r.interval_start < closed_until) {
                        true => Err(Reject::EpochClosed),
                        false => Ok(Accepted::Stored),
                    }
                })
            };
            match outcome {
                Ok(Accepted::Stored) => {
                    let last = batch.batch.readings.last().map(|r| r.interval_start + i64::from(r.interval_secs));
                    let cursor = DeviceCursor {
                        last_sequence: Some(batch.batch.sequence),
                        last_interval_end: last,
                        last_signature: Some(batch.signature),
                    };
                    overlay.insert(key, cursor);
                    write.accepted.push(batch);
                }
                Ok(Accepted::AlreadyStored) => {}
                // Held against the device (data quality) only when the device itself sent
                // it: a valid signature, and not a replay, which anyone can send.
                Err(reason) if *signature_ok && reason != Reject::ReplayedSequence => write.rejected.push((batch, reason.code())),
                Err(_) => {}
            }
            job_outcomes.push(outcome);
        }
        outcomes.push(job_outcomes);
    }
    write.cursors = overlay.into_iter().collect();
    (write, outcomes)
}
