//! Price-curve schedules stay within every limit, whatever the prices and the device.

use ovpp_oracle::dispatch::schedule::{schedule, step_wh, Storage};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn schedules_respect_power_energy_and_reserve(
        capacity_wh in 1_000u64..200_000,
        power_w in 500u64..100_000,
        stored in 0.0f64..=1.0,
        reserve in 0.0f64..0.5,
        prices in prop::collection::vec(-0.1f64..1.0, 1..48),
        slot_secs in prop::sample::select(vec![300i64, 900, 3600]),
    ) {
        let device = Storage {
            capacity_wh,
            power_w,
            stored_wh: (capacity_wh as f64 * stored) as u64,
            reserve_wh: (capacity_wh as f64 * reserve) as u64,
            efficiency: 0.95,
            wear_per_kwh: 0.02,
            can_discharge: true,
            needs: None,
        };
        let s = schedule(&device, &prices, slot_secs).unwrap();
        prop_assert_eq!(s.setpoints_w.len(), prices.len());
        let step = step_wh(&device, slot_secs);
        // Replay the schedule: stored energy from grid power (charging stores η of it).
        let mut energy = device.stored_wh as f64;
        let start = energy;
        for &w in &s.setpoints_w {
            let grid_wh = -(w as f64) * slot_secs as f64 / 3600.0;
            let stored_wh = if grid_wh >= 0.0 { grid_wh * 0.95 } else { grid_wh / 0.95 };
            // Storage-side power within rating (the grid side differs by the losses).
            prop_assert!(stored_wh.abs() <= (power_w as f64 * slot_secs as f64 / 3600.0).max(step) + 1.0);
            energy += stored_wh;
            prop_assert!(energy <= capacity_wh as f64 + step, "over capacity: {}", energy);
            prop_assert!(energy >= (device.reserve_wh as f64).min(start) - step, "under reserve: {}", energy);
        }
        // It never ends with less than it started (the grid is only the start, rounded).
        prop_assert!(energy >= start - step);
        // Doing nothing costs nothing, so the optimum costs at most that.
        prop_assert!(s.cost <= 1e-9);
    }
}
