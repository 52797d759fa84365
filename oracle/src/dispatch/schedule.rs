//! Price-curve schedules: when a storage device should charge and discharge over a
//! day-ahead price curve.
//!
//! **Formulation.** Stored energy `e_t` moves on a grid of `LEVELS` steps of the device's
//! usable capacity (finer when one slot's energy is smaller). In slot `t` the device moves from `e` to `e'` with
//! `|e' - e| ≤ P Δt` (rated power) and `reserve ≤ e' ≤ capacity`; charging `x` Wh into
//! storage buys `x / η` from the grid at price `π_t`, discharging `x` sells `x η`; every Wh
//! moved also pays a wear cost `ω`. EVs cannot discharge and must hold their departure
//! energy at departure; storage must end the day with at least the energy it started with
//! (a schedule earns from the spread, not by emptying the battery). Dynamic programming
//! over (slot, level) finds the exact optimum on that grid: in `O(T · L)` when the cost of
//! a move is convex (see `solve`), in `O(T · L · m)` otherwise, `m` the level steps within
//! one slot's power. The only approximation is the grid itself (energy
//! is resolved to 1 % of capacity or one slot's energy, whichever is finer).

/// Levels of the stored-energy grid: at least this many, more when one slot's energy at
/// rated power is smaller than a level (so a level is never more than one slot can move).
pub const LEVELS: usize = 100;
/// At most this many (a device whose slot energy is smaller still moves a whole level).
pub const MAX_LEVELS: usize = 20_000;

/// The energy grid's step for `device` and slots of `slot_secs`.
pub fn step_wh(device: &Storage, slot_secs: i64) -> f64 {
    let coarse = device.capacity_wh as f64 / LEVELS as f64;
    let slot_energy = device.power_w as f64 * slot_secs as f64 / 3600.0;
    coarse.min(slot_energy).max(device.capacity_wh as f64 / MAX_LEVELS as f64)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Storage {
    pub capacity_wh: u64,
    pub power_w: u64,
    /// Stored energy now.
    pub stored_wh: u64,
    /// Never go below this.
    pub reserve_wh: u64,
    /// One-way efficiency (charging and discharging alike), in (0, 1].
    pub efficiency: f64,
    /// Wear cost per kWh moved, in price units.
    pub wear_per_kwh: f64,
    /// EVs without bidirectional charging.
    pub can_discharge: bool,
    /// EV: (slot index by whose start, Wh needed).
    pub needs: Option<(usize, u64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Per slot, W at the grid connection: positive discharge, negative charge.
    pub setpoints_w: Vec<i64>,
    /// Net cost of the schedule in price units (negative: it earns).
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("no schedule meets the constraints (the EV cannot reach its departure energy in time)")]
    Infeasible,
    #[error("the device has no usable capacity or power")]
    NoCapacity,
}

/// The cheapest schedule for `prices` (per kWh, one per slot of `slot_secs`).
pub fn schedule(device: &Storage, prices: &[f64], slot_secs: i64) -> Result<Schedule, ScheduleError> {
    solve(device, prices, slot_secs, false)
}

/// `exhaustive` tries every move in every slot (the reference the fast sweep is tested against).
fn solve(device: &Storage, prices: &[f64], slot_secs: i64, exhaustive: bool) -> Result<Schedule, ScheduleError> {
    if device.capacity_wh == 0 || device.power_w == 0 || slot_secs <= 0 {
        return Err(ScheduleError::NoCapacity);
    }
    let step_wh = step_wh(device, slot_secs);
    let levels = ((device.capacity_wh as f64 / step_wh).round() as usize).max(1);
    let level_of = |wh: u64| ((wh as f64 / step_wh).round() as usize).min(levels);
    let start = level_of(device.stored_wh);
    // The reserve rounds up: a schedule never dips below it.
    // (A device already below its reserve may stay there; it is not forced to charge.)
    let reserve = ((device.reserve_wh as f64 / step_wh).ceil() as usize).min(levels).min(start);
    let max_move = ((device.power_w as f64 * slot_secs as f64 / 3600.0 / step_wh + 1e-9).floor() as usize).clamp(1, levels);
    let eta = device.efficiency.clamp(0.01, 1.0);
    let wear = device.wear_per_kwh.max(0.0);
    // cost[l]: cheapest cost of reaching level l after the slots so far.
    let mut cost = vec![f64::INFINITY; levels + 1];
    cost[start] = 0.0;
    // The level change that reached each level in each slot.
    let mut came_from: Vec<Vec<i16>> = Vec::with_capacity(prices.len());
    let move_cost = |d: isize, price: f64| {
        let kwh = d as f64 * step_wh / 1000.0;
        price * if kwh >= 0.0 { kwh / eta } else { kwh * eta } + wear * kwh.abs()
    };
    // The cost of a move is convex when a discharged kWh is never worth more than a charged
    // one costs (always, unless prices are negative and wear is low). Then the cost-to-come
    // stays convex, the best source level only moves up as the target level does, and one
    // pointer sweep per slot finds it: O(T · L) instead of O(T · L · m).
    let convex = !exhaustive && prices.iter().all(|&p| p * eta - wear <= p / eta + wear);
    for (t, &price) in prices.iter().enumerate() {
        let mut next = vec![f64::INFINITY; levels + 1];
        let mut from = vec![0i16; levels + 1];
        let floor = match device.needs {
            Some((slot, wh)) if t + 1 == slot => level_of(wh).max(reserve),
            _ => reserve,
        };
        let via = |source: usize, to: usize| cost[source] + move_cost(to as isize - source as isize, price);
        let mut best_source = 0usize;
        for to in floor..=levels {
            // Sources: within one slot's move, and not above the target for EVs (charge only).
            let low = to.saturating_sub(max_move);
            let high = if device.can_discharge { (to + max_move).min(levels) } else { to };
            let source = if convex {
                best_source = best_source.max(low);
                while best_source < high && via(best_source + 1, to) <= via(best_source, to) {
                    best_source += 1;
                }
                best_source
            } else {
                (low..=high).min_by(|&a, &b| via(a, to).total_cmp(&via(b, to))).unwrap_or(low)
            };
            let total = via(source, to);
            if total.is_finite() {
                next[to] = total;
                from[to] = (to as isize - source as isize) as i16;
            }
        }
        cost = next;
        came_from.push(from);
    }
    // Storage ends with at least its starting energy; an EV only needs its departure energy.
    let end_floor = if device.can_discharge { start } else { reserve.min(start) };
    let (mut level, best) = cost
        .iter()
        .enumerate()
        .skip(end_floor)
        .filter(|(_, c)| c.is_finite())
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(l, c)| (l, *c))
        .ok_or(ScheduleError::Infeasible)?;
    let mut setpoints_w = vec![0i64; prices.len()];
    for t in (0..prices.len()).rev() {
        let delta = came_from[t][level] as isize;
        let moved_wh = delta as f64 * step_wh;
        let grid_wh = if moved_wh >= 0.0 { moved_wh / eta } else { moved_wh * eta };
        setpoints_w[t] = (-grid_wh * 3600.0 / slot_secs as f64).round() as i64;
        level = (level as isize - delta) as usize;
    }
    Ok(Schedule { setpoints_w, cost: best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battery() -> Storage {
        Storage {
            capacity_wh: 10_000,
            power_w: 5_000,
            stored_wh: 5_000,
            reserve_wh: 1_000,
            efficiency: 0.95,
            wear_per_kwh: 0.01,
            can_discharge: true,
            needs: None,
        }
    }

    #[test]
    fn buys_low_and_sells_high_within_limits() {
        let prices = [0.10, 0.10, 0.40, 0.40];
        let s = schedule(&battery(), &prices, 3600).unwrap();
        assert!(s.setpoints_w[0] < 0 && s.setpoints_w[1] < 0, "{:?}", s.setpoints_w);
        assert!(s.setpoints_w[2] > 0 && s.setpoints_w[3] > 0, "{:?}", s.setpoints_w);
        // Grid-side power may exceed rated storage power only by the efficiency loss.
        assert!(s.setpoints_w.iter().all(|w| w.unsigned_abs() <= (5_000.0 / 0.95) as u64 + 1));
        assert!(s.cost < 0.0);
    }

    #[test]
    fn flat_prices_do_nothing() {
        let s = schedule(&battery(), &[0.2; 24], 3600).unwrap();
        assert!(s.setpoints_w.iter().all(|&w| w == 0), "{:?}", s.setpoints_w);
    }

    #[test]
    fn ev_charges_in_the_cheapest_slots_before_departure() {
        let ev = Storage { stored_wh: 2_000, can_discharge: false, needs: Some((4, 8_000)), ..battery() };
        // 6 kWh more by slot 4 at 5 kW: two cheap hours are not enough, it needs a third.
        let prices = [0.30, 0.05, 0.20, 0.06, 0.01, 0.01];
        let s = schedule(&ev, &prices, 3600).unwrap();
        assert!(s.setpoints_w.iter().all(|&w| w <= 0));
        assert!(s.setpoints_w[1] < 0 && s.setpoints_w[3] < 0);
        let before: i64 = s.setpoints_w[..4].iter().map(|w| -w).sum();
        assert!(before as f64 * 0.95 >= 6_000.0 - 100.0, "{:?}", s.setpoints_w);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// The pointer sweep finds the same optimum as trying every move.
        #[test]
        fn the_sweep_is_exact(
            capacity_wh in 1_000u64..50_000,
            power_w in 500u64..20_000,
            stored in 0.0f64..=1.0,
            reserve in 0.0f64..0.5,
            wear in 0.0f64..0.05,
            can_discharge: bool,
            prices in proptest::collection::vec(-0.2f64..1.0, 1..30),
        ) {
            let device = Storage {
                capacity_wh,
                power_w,
                stored_wh: (capacity_wh as f64 * stored) as u64,
                reserve_wh: (capacity_wh as f64 * reserve) as u64,
                efficiency: 0.9,
                wear_per_kwh: wear,
                can_discharge,
                needs: None,
            };
            let fast = schedule(&device, &prices, 900).unwrap();
            let reference = solve(&device, &prices, 900, true).unwrap();
            proptest::prop_assert!((fast.cost - reference.cost).abs() < 1e-6, "{} vs {}", fast.cost, reference.cost);
        }
    }

    #[test]
    fn unreachable_departure_is_refused() {
        let ev = Storage { stored_wh: 0, can_discharge: false, needs: Some((1, 9_000)), ..battery() };
        assert_eq!(schedule(&ev, &[0.1, 0.1], 3600), Err(ScheduleError::Infeasible));
    }
}
