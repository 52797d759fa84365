//! Epoch close: fixes an epoch's inputs (its accepted telemetry, the registry, the previous
//! epoch's leaves, the rules), scores every device, splits the emission, and produces the
//! published report, the Merkle tree over the leaves with the program's own hashing, and
//! the signed epoch message. The same inputs give byte-identical output, so a co-signer
//! recomputes the report from its own copy of the telemetry and signs only on equality.

use std::collections::{BTreeSet, HashMap};

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use ovpp::instructions::PostEpochArgs;
use ovpp::merkle::MerkleTree;
use ovpp::protocol::{leaf_hash, Hash32, RewardLeaf, EPOCH_MESSAGE_LEN};
use ovpp::state::{Config, DeviceStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ingest::Ingestor;
use crate::store::{Store, StoreError};
use ovpp_wire::report::{ReportHeader, ReportLine, REPORT_VERSION};
use ovpp_wire::score::{next_reputation, score, split_emission, EpochInputs, Score, ScoringRules, INITIAL_REPUTATION_BPS};

pub mod db;
use ovpp_wire::device::kind_name;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};

/// Which epoch, when, and how much it may mint: from the chain's `Config` schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSpec {
    pub epoch: u64,
    /// Readings whose interval starts in `[start_ts, end_ts)` belong to the epoch.
    pub start_ts: i64,
    pub end_ts: i64,
    /// OVPP base units this epoch distributes (at most the on-chain cap).
    pub emission: u64,
}

impl EpochSpec {
    /// Epoch `epoch` of the chain's schedule, with `emission` capped by the chain's cap.
    pub fn from_config(config: &Config, epoch: u64, emission: u64) -> Option<Self> {
        let end_ts = config.epoch_end_ts(epoch)?;
        Some(Self {
            epoch,
            start_ts: end_ts.checked_sub(i64::from(config.epoch_length_secs))?,
            end_ts,
            emission: emission.min(config.emission_cap_per_epoch),
        })
    }
}

/// A closed epoch.
#[derive(Clone, Debug)]
pub struct ClosedEpoch {
    pub header: ReportHeader,
    pub lines: Vec<ReportLine>,
    /// The report bytes: header line, then device lines, each JSON and `\n`-terminated.
    pub report: Vec<u8>,
    pub report_hash: Hash32,
    pub root: Hash32,
    pub tree: MerkleTree,
}

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("epoch {0} cannot be closed before epoch {1} is closed here")]
    PreviousNotClosed(u64, u64),
    #[error("epoch {epoch} starts at {start_ts} on the chain's schedule, but epoch {previous} closed here ended at {previous_end}: the schedule changed under an unposted epoch")]
    ScheduleChanged { epoch: u64, start_ts: i64, previous: u64, previous_end: i64 },
    #[error("epoch {epoch}: end {end_ts} is not after start {start_ts}")]
    BadSpec { epoch: u64, start_ts: i64, end_ts: i64 },
    #[error("cumulative total overflows u64")]
    Overflow,
    #[error("epoch {0} is not in the chain's schedule")]
    NotScheduled(u64),
    #[error("epoch {epoch} has not ended yet (it ends at {end_ts})")]
    NotEnded { epoch: u64, end_ts: i64 },
    #[error("the report is for epoch {epoch}, but the next epoch to close here is {next}")]
    NotNextToClose { epoch: u64, next: u64 },
    #[error("the report claims {claimed:?}, the chain's schedule and this oracle's emission give {expected:?}")]
    SpecMismatch { claimed: EpochSpec, expected: EpochSpec },
    #[error("the report leaves out data of device {device} that arrived here in time (up to batch {sequence})")]
    OmitsTimelyData { device: String, sequence: u64 },
    #[error("the report offered for epoch {epoch} is not the one posted on-chain (hash, root or totals differ)")]
    NotThePostedReport { epoch: u64 },
    #[error("ingest: {0}")]
    Ingest(String),
    #[error("the report is malformed: {0}")]
    MalformedReport(String),
    #[error("the report differs from the recomputation (first difference at line {line}): {detail}")]
    ReportMismatch { line: usize, detail: String },
}

/// The previous leaf of a device, the state the next epoch builds on.
pub type Leaves = HashMap<DeviceKey, RewardLeaf>;

fn status_name(status: Option<DeviceStatus>) -> &'static str {
    match status {
        Some(DeviceStatus::Active) => "active",
        Some(DeviceStatus::Suspended) => "suspended",
        Some(DeviceStatus::Retired) => "retired",
        None => "unknown",
    }
}

/// Computes an epoch from its fixed inputs. Pure: no clock, no I/O.
pub fn compute(
    spec: &EpochSpec,
    rules: &ScoringRules,
    registry: &HashMap<DeviceKey, RegisteredDevice>,
    previous: &Leaves,
    previous_cumulative_total: u64,
    inputs: &HashMap<DeviceKey, EpochInputs>,
) -> Result<ClosedEpoch, EpochError> {
    if spec.end_ts <= spec.start_ts {
        return Err(EpochError::BadSpec { epoch: spec.epoch, start_ts: spec.start_ts, end_ts: spec.end_ts });
    }
    let epoch_secs = (spec.end_ts - spec.start_ts) as u64;
    let mut devices: BTreeSet<DeviceKey> = previous.keys().chain(inputs.keys().filter(|k| registry.contains_key(*k))).copied().collect();
    if devices.is_empty() {
        // The program needs at least one leaf: an epoch before any device reported gets a
        // zero-amount leaf for the all-zero key, which no device can ever hold.
        devices.insert([0; 32]);
    }
    struct Row {
        key: DeviceKey,
        device: Option<RegisteredDevice>,
        inputs: EpochInputs,
        score: Score,
        reputation_before: u16,
    }
    let rows: Vec<Row> = devices
        .into_iter()
        .map(|key| {
            let device = registry.get(&key).cloned();
            let mut inputs = inputs.get(&key).copied().unwrap_or_default();
            if device.as_ref().is_some_and(|d| d.profile.energy_capacity_wh == 0) {
                // Export beyond own generation is storage discharge only where there is storage.
                inputs.discharged_wh = 0;
            }
            // Price response is an input of the rules that pay it (v2) only: a v1 report has none.
            inputs.price_response_wh = rules.price_response_per_kwh.map(|_| inputs.price_response_wh.unwrap_or(0));
            let active = device.as_ref().is_some_and(|d| d.profile.status == DeviceStatus::Active);
            let score = if active { score(&inputs, epoch_secs, rules) } else { Score::default() };
            let reputation_before = previous.get(&key).map_or(INITIAL_REPUTATION_BPS, |l| l.reputation_bps);
            Row { key, device, inputs, score, reputation_before }
        })
        .collect();
    let amounts = split_emission(spec.emission, &rows.iter().map(|r| (r.score.points, r.reputation_before)).collect::<Vec<_>>());

    let mut lines = Vec::with_capacity(rows.len());
    let mut leaf_hashes = Vec::with_capacity(rows.len());
    let mut minted: u64 = 0;
    for (row, amount) in rows.into_iter().zip(amounts) {
        let before =
            previous.get(&row.key).copied().unwrap_or(RewardLeaf { reputation_bps: INITIAL_REPUTATION_BPS, ..RewardLeaf::default() });
        let active = row.device.as_ref().is_some_and(|d| d.profile.status == DeviceStatus::Active);
        let leaf = if active {
            RewardLeaf {
                epoch: spec.epoch,
                cumulative_amount: before.cumulative_amount.checked_add(amount).ok_or(EpochError::Overflow)?,
                reputation_bps: next_reputation(before.reputation_bps, &row.score, &row.inputs, rules),
                epochs_active: before.epochs_active.saturating_add(u32::from(row.inputs.covered_secs > 0)),
                faults: before.faults.saturating_add(u32::from(row.inputs.fault_intervals > 0)),
                energy_delivered_wh: before
                    .energy_delivered_wh
                    .saturating_add(row.inputs.generated_wh)
                    .saturating_add(row.inputs.discharged_wh),
                flexibility_delivered_wh: before
                    .flexibility_delivered_wh
                    .saturating_add(row.inputs.demand_response_wh)
                    .saturating_add(row.inputs.price_response_wh.unwrap_or(0)),
            }
        } else {
            RewardLeaf { epoch: spec.epoch, ..before }
        };
        minted = minted.checked_add(leaf.cumulative_amount - before.cumulative_amount).ok_or(EpochError::Overflow)?;
        let hash = leaf_hash(&ovpp::ID, &Pubkey::new_from_array(row.key), &leaf);
        leaf_hashes.push(hash);
        lines.push(ReportLine {
            device_key: bs58::encode(row.key).into_string(),
            kind: row.device.as_ref().map_or("unknown", |d| kind_name(d.kind())).to_string(),
            status: status_name(row.device.as_ref().map(|d| d.profile.status)).to_string(),
            inputs: row.inputs,
            score: row.score,
            reputation_before_bps: row.reputation_before,
            amount: leaf.cumulative_amount - before.cumulative_amount,
            leaf,
            leaf_hash: hex::encode(hash),
        });
    }
    let tree = MerkleTree::new(leaf_hashes).expect("at least one leaf");
    let root = tree.root();
    let header = ReportHeader {
        version: REPORT_VERSION.into(),
        program_id: ovpp::ID.to_string(),
        epoch: spec.epoch,
        start_ts: spec.start_ts,
        end_ts: spec.end_ts,
        emission: spec.emission,
        rules_version: rules.version().into(),
        rules_hash: hex::encode(rules.hash()),
        rules: rules.clone(),
        previous_cumulative_total,
        cumulative_total: previous_cumulative_total.checked_add(minted).ok_or(EpochError::Overflow)?,
        leaf_count: lines.len() as u64,
        root: hex::encode(root),
    };
    let mut report = Vec::new();
    write_line(&mut report, &header);
    for line in &lines {
        write_line(&mut report, line);
    }
    let report_hash = Sha256::digest(&report).into();
    Ok(ClosedEpoch { header, lines, report, report_hash, root, tree })
}

fn write_line<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("report lines serialize");
    out.push(b'\n');
}

impl ClosedEpoch {
    /// What `post_epoch` carries for this epoch.
    pub fn args(&self) -> PostEpochArgs {
        PostEpochArgs {
            epoch: self.header.epoch,
            root: self.root,
            cumulative_total: self.header.cumulative_total,
            leaf_count: self.header.leaf_count,
            report_hash: self.report_hash,
        }
    }

    /// The exact bytes each oracle key signs for this epoch.
    pub fn message(&self) -> [u8; EPOCH_MESSAGE_LEN] {
        ovpp::client::epoch_message_for(&self.args())
    }

    pub fn sign(&self, oracle: &SigningKey) -> [u8; 64] {
        oracle.sign(&self.message()).to_bytes()
    }

    /// The leaves by device, the state the next epoch starts from.
    pub fn leaves(&self) -> Vec<(DeviceKey, RewardLeaf)> {
        self.lines
            .iter()
            .map(|l| {
                let mut key = [0u8; 32];
                bs58::decode(&l.device_key).onto(&mut key).expect("report keys are base58 of 32 bytes");
                (key, l.leaf)
            })
            .collect()
    }
}

/// The device lines of a published report, with their keys decoded.
fn parse_lines(report: &[u8]) -> Result<Vec<(DeviceKey, ReportLine)>, EpochError> {
    let lines = report.split(|&b| b == b'\n').skip(1).filter(|l| !l.is_empty());
    lines
        .enumerate()
        .map(|(i, line)| {
            let malformed = |what: String| EpochError::MalformedReport(format!("line {}: {what}", i + 2));
            let line: ReportLine = serde_json::from_slice(line).map_err(|e| malformed(e.to_string()))?;
            let mut key = [0u8; 32];
            if bs58::decode(&line.device_key).onto(&mut key).ok() != Some(32) {
                return Err(malformed("bad device key".into()));
            }
            Ok((key, line))
        })
        .collect()
}

/// Per device, the last batch sequence a published report used.
fn report_cutoff(report: &[u8]) -> Result<HashMap<DeviceKey, u64>, EpochError> {
    Ok(parse_lines(report)?.into_iter().map(|(key, line)| (key, line.inputs.through_sequence)).collect())
}

/// Whether `signature` by `signer` over `message` verifies (strict RFC 8032).
pub fn signature_valid(message: &[u8], signer: &[u8; 32], signature: &[u8; 64]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(signer)
        .is_ok_and(|k| k.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature)).is_ok())
}

/// Takes in an epoch another oracle published, after checking it against the chain: the
/// epoch is posted, the report's sha256 is the report hash the chain holds, its totals are
/// the chain's, and its leaves (recomputed from its lines) give the chain's root. This is
/// how an oracle joins a running network, or recovers a lost database: it starts from the
/// latest posted epoch instead of from genesis.
pub async fn import_posted(store: &Store, report: &[u8], on_chain: &ovpp::state::Epoch, now: i64) -> Result<ClosedEpoch, EpochError> {
    let header = parse_header(report)?;
    let report_hash: Hash32 = Sha256::digest(report).into();
    if header.epoch != on_chain.epoch || report_hash != on_chain.report_hash {
        return Err(EpochError::NotThePostedReport { epoch: header.epoch });
    }
    let parsed = parse_lines(report)?;
    let hashes = parsed.iter().map(|(key, line)| leaf_hash(&ovpp::ID, &Pubkey::new_from_array(*key), &line.leaf)).collect();
    let lines: Vec<ReportLine> = parsed.into_iter().map(|(_, line)| line).collect();
    let tree = MerkleTree::new(hashes).ok_or_else(|| EpochError::MalformedReport("no leaves".into()))?;
    let root = tree.root();
    if root != on_chain.root || header.cumulative_total != on_chain.cumulative_total || lines.len() as u64 != on_chain.leaf_count {
        return Err(EpochError::NotThePostedReport { epoch: header.epoch });
    }
    let closed = ClosedEpoch { header, lines, report: report.to_vec(), report_hash, root, tree };
    store.save_epoch(&closed, now).await?;
    store.mark_epoch_posted(closed.header.epoch, None, on_chain.posted_at).await?;
    Ok(closed)
}

/// Parses a published report's header (enough to know which epoch and span it claims).
pub fn parse_header(report: &[u8]) -> Result<ReportHeader, EpochError> {
    let first = report.split(|&b| b == b'\n').next().unwrap_or_default();
    serde_json::from_slice(first).map_err(|e| EpochError::MalformedReport(format!("header line: {e}")))
}

/// Closes `spec` from what `store` holds: the previous epoch's leaves and total, the
/// epoch's telemetry and rejections, and the registry snapshot given.
pub async fn close(
    store: &Store,
    spec: &EpochSpec,
    rules: &ScoringRules,
    registry: &[RegisteredDevice],
    cutoff: Option<&HashMap<DeviceKey, u64>>,
) -> Result<ClosedEpoch, EpochError> {
    let (previous, previous_total) = if spec.epoch <= 1 {
        (Leaves::new(), 0)
    } else {
        let record = store.epoch(spec.epoch - 1).await?.ok_or(EpochError::PreviousNotClosed(spec.epoch, spec.epoch - 1))?;
        (store.epoch_leaves(spec.epoch - 1).await?.into_iter().collect(), record.cumulative_total)
    };
    let inputs = store.epoch_inputs(spec.start_ts, spec.end_ts, rules.stress_hours_utc, cutoff).await?;
    let registry: HashMap<DeviceKey, RegisteredDevice> = registry.iter().map(|d| (d.key, d.clone())).collect();
    compute(spec, rules, &registry, &previous, previous_total, &inputs)
}

/// What an oracle operator sets for epochs (all oracles of a network agree on these, or
/// their reports differ and co-signers refuse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochSettings {
    /// OVPP base units per epoch (capped by the chain's emission cap).
    pub emission: u64,
    pub rules: ScoringRules,
    /// How long after an epoch's end it is closed, so late devices can still report.
    pub close_grace_secs: i64,
}

/// The next epoch this oracle closes: the one after its latest closed epoch, or epoch 1.
/// An oracle does not join a network mid-way: it needs the previous epoch's leaves.
pub async fn next_epoch(store: &Store, config: &Config) -> Result<u64, EpochError> {
    match store.epochs(1).await?.first() {
        Some(latest) => Ok(latest.epoch + 1),
        None if config.last_epoch == 0 => Ok(1),
        None => Err(EpochError::PreviousNotClosed(config.last_epoch + 1, config.last_epoch)),
    }
}

/// The spec of `epoch` on the chain's schedule, checked to start where the previous epoch
/// closed here ended (an epoch-length change re-bases the schedule from the last *posted*
/// epoch; an epoch closed but not yet posted would otherwise overlap or leave a gap).
async fn scheduled(store: &Store, config: &Config, epoch: u64, emission: u64) -> Result<EpochSpec, EpochError> {
    let spec = EpochSpec::from_config(config, epoch, emission).ok_or(EpochError::NotScheduled(epoch))?;
    if let Some(previous) = store.epoch(epoch - 1).await? {
        if previous.end_ts != spec.start_ts {
            return Err(EpochError::ScheduleChanged {
                epoch,
                start_ts: spec.start_ts,
                previous: previous.epoch,
                previous_end: previous.end_ts,
            });
        }
    }
    Ok(spec)
}

/// Closes the next epoch if it ended at least the grace period ago (so late devices had
/// time to send): stops ingest for it, computes, and stores it. `None` while not yet due.
pub async fn close_due(
    store: &Store,
    ingestor: &Ingestor,
    config: &Config,
    settings: &EpochSettings,
    registry: &[RegisteredDevice],
    now: i64,
) -> Result<Option<ClosedEpoch>, EpochError> {
    let epoch = next_epoch(store, config).await?;
    let spec = scheduled(store, config, epoch, settings.emission).await?;
    if now < spec.end_ts.saturating_add(settings.close_grace_secs) {
        return Ok(None);
    }
    ingestor.close_until(spec.end_ts).await.map_err(|e| EpochError::Ingest(e.to_string()))?;
    let closed = close(store, &spec, &settings.rules, registry, None).await?;
    store.save_epoch(&closed, now).await?;
    Ok(Some(closed))
}

/// Co-signing a published `report`: it must be this oracle's next epoch, already ended,
/// with the chain's schedule and this oracle's emission; then ingest for it stops, the
/// epoch is recomputed from this oracle's own telemetry and registry, and returned (to
/// store and sign) only if the report is byte-identical.
pub async fn cosign(
    store: &Store,
    ingestor: &Ingestor,
    report: &[u8],
    config: &Config,
    settings: &EpochSettings,
    registry: &[RegisteredDevice],
    now: i64,
) -> Result<ClosedEpoch, EpochError> {
    let header = parse_header(report)?;
    let claimed = EpochSpec { epoch: header.epoch, start_ts: header.start_ts, end_ts: header.end_ts, emission: header.emission };
    let next = next_epoch(store, config).await?;
    if header.epoch != next {
        return Err(EpochError::NotNextToClose { epoch: header.epoch, next });
    }
    let expected = scheduled(store, config, header.epoch, settings.emission).await?;
    if claimed != expected {
        return Err(EpochError::SpecMismatch { claimed, expected });
    }
    if now < expected.end_ts {
        return Err(EpochError::NotEnded { epoch: expected.epoch, end_ts: expected.end_ts });
    }
    // The report names, per device, the last batch it used. Whatever reached this oracle by
    // the deadline must be in it (a primary cannot leave out data it had in time); later
    // batches are left out exactly as the primary left them out.
    let cutoff = report_cutoff(report)?;
    let deadline = expected.end_ts.saturating_add(settings.close_grace_secs);
    for (device, timely) in store.timely_sequences(expected.start_ts, expected.end_ts, deadline).await? {
        if registry.iter().any(|d| d.key == device) && cutoff.get(&device).is_none_or(|&used| used < timely) {
            return Err(EpochError::OmitsTimelyData { device: bs58::encode(device).into_string(), sequence: timely });
        }
    }
    ingestor.close_until(expected.end_ts).await.map_err(|e| EpochError::Ingest(e.to_string()))?;
    let mine = close(store, &expected, &settings.rules, registry, Some(&cutoff)).await?;
    if mine.report != report {
        let ours: Vec<&[u8]> = mine.report.split(|&b| b == b'\n').collect();
        let theirs: Vec<&[u8]> = report.split(|&b| b == b'\n').collect();
        let line = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i)).unwrap_or(0);
        let show = |l: Option<&&[u8]>| l.map_or("(no such line)".into(), |l| String::from_utf8_lossy(l).into_owned());
        let detail = format!("recomputed {} / published {}", show(ours.get(line)), show(theirs.get(line)));
        return Err(EpochError::ReportMismatch { line: line + 1, detail });
    }
    store.save_epoch(&mine, now).await?;
    Ok(mine)
}

/// What `post_epoch` carries for a stored epoch.
pub fn record_args(record: &db::EpochRecord) -> PostEpochArgs {
    PostEpochArgs {
        epoch: record.epoch,
        root: record.root,
        cumulative_total: record.cumulative_total,
        leaf_count: record.leaf_count,
        report_hash: record.report_hash,
    }
}

/// A stored epoch's Merkle tree with each device's leaf, for serving proofs.
pub struct EpochTree {
    pub epoch: u64,
    tree: MerkleTree,
    leaves: HashMap<DeviceKey, (usize, RewardLeaf)>,
}

impl EpochTree {
    /// From the leaves in leaf order (as `Store::epoch_leaves` returns them).
    pub fn new(epoch: u64, leaves: Vec<(DeviceKey, RewardLeaf)>) -> Self {
        let hashes = leaves.iter().map(|(key, leaf)| leaf_hash(&ovpp::ID, &Pubkey::new_from_array(*key), leaf)).collect();
        let tree = MerkleTree::new(hashes).unwrap_or_else(|| MerkleTree::new(vec![[0; 32]]).expect("one leaf"));
        Self { epoch, tree, leaves: leaves.into_iter().enumerate().map(|(i, (key, leaf))| (key, (i, leaf))).collect() }
    }

    pub fn root(&self) -> Hash32 {
        self.tree.root()
    }

    pub fn proof(&self, device: &DeviceKey) -> Option<(RewardLeaf, Vec<Hash32>)> {
        let (index, leaf) = self.leaves.get(device)?;
        Some((*leaf, self.tree.proof(*index)?))
    }
}
