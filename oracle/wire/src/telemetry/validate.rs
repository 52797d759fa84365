//! The ingest rules: a batch is accepted whole or rejected whole with one machine-readable
//! reason. Pure functions of the batch, the device's on-chain profile, what was accepted
//! before, and the clock, so every rule is unit-testable and reproducible.

use ovpp::state::{DeviceKind, DeviceStatus};

use super::{Reading, TelemetryBatch};

/// The declared parameters ingest holds readings to (synced from the chain's `Device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    pub kind: DeviceKind,
    pub status: DeviceStatus,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
}

/// What ingest has accepted from a device so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCursor {
    pub last_sequence: Option<u64>,
    /// End (unix s) of the latest accepted interval.
    pub last_interval_end: Option<i64>,
    /// Signature of the latest accepted batch: a device retrying it (its answer was lost
    /// in a crash or a dropped connection) is told it is already stored, not replayed.
    /// `validate` does not look at it.
    pub last_signature: Option<[u8; 64]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How far an interval's end may lie in the future (device clocks drift).
    pub max_clock_skew_secs: i64,
    /// Readings whose interval starts longer ago than this are refused.
    pub retention_secs: i64,
    pub min_interval_secs: u32,
    pub max_interval_secs: u32,
    pub max_readings_per_batch: usize,
    /// Metering tolerance above the rating, in permille (meters and inverters are not exact).
    pub tolerance_permille: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_clock_skew_secs: 30,
            retention_secs: 7 * 24 * 3600,
            min_interval_secs: 10,
            max_interval_secs: 3600,
            max_readings_per_batch: 1440,
            tolerance_permille: 50,
        }
    }
}

/// Why a batch was refused. `code()` is the stable machine-readable name used in API error
/// bodies and metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    #[error("signature does not verify with the device key")]
    BadSignature,
    #[error("device key is not registered on-chain")]
    UnknownDevice,
    #[error("device is suspended")]
    DeviceSuspended,
    #[error("device is retired")]
    DeviceRetired,
    #[error("sequence is not above the last accepted one (replayed or out of order)")]
    ReplayedSequence,
    #[error("sequence above 2^63 - 1 (stores keep it as a signed 64-bit integer)")]
    SequenceTooLarge,
    #[error("batch has no readings")]
    EmptyBatch,
    #[error("batch has more readings than allowed")]
    TooManyReadings,
    #[error("interval length outside the allowed range")]
    BadIntervalLength,
    #[error("interval ends in the future beyond the allowed clock skew")]
    IntervalInFuture,
    #[error("interval is older than the retention window")]
    IntervalTooOld,
    #[error("intervals overlap each other or already accepted readings")]
    OverlappingIntervals,
    #[error("average power above the device's rated power")]
    PowerAboveRating,
    #[error("energy above rated power times interval length")]
    EnergyAbovePowerTime,
    #[error("state of charge outside 0..=1000 permille")]
    SocOutOfRange,
    #[error("generation reported by a device kind that cannot generate")]
    GenerationNotPossible,
    #[error("state of charge or storage reported by a device without storage")]
    StorageNotPossible,
    #[error("available storage above the declared energy capacity")]
    StorageAboveCapacity,
    #[error("flexibility above the device's rated power")]
    FlexibilityAboveRating,
    #[error("interval starts inside an epoch that is already closed")]
    EpochClosed,
}

impl Reject {
    pub const ALL: [Reject; 20] = [
        Reject::BadSignature,
        Reject::UnknownDevice,
        Reject::DeviceSuspended,
        Reject::DeviceRetired,
        Reject::ReplayedSequence,
        Reject::SequenceTooLarge,
        Reject::EmptyBatch,
        Reject::TooManyReadings,
        Reject::BadIntervalLength,
        Reject::IntervalInFuture,
        Reject::IntervalTooOld,
        Reject::OverlappingIntervals,
        Reject::PowerAboveRating,
        Reject::EnergyAbovePowerTime,
        Reject::SocOutOfRange,
        Reject::GenerationNotPossible,
        Reject::StorageNotPossible,
        Reject::StorageAboveCapacity,
        Reject::FlexibilityAboveRating,
        Reject::EpochClosed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reject::BadSignature => "bad_signature",
            Reject::UnknownDevice => "unknown_device",
            Reject::DeviceSuspended => "device_suspended",
            Reject::DeviceRetired => "device_retired",
            Reject::ReplayedSequence => "replayed_sequence",
            Reject::SequenceTooLarge => "sequence_too_large",
            Reject::EmptyBatch => "empty_batch",
            Reject::TooManyReadings => "too_many_readings",
            Reject::BadIntervalLength => "bad_interval_length",
            Reject::IntervalInFuture => "interval_in_future",
            Reject::IntervalTooOld => "interval_too_old",
            Reject::OverlappingIntervals => "overlapping_intervals",
            Reject::PowerAboveRating => "power_above_rating",
            Reject::EnergyAbovePowerTime => "energy_above_power_time",
            Reject::SocOutOfRange => "soc_out_of_range",
            Reject::GenerationNotPossible => "generation_not_possible",
            Reject::StorageNotPossible => "storage_not_possible",
            Reject::StorageAboveCapacity => "storage_above_capacity",
            Reject::FlexibilityAboveRating => "flexibility_above_rating",
            Reject::EpochClosed => "epoch_closed",
        }
    }
}

/// Only PV and site controllers (which may include PV) generate; batteries and EVs
/// discharge, which is export, not generation.
pub fn can_generate(kind: DeviceKind) -> bool {
    matches!(kind, DeviceKind::RooftopSolar | DeviceKind::EnergyManagementSystem)
}

/// Checks everything but the signature (verified separately, in batches). `device` is
/// `None` when the key is not registered on-chain.
pub fn validate(
    batch: &TelemetryBatch,
    device: Option<&DeviceProfile>,
    cursor: &DeviceCursor,
    now: i64,
    policy: &Policy,
) -> Result<(), Reject> {
    let device = device.ok_or(Reject::UnknownDevice)?;
    match device.status {
        DeviceStatus::Active => {}
        DeviceStatus::Suspended => return Err(Reject::DeviceSuspended),
        DeviceStatus::Retired => return Err(Reject::DeviceRetired),
    }
    if cursor.last_sequence.is_some_and(|last| batch.sequence <= last) {
        return Err(Reject::ReplayedSequence);
    }
    if batch.sequence > i64::MAX as u64 {
        return Err(Reject::SequenceTooLarge);
    }
    if batch.readings.is_empty() {
        return Err(Reject::EmptyBatch);
    }
    if batch.readings.len() > policy.max_readings_per_batch {
        return Err(Reject::TooManyReadings);
    }
    let mut previous_end = cursor.last_interval_end;
    for reading in &batch.readings {
        let end = check_interval(reading, previous_end, now, policy)?;
        check_physics(reading, device, policy)?;
        previous_end = Some(end);
    }
    Ok(())
}

/// Returns the interval's end.
fn check_interval(reading: &Reading, previous_end: Option<i64>, now: i64, policy: &Policy) -> Result<i64, Reject> {
    if !(policy.min_interval_secs..=policy.max_interval_secs).contains(&reading.interval_secs) {
        return Err(Reject::BadIntervalLength);
    }
    let end = reading.interval_start.checked_add(i64::from(reading.interval_secs)).ok_or(Reject::IntervalInFuture)?;
    if end > now.saturating_add(policy.max_clock_skew_secs) {
        return Err(Reject::IntervalInFuture);
    }
    if reading.interval_start < now.saturating_sub(policy.retention_secs) {
        return Err(Reject::IntervalTooOld);
    }
    if previous_end.is_some_and(|prev| reading.interval_start < prev) {
        return Err(Reject::OverlappingIntervals);
    }
    Ok(end)
}

fn check_physics(r: &Reading, device: &DeviceProfile, policy: &Policy) -> Result<(), Reject> {
    let tolerated = |value: u64| u128::from(value) * u128::from(1000 + policy.tolerance_permille) / 1000;
    let power_limit = tolerated(device.rated_power_w);
    if u128::from(r.average_power_w.unsigned_abs()) > power_limit {
        return Err(Reject::PowerAboveRating);
    }
    // Wh = W * s / 3600, rounded up in the device's favour.
    let energy_limit = (power_limit * u128::from(r.interval_secs)).div_ceil(3600);
    let flows = [r.energy_generated_wh, r.energy_consumed_wh, r.energy_imported_wh, r.energy_exported_wh];
    if flows.iter().any(|&wh| u128::from(wh) > energy_limit) {
        return Err(Reject::EnergyAbovePowerTime);
    }
    if r.energy_generated_wh > 0 && !can_generate(device.kind) {
        return Err(Reject::GenerationNotPossible);
    }
    let has_storage = device.energy_capacity_wh > 0;
    if !has_storage && (r.state_of_charge_permille.is_some() || r.storage_available_wh.is_some()) {
        return Err(Reject::StorageNotPossible);
    }
    if r.state_of_charge_permille.is_some_and(|soc| soc > 1000) {
        return Err(Reject::SocOutOfRange);
    }
    if r.storage_available_wh.is_some_and(|wh| u128::from(wh) > tolerated(device.energy_capacity_wh)) {
        return Err(Reject::StorageAboveCapacity);
    }
    if u128::from(r.flex_up_w) > power_limit || u128::from(r.flex_down_w) > power_limit {
        return Err(Reject::FlexibilityAboveRating);
    }
    Ok(())
}

/// How an accepted batch was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now.
    Stored,
    /// A retry of the device's latest accepted batch (same sequence, same signature):
    /// stored before, not stored again, and not held against the device.
    AlreadyStored,
}

/// The fate of one batch.
pub type Outcome = Result<Accepted, Reject>;
