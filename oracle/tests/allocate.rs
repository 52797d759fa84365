//! Allocation: within every device's limit, meets the target (plus reserve) when the fleet
//! can, says the shortfall when it cannot, and spreads the load by capability and
//! reliability as the formulation in `dispatch::allocate` states.

use ovpp_oracle::dispatch::allocate::{allocate, Candidate, WEIGHT_SCALE};
use proptest::prelude::*;

fn device(i: u8, capacity_w: u64, weight_ppm: u32) -> Candidate {
    Candidate { device: [i; 32], capacity_w, weight_ppm }
}

fn points(a: &ovpp_oracle::dispatch::allocate::Allocation) -> Vec<u64> {
    a.set_points.iter().map(|(_, p)| *p).collect()
}

#[test]
fn equally_reliable_devices_give_the_same_share_of_their_capability() {
    let fleet = [device(1, 1_000, WEIGHT_SCALE), device(2, 2_000, WEIGHT_SCALE), device(3, 3_000, WEIGHT_SCALE)];
    let a = allocate(&fleet, 3_000, 0);
    assert_eq!((points(&a), a.planned_w, a.shortfall_w), (vec![500, 1_000, 1_500], 3_000, 0));
}

#[test]
fn less_reliable_devices_are_asked_for_less() {
    // p = λ w c: 1000 λ + 500 λ = 900, so λ = 0.6.
    let fleet = [device(1, 1_000, WEIGHT_SCALE), device(2, 1_000, WEIGHT_SCALE / 2)];
    assert_eq!(points(&allocate(&fleet, 900, 0)), vec![600, 300]);
}

#[test]
fn a_saturated_device_gives_all_it_has_and_the_rest_is_spread() {
    // The reliable small device saturates; the large unreliable one takes the rest.
    let fleet = [device(1, 100, WEIGHT_SCALE), device(2, 10_000, WEIGHT_SCALE / 100)];
    let a = allocate(&fleet, 5_000, 0);
    assert_eq!(points(&a), vec![100, 4_900]);
}

#[test]
fn the_reserve_margin_is_planned_on_top_and_a_shortfall_is_reported() {
    let fleet = [device(1, 5_000, WEIGHT_SCALE), device(2, 5_000, WEIGHT_SCALE)];
    let a = allocate(&fleet, 4_000, 1_000); // +10 %
    assert_eq!((a.planned_w, a.shortfall_w), (4_400, 0));
    // More than the fleet has: everyone at capacity, 2 kW short of the target.
    let a = allocate(&fleet, 12_000, 1_000);
    assert_eq!((points(&a), a.planned_w, a.shortfall_w), (vec![5_000, 5_000], 10_000, 2_000));
    // Enough for the target but not for the reserve: everything, and no shortfall.
    let a = allocate(&fleet, 9_500, 1_000);
    assert_eq!((a.planned_w, a.shortfall_w), (10_000, 0));
    assert_eq!(allocate(&[], 1_000, 0).shortfall_w, 1_000);
}

proptest! {
    #[test]
    fn limits_hold_and_the_target_is_met_when_it_can_be(
        fleet in prop::collection::vec((0u64..20_000_000, 0u32..=WEIGHT_SCALE), 0..300),
        target in 0u64..2_000_000_000,
        reserve_bps in 0u32..3_000,
    ) {
        let key = |i: usize| { let mut k = [0u8; 32]; k[..8].copy_from_slice(&(i as u64).to_le_bytes()); k };
        let fleet: Vec<Candidate> = fleet.iter().enumerate().map(|(i, &(c, w))| Candidate { device: key(i), capacity_w: c, weight_ppm: w }).collect();
        let a = allocate(&fleet, target, reserve_bps);
        let capability: u128 = fleet.iter().map(|c| u128::from(c.capacity_w)).sum();
        let goal = u128::from(target) * (10_000 + u128::from(reserve_bps)) / 10_000;
        // Never above a device's limit (set points are in input order, zero ones left out).
        let mut next = 0;
        for (device, point) in &a.set_points {
            while fleet[next].device != *device || fleet[next].capacity_w == 0 { next += 1; }
            prop_assert!(*point <= fleet[next].capacity_w);
            next += 1;
        }
        let total: u128 = a.set_points.iter().map(|(_, p)| u128::from(*p)).sum();
        prop_assert_eq!(total, u128::from(a.planned_w));
        prop_assert_eq!(total, goal.min(capability));
        prop_assert_eq!(u128::from(a.shortfall_w), u128::from(target).saturating_sub(capability));
        // The optimum's shape: devices below their limit all give the same fraction of
        // their weighted capability (up to the whole-watt rounding, at most a watt each plus
        // the remainder handed to one device).
        let given: std::collections::HashMap<[u8; 32], u64> = a.set_points.iter().copied().collect();
        let weighted = |c: &Candidate| f64::from(c.weight_ppm.clamp(1, WEIGHT_SCALE)) / f64::from(WEIGHT_SCALE) * c.capacity_w as f64;
        let partial: Vec<(f64, f64)> = fleet
            .iter()
            .filter(|c| c.capacity_w > 0 && given.get(&c.device).copied().unwrap_or(0) < c.capacity_w)
            .map(|c| (given.get(&c.device).copied().unwrap_or(0) as f64, weighted(c)))
            .collect();
        if goal < capability && partial.len() > 1 {
            let slack = fleet.len() as f64 + 1.0;
            let lambda_low = partial.iter().map(|(p, wc)| (p - slack) / wc).fold(f64::MIN, f64::max);
            let lambda_high = partial.iter().map(|(p, wc)| (p + slack) / wc).fold(f64::MAX, f64::min);
            prop_assert!(lambda_low <= lambda_high + 1e-9, "unequal shares: {partial:?}");
        }
    }
}
