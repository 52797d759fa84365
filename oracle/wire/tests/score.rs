//! The scoring rules as owners read them in SCORING.md: each component, the quality
//! multiplier and its floor, reputation, and the emission split.

use ovpp_wire::score::{next_reputation, score, split_emission, EpochInputs, ScoringRules};
use proptest::prelude::*;

const HOUR: u64 = 3600;

/// A rooftop PV system that reported every 5 minutes of a 1-hour epoch.
fn solar_hour() -> EpochInputs {
    EpochInputs { covered_secs: HOUR, online_secs: HOUR, generated_wh: 6_000, accepted_batches: 12, ..EpochInputs::default() }
}

#[test]
fn each_component_follows_its_published_rate() {
    let rules = ScoringRules::default();
    let s = score(&solar_hour(), HOUR, &rules);
    // 6 kWh x 1000 + 1 h online x 100, at full quality.
    assert_eq!((s.generation, s.online, s.quality_bps, s.points), (6_000, 100, 10_000, 6_100));

    let battery = EpochInputs {
        covered_secs: HOUR,
        online_secs: HOUR,
        discharged_wh: 4_000,
        storage_available_wh_hours: 13_000,
        stress_flex_wh: 10_000,
        demand_response_wh: 2_000,
        accepted_batches: 12,
        ..EpochInputs::default()
    };
    let s = score(&battery, HOUR, &rules);
    // Storage: 4 kWh shifted x 2000 + 13 kWh.h available x 20; stability 10 kWh x 500;
    // demand response 2 kWh x 5000; online 100.
    assert_eq!((s.storage, s.stability, s.demand_response), (8_000 + 260, 5_000, 10_000));
    assert_eq!(s.points, 8_260 + 5_000 + 10_000 + 100);
}

#[test]
fn missing_and_rejected_data_lower_quality_down_to_nothing() {
    let rules = ScoringRules::default();
    // Three quarters of the epoch covered: quality 75 %, points scaled.
    let partial =
        EpochInputs { covered_secs: 2_700, online_secs: 2_700, generated_wh: 6_000, accepted_batches: 9, ..EpochInputs::default() };
    let s = score(&partial, HOUR, &rules);
    assert_eq!(s.quality_bps, 7_500);
    assert_eq!(s.points, (6_000 + 75) * 3 / 4);
    // Every other batch rejected: half the quality again.
    let rejected = EpochInputs { rejected_batches: 9, ..partial };
    assert_eq!(score(&rejected, HOUR, &rules).quality_bps, 3_750);
    // Below the 50 % floor: no points at all, however much was generated.
    assert_eq!(score(&rejected, HOUR, &rules).points, 0);
    // Silence: nothing.
    assert_eq!(score(&EpochInputs::default(), HOUR, &rules).points, 0);
}

#[test]
fn reputation_follows_quality_and_faults() {
    let rules = ScoringRules::default();
    let good = solar_hour();
    let s = score(&good, HOUR, &rules);
    assert_eq!(next_reputation(5_000, &s, &good, &rules), (7 * 5_000 + 3 * 10_000) / 10);
    let faulty = EpochInputs { fault_intervals: 2, ..good };
    assert_eq!(next_reputation(5_000, &s, &faulty, &rules), (7 * 5_000 + 3 * 9_000) / 10);
    let silent = EpochInputs::default();
    assert_eq!(next_reputation(5_000, &score(&silent, HOUR, &rules), &silent, &rules), 3_500);
    assert!(next_reputation(10_000, &s, &good, &rules) <= 10_000);
}

#[test]
fn rules_hash_changes_with_any_weight() {
    let rules = ScoringRules::default();
    let other = ScoringRules { stability_per_kwh: rules.stability_per_kwh + 1, ..rules.clone() };
    assert_ne!(rules.hash(), other.hash());
    assert_eq!(rules.hash(), ScoringRules::default().hash());
}

/// Rules v2 add price response; v1 stays what it was, to the byte, for oracles that keep
/// it until governance votes v2.
#[test]
fn rules_v2_pay_price_response_and_v1_is_unchanged() {
    let (v1, v2) = (ScoringRules::v1(), ScoringRules::default());
    assert_eq!((v1.version(), v2.version()), ("OVPP-SCORING-V1", "OVPP-SCORING-V2"));
    // Both hashes as computed from SCORING.md alone (Python's hashlib and json): v1's is the
    // one before v2 existed; v2's is quoted in `ovpp gov propose scoring-rules-hash --help`.
    assert_eq!(hex::encode(v1.hash()), "5d6285c8595fe298edd8091f5df8d2dd2a1989e98eac794e12f72836b62ebdb0");
    assert_eq!(hex::encode(v2.hash()), "cc6751e3b91124b0cf4c21a14b2cbfcac3346779574a2891c8cad838df3bf8a0");
    assert_ne!(v1.hash(), v2.hash());
    let v1_json = serde_json::to_string(&v1).unwrap();
    assert!(!v1_json.contains("price_response"), "{v1_json}");
    let v1_file: ScoringRules = toml::from_str(&toml::to_string(&v1).unwrap()).unwrap();
    assert_eq!(v1_file, v1, "a v1 rules file reads as v1");

    let battery =
        EpochInputs { price_response_wh: Some(3_000), demand_response_wh: 1_000, ..EpochInputs { accepted_batches: 12, ..solar_hour() } };
    let s2 = score(&battery, HOUR, &v2);
    // 3 kWh moved as the schedule asked x 1000; demand response 1 kWh x 5000.
    assert_eq!((s2.price_response, s2.demand_response), (Some(3_000), 5_000));
    assert_eq!(s2.points, 6_000 + 5_000 + 3_000 + 100);
    let s1 = score(&battery, HOUR, &v1);
    assert_eq!((s1.price_response, s1.points), (None, 6_000 + 5_000 + 100), "v1 does not pay it");
    assert!(!serde_json::to_string(&s1).unwrap().contains("price_response"));
}

#[test]
fn emission_is_split_by_points_times_reputation() {
    assert_eq!(split_emission(1_000, &[(100, 5_000), (100, 10_000), (0, 10_000)]), vec![333, 666, 0]);
    assert_eq!(split_emission(1_000, &[(0, 5_000)]), vec![0]);
}

proptest! {
    #[test]
    fn the_split_never_exceeds_the_emission(
        emission in 0u64..=100_000_000_000_000,
        weights in prop::collection::vec((0u64..u64::MAX / 2, 0u16..=10_000), 0..200),
    ) {
        let amounts = split_emission(emission, &weights);
        let total: u128 = amounts.iter().map(|&a| u128::from(a)).sum();
        prop_assert!(total <= u128::from(emission));
        // Rounding loses less than one unit per device.
        if weights.iter().any(|&(p, r)| p > 0 && r > 0) {
            prop_assert!(u128::from(emission) - total < weights.len() as u128 + 1);
        }
    }

    #[test]
    fn scoring_never_panics(inputs in any::<[u64; 10]>(), epoch_secs in any::<u64>()) {
        let [covered_secs, online_secs, generated_wh, discharged_wh, storage_available_wh_hours, stress_flex_wh, fault_intervals, demand_response_wh, accepted_batches, rejected_batches] = inputs;
        let i = EpochInputs { covered_secs, online_secs, generated_wh, discharged_wh, storage_available_wh_hours, stress_flex_wh, fault_intervals, demand_response_wh, price_response_wh: Some(stress_flex_wh), accepted_batches, rejected_batches, through_sequence: 0 };
        let rules = ScoringRules::default();
        let s = score(&i, epoch_secs, &rules);
        prop_assert!(s.quality_bps <= 10_000);
        prop_assert!(next_reputation(10_000, &s, &i, &rules) <= 10_000);
    }
}
