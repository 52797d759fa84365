//! Allocating a power target across devices within their limits.
//!
//! **Formulation.** Device `i` can give `c_i` W now (its flexibility in the needed
//! direction, already limited by rated power, state-of-charge reserve and energy for the
//! event's duration, owner opt-outs, departure times: the caller's job) and has a
//! reliability weight `w_i` in (0, 1] (reputation, recent fatigue). The planned total is
//! the target plus a reserve margin for non-delivery, `G = T (1 + m)`. Choose set points
//!
//! ```text
//!     minimise  Σ p_i² / (w_i c_i)      subject to  Σ p_i = min(G, Σ c_i),  0 ≤ p_i ≤ c_i
//! ```
//!
//! Each device's cost grows with the share of its capability it is asked for, more steeply
//! for less reliable devices, so the load is spread and no device is pushed to its limit
//! while others idle. The problem is convex; its KKT conditions give the unique optimum
//! `p_i = min(c_i, λ w_i c_i)` for the one `λ` that meets the total ("water filling"):
//! every device gives the same fraction `λ w_i` of its capability, scaled by reliability,
//! until it saturates. Found exactly by sorting on `w` (O(n log n)), then rounded to whole
//! watts without breaking a limit or falling below the total.
//!
//! When the fleet cannot meet the target, every device gives all it can and the result
//! says by how much it falls short.

use ovpp_wire::device::DeviceKey;

/// Reliability weights are parts per million: 1_000_000 is fully reliable.
pub const WEIGHT_SCALE: u32 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub device: DeviceKey,
    /// What the device can give now in the needed direction, W.
    pub capacity_w: u64,
    /// Reliability, 1 ..= `WEIGHT_SCALE` (0 is treated as 1).
    pub weight_ppm: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// Set point per device (only devices given a non-zero share), in input order.
    pub set_points: Vec<(DeviceKey, u64)>,
    /// Σ set points: the target plus the reserve margin, or all the fleet can give.
    pub planned_w: u64,
    /// How far the fleet's whole capability falls short of the target itself (0 if it can
    /// meet it, reserve aside).
    pub shortfall_w: u64,
}

/// The target plus the reserve margin (`reserve_bps` basis points of it).
pub fn goal(target_w: u64, reserve_bps: u32) -> u128 {
    u128::from(target_w) * (10_000 + u128::from(reserve_bps)) / 10_000
}

/// Allocates `target_w` plus `reserve_bps` (basis points of the target) across `candidates`.
pub fn allocate(candidates: &[Candidate], target_w: u64, reserve_bps: u32) -> Allocation {
    let capability: u128 = candidates.iter().map(|c| u128::from(c.capacity_w)).sum();
    let goal = goal(target_w, reserve_bps);
    let shortfall_w = u128::from(target_w).saturating_sub(capability) as u64;
    if goal >= capability {
        // Everyone at full capability.
        let set_points: Vec<_> = candidates.iter().filter(|c| c.capacity_w > 0).map(|c| (c.device, c.capacity_w)).collect();
        return Allocation { set_points, planned_w: capability as u64, shortfall_w };
    }
    let weight = |c: &Candidate| f64::from(c.weight_ppm.clamp(1, WEIGHT_SCALE)) / f64::from(WEIGHT_SCALE);
    // Devices in saturation order: the most reliable saturate first (at λ = 1 / w).
    let mut order: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i].capacity_w > 0).collect();
    order.sort_by(|&a, &b| weight(&candidates[b]).total_cmp(&weight(&candidates[a])));
    // With the first k saturated: λ = (G - Σ_{<k} c) / Σ_{≥k} w c; valid when the k-th
    // device is not saturated at that λ.
    let mut unsaturated_wc: f64 = order.iter().map(|&i| weight(&candidates[i]) * candidates[i].capacity_w as f64).sum();
    let mut saturated_c: f64 = 0.0;
    let goal_f = goal as f64;
    let mut lambda = 0.0;
    for &i in &order {
        let candidate = &candidates[i];
        lambda = (goal_f - saturated_c) / unsaturated_wc;
        if lambda * weight(candidate) <= 1.0 {
            break;
        }
        saturated_c += candidate.capacity_w as f64;
        unsaturated_wc -= weight(candidate) * candidate.capacity_w as f64;
    }
    // Round down, then hand out the missing watts one by one to devices with room, most
    // reliable first, so that Σ = G exactly and no limit is broken.
    let mut points: Vec<u64> =
        candidates.iter().map(|c| ((lambda * weight(c)).min(1.0) * c.capacity_w as f64).floor().min(c.capacity_w as f64) as u64).collect();
    let mut missing = goal.saturating_sub(points.iter().map(|&p| u128::from(p)).sum());
    while missing > 0 {
        let mut progressed = false;
        for &i in &order {
            if missing == 0 {
                break;
            }
            let room = u128::from(candidates[i].capacity_w - points[i]);
            let add = room.min(missing);
            if add > 0 {
                points[i] += add as u64;
                missing -= add;
                progressed = true;
            }
        }
        if !progressed {
            break; // unreachable: goal < capability
        }
    }
    let set_points: Vec<_> = candidates.iter().zip(&points).filter(|(_, &p)| p > 0).map(|(c, &p)| (c.device, p)).collect();
    let planned_w = points.iter().sum();
    Allocation { set_points, planned_w, shortfall_w }
}
