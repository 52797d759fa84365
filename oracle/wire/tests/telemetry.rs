//! The telemetry wire format and every ingest rejection reason.

use ed25519_dalek::SigningKey;
use ovpp::state::{DeviceKind, DeviceStatus};
use ovpp_wire::telemetry::validate::{validate, DeviceCursor, DeviceProfile, Policy, Reject};
use ovpp_wire::telemetry::{GridResponse, Reading, SignedBatch, TelemetryBatch};
use proptest::prelude::*;

const NOW: i64 = 1_790_000_000;

fn battery() -> DeviceProfile {
    DeviceProfile { kind: DeviceKind::HomeBattery, status: DeviceStatus::Active, rated_power_w: 5_000, energy_capacity_wh: 13_500 }
}

fn solar() -> DeviceProfile {
    DeviceProfile { kind: DeviceKind::RooftopSolar, status: DeviceStatus::Active, rated_power_w: 9_000, energy_capacity_wh: 0 }
}

/// A 15-minute battery reading ending 15 minutes before NOW + 15 * (i+1) minutes.
fn reading(i: i64) -> Reading {
    Reading {
        interval_start: NOW - 4 * 900 + i * 900,
        interval_secs: 900,
        energy_generated_wh: 0,
        energy_consumed_wh: 0,
        energy_imported_wh: 0,
        energy_exported_wh: 1_000,
        average_power_w: 4_000,
        state_of_charge_permille: Some(640),
        storage_available_wh: Some(13_000),
        flex_up_w: 1_000,
        flex_down_w: 5_000,
        grid_response: GridResponse::FollowingDispatch,
        online: true,
    }
}

fn batch(readings: Vec<Reading>) -> TelemetryBatch {
    TelemetryBatch { device_key: key().verifying_key().to_bytes(), sequence: 7, readings }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn check(b: &TelemetryBatch, device: DeviceProfile) -> Result<(), Reject> {
    validate(b, Some(&device), &DeviceCursor::default(), NOW, &Policy::default())
}

fn with(f: impl FnOnce(&mut Reading)) -> TelemetryBatch {
    let mut r = reading(0);
    f(&mut r);
    batch(vec![r])
}

#[test]
fn a_realistic_batch_is_accepted_and_round_trips() {
    let b = batch((0..4).map(reading).collect());
    assert_eq!(check(&b, battery()), Ok(()));
    let signed = b.clone().sign(&key());
    assert!(signed.verify_signature());
    let decoded = SignedBatch::decode(&signed.encode()).unwrap();
    assert_eq!(decoded, signed);
}

#[test]
fn signatures_bind_every_byte_and_the_key() {
    let signed = batch(vec![reading(0)]).sign(&key());
    let mut tampered = signed.clone();
    tampered.batch.readings[0].energy_exported_wh += 1;
    assert!(!tampered.verify_signature());
    let mut other_key = signed.clone();
    other_key.batch.device_key = SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes();
    assert!(!other_key.verify_signature());
    let mut bad_sig = signed.clone();
    bad_sig.signature[0] ^= 1;
    assert!(!bad_sig.verify_signature());
    let mut not_a_key = signed;
    not_a_key.batch.device_key = [0xff; 32];
    assert!(!not_a_key.verify_signature());
}

#[test]
fn device_identity_rejections() {
    let b = batch(vec![reading(0)]);
    let policy = Policy::default();
    assert_eq!(validate(&b, None, &DeviceCursor::default(), NOW, &policy), Err(Reject::UnknownDevice));
    let suspended = DeviceProfile { status: DeviceStatus::Suspended, ..battery() };
    assert_eq!(check(&b, suspended), Err(Reject::DeviceSuspended));
    let retired = DeviceProfile { status: DeviceStatus::Retired, ..battery() };
    assert_eq!(check(&b, retired), Err(Reject::DeviceRetired));
}

#[test]
fn sequence_and_interval_rejections() {
    let policy = Policy::default();
    let b = batch(vec![reading(0)]);
    for last in [7, 8] {
        let cursor = DeviceCursor { last_sequence: Some(last), ..DeviceCursor::default() };
        assert_eq!(validate(&b, Some(&battery()), &cursor, NOW, &policy), Err(Reject::ReplayedSequence));
    }
    let cursor = DeviceCursor { last_sequence: Some(6), last_interval_end: Some(reading(0).interval_start + 1), last_signature: None };
    assert_eq!(validate(&b, Some(&battery()), &cursor, NOW, &policy), Err(Reject::OverlappingIntervals));
    // Stores keep sequences as signed 64-bit integers: the largest is 2^63 - 1.
    let mut huge = batch(vec![reading(0)]);
    huge.sequence = i64::MAX as u64 + 1;
    assert_eq!(validate(&huge, Some(&battery()), &DeviceCursor::default(), NOW, &policy), Err(Reject::SequenceTooLarge));
    huge.sequence = i64::MAX as u64;
    assert_eq!(validate(&huge, Some(&battery()), &DeviceCursor::default(), NOW, &policy), Ok(()));
    assert_eq!(check(&batch(vec![]), battery()), Err(Reject::EmptyBatch));
    assert_eq!(check(&batch(vec![reading(0); 1441]), battery()), Err(Reject::TooManyReadings));
    assert_eq!(check(&with(|r| r.interval_secs = 5), battery()), Err(Reject::BadIntervalLength));
    assert_eq!(check(&with(|r| r.interval_secs = 7200), battery()), Err(Reject::BadIntervalLength));
    assert_eq!(check(&with(|r| r.interval_start = NOW - 800), battery()), Err(Reject::IntervalInFuture));
    assert_eq!(check(&with(|r| r.interval_start = i64::MAX - 10), battery()), Err(Reject::IntervalInFuture));
    // Within the 30 s skew is fine.
    assert_eq!(check(&with(|r| r.interval_start = NOW - 880), battery()), Ok(()));
    assert_eq!(check(&with(|r| r.interval_start = NOW - 8 * 24 * 3600), battery()), Err(Reject::IntervalTooOld));
    // Overlap inside one batch, and a duplicate interval.
    let overlapping = batch(vec![reading(1), Reading { interval_start: reading(1).interval_start + 60, ..reading(1) }]);
    assert_eq!(check(&overlapping, battery()), Err(Reject::OverlappingIntervals));
    assert_eq!(check(&batch(vec![reading(1), reading(1)]), battery()), Err(Reject::OverlappingIntervals));
    assert_eq!(check(&batch(vec![reading(2), reading(1)]), battery()), Err(Reject::OverlappingIntervals));
}

#[test]
fn physics_rejections() {
    // 5 kW battery, 5% tolerance: 5250 W max; 15 min -> 1313 Wh max per flow.
    assert_eq!(check(&with(|r| r.average_power_w = 5_250), battery()), Ok(()));
    assert_eq!(check(&with(|r| r.average_power_w = 5_251), battery()), Err(Reject::PowerAboveRating));
    assert_eq!(check(&with(|r| r.average_power_w = -6_000), battery()), Err(Reject::PowerAboveRating));
    assert_eq!(check(&with(|r| r.average_power_w = i32::MIN), battery()), Err(Reject::PowerAboveRating));
    assert_eq!(check(&with(|r| r.energy_exported_wh = 1_313), battery()), Ok(()));
    assert_eq!(check(&with(|r| r.energy_exported_wh = 1_314), battery()), Err(Reject::EnergyAbovePowerTime));
    assert_eq!(check(&with(|r| r.energy_imported_wh = u32::MAX), battery()), Err(Reject::EnergyAbovePowerTime));
    assert_eq!(check(&with(|r| r.state_of_charge_permille = Some(1001)), battery()), Err(Reject::SocOutOfRange));
    assert_eq!(check(&with(|r| r.state_of_charge_permille = Some(1000)), battery()), Ok(()));
    assert_eq!(check(&with(|r| r.energy_generated_wh = 10), battery()), Err(Reject::GenerationNotPossible));
    assert_eq!(check(&with(|r| r.storage_available_wh = Some(15_000)), battery()), Err(Reject::StorageAboveCapacity));
    assert_eq!(check(&with(|r| r.flex_down_w = 6_000), battery()), Err(Reject::FlexibilityAboveRating));

    // A PV system generates but stores nothing.
    let pv = |f: fn(&mut Reading)| {
        with(|r| {
            r.state_of_charge_permille = None;
            r.storage_available_wh = None;
            r.energy_generated_wh = 2_000;
            f(r)
        })
    };
    assert_eq!(check(&pv(|_| {}), solar()), Ok(()));
    assert_eq!(check(&pv(|r| r.state_of_charge_permille = Some(500)), solar()), Err(Reject::StorageNotPossible));
    assert_eq!(check(&pv(|r| r.storage_available_wh = Some(1)), solar()), Err(Reject::StorageNotPossible));
    // A smart meter produces nothing.
    let meter = DeviceProfile { kind: DeviceKind::SmartMeter, rated_power_w: 24_000, energy_capacity_wh: 0, ..solar() };
    assert_eq!(check(&pv(|_| {}), meter), Err(Reject::GenerationNotPossible));
}

#[test]
fn every_reason_has_a_distinct_code() {
    let codes: std::collections::HashSet<_> = Reject::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reject::ALL.len());
}

/// The test vector published in the README for gateway implementers.
#[test]
fn published_test_vector() {
    let signed = TelemetryBatch {
        device_key: key().verifying_key().to_bytes(),
        sequence: 1,
        readings: vec![Reading {
            interval_start: 1_790_000_000,
            interval_secs: 900,
            energy_generated_wh: 0,
            energy_consumed_wh: 120,
            energy_imported_wh: 0,
            energy_exported_wh: 900,
            average_power_w: 3_600,
            state_of_charge_permille: Some(640),
            storage_available_wh: None,
            flex_up_w: 1_400,
            flex_down_w: 5_000,
            grid_response: GridResponse::FollowingDispatch,
            online: true,
        }],
    }
    .sign(&key());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(hex(&signed.encode()), include_str!("telemetry_vector.hex").trim());
}

proptest! {
    /// Random bytes never panic the decoder.
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = SignedBatch::decode(&bytes);
    }

    /// Mutated valid batches never panic decoding, verification or validation.
    #[test]
    fn mutated_batches_never_panic(at in any::<prop::sample::Index>(), value in any::<u8>(), now in any::<i64>()) {
        let mut bytes = batch((0..4).map(reading).collect()).sign(&key()).encode();
        let i = at.index(bytes.len());
        bytes[i] = value;
        if let Ok(signed) = SignedBatch::decode(&bytes) {
            let _ = signed.verify_signature();
            let _ = validate(&signed.batch, Some(&battery()), &DeviceCursor::default(), now, &Policy::default());
        }
    }

    /// Random readings never panic validation, whatever the device.
    #[test]
    fn random_readings_never_panic(
        start in any::<i64>(), secs in any::<u32>(), flows in any::<[u32; 4]>(), power in any::<i32>(),
        soc in any::<Option<u16>>(), storage in any::<Option<u32>>(), flex in any::<(u32, u32)>(),
        rated in any::<u64>(), capacity in any::<u64>(), seq in any::<u64>(), last in any::<Option<u64>>(),
        last_end in any::<Option<i64>>(), now in any::<i64>(),
    ) {
        let r = Reading {
            interval_start: start, interval_secs: secs,
            energy_generated_wh: flows[0], energy_consumed_wh: flows[1], energy_imported_wh: flows[2], energy_exported_wh: flows[3],
            average_power_w: power, state_of_charge_permille: soc, storage_available_wh: storage,
            flex_up_w: flex.0, flex_down_w: flex.1, grid_response: GridResponse::Idle, online: true,
        };
        let b = TelemetryBatch { device_key: [0; 32], sequence: seq, readings: vec![r] };
        let device = DeviceProfile { kind: DeviceKind::EnergyManagementSystem, status: DeviceStatus::Active, rated_power_w: rated, energy_capacity_wh: capacity };
        let _ = validate(&b, Some(&device), &DeviceCursor { last_sequence: last, last_interval_end: last_end, last_signature: None }, now, &Policy::default());
    }
}
