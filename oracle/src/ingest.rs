//! The ingest pipeline: signatures verified in parallel (ed25519 batch verification on
//! the blocking pool, so both cores work), then one writer task that validates each batch
//! against its device's cursor and commits whole groups of requests in one transaction
//! (group commit). A request is answered only after its transaction is on disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use tokio::sync::{mpsc, oneshot};

use crate::fleet::Fleet;
use crate::metrics::Metrics;
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
}

/// Requests merged into one transaction at most.
const MAX_GROUP: usize = 256;
/// Batches per signature-verification task.
const VERIFY_CHUNK: usize = 64;

impl Ingestor {
    /// Loads the cursors and starts the writer task; intervals before `closed_until` (the
    /// end of the latest epoch closed here) are refused.
    pub async fn start(
        store: Store,
        registry: Arc<Registry>,
        fleet: Arc<Fleet>,
        metrics: Arc<Metrics>,
        policy: Policy,
        closed_until: i64,
        tasks: &crate::tasks::Tasks,
    ) -> Result<Self, crate::store::StoreError> {
        let cursors = store.cursors().await?;
        let closed_until = Arc::new(AtomicI64::new(closed_until));
        let (jobs, rx) = mpsc::channel(1024);
        let writer = Writer { store: store.clone(), cursors, fleet, metrics: metrics.clone(), policy, closed_until: closed_until.clone() };
        tasks.spawn("ingest_writer", writer.run(rx));
        Ok(Self { jobs, closed_until, registry, store, metrics })
    }

    /// From now on, refuse readings whose interval starts before `end_ts` (an epoch up to
    /// there is being closed; never moves backwards). Returns once every group that could
    /// still have taken such readings is committed, so the epoch's inputs are fixed.
    pub async fn close_until(&self, end_ts: i64) -> Result<(), IngestError> {
        self.closed_until.fetch_max(end_ts, Ordering::SeqCst);
        // The writer commits groups in order: an empty job behind them is a barrier.
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

struct Writer {
    store: Store,
    cursors: HashMap<DeviceKey, DeviceCursor>,
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    policy: Policy,
    closed_until: Arc<AtomicI64>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit_group(jobs).await;
        }
    }

    async fn commit_group(&mut self, jobs: Vec<Job>) {
        let now = unix_now();
        let closed_until = self.closed_until.load(Ordering::SeqCst);
        let mut overlay: HashMap<DeviceKey, DeviceCursor> = HashMap::new();
        let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(jobs.len());
        let mut accepted: Vec<&SignedBatch> = Vec::new();
        let mut rejected: Vec<(&SignedBatch, &'static str)> = Vec::new();
        for job in &jobs {
            let mut job_outcomes = Vec::with_capacity(job.batches.len());
            for (batch, signature_ok, profile) in &job.batches {
                let key = batch.batch.device_key;
                let cursor = overlay.get(&key).or_else(|| self.cursors.get(&key)).copied().unwrap_or_default();
                let outcome = if !*signature_ok {
                    Err(Reject::BadSignature)
                } else if cursor.last_sequence == Some(batch.batch.sequence) && cursor.last_signature == Some(batch.signature) {
                    // A valid signature equal to the stored one covers the same bytes.
                    Ok(Accepted::AlreadyStored)
                } else {
                    validate(&batch.batch, profile.as_ref(), &cursor, now, &self.policy).and_then(|()| {
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
                        accepted.push(batch);
                    }
                    Ok(Accepted::AlreadyStored) => {}
                    // Held against the device (data quality) only when the device itself sent
                    // it: a valid signature, and not a replay, which anyone can send.
                    Err(reason) if *signature_ok && reason != Reject::ReplayedSequence => rejected.push((batch, reason.code())),
                    Err(_) => {}
                }
                job_outcomes.push(outcome);
            }
            outcomes.push(job_outcomes);
        }

        let cursors: Vec<(DeviceKey, DeviceCursor)> = overlay.iter().map(|(k, c)| (*k, *c)).collect();
        match self.store.commit(&accepted, &cursors, &rejected, now).await {
            Ok(()) => {
                self.cursors.extend(overlay);
                self.fleet.record(&accepted, now).await;
                self.metrics.record_outcomes(outcomes.iter().flatten(), accepted.iter().map(|b| b.batch.readings.len() as u64).sum());
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
