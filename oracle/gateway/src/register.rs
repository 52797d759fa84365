//! From a device's energy register, sampled when the device chooses, to readings on the
//! oracle's grid: a reading covers `[k * grid, (k + 1) * grid)`, the register interpolated
//! at each grid time, its energy the register's rise (exact, whatever the sampling), or the
//! power's trapezoid while there is no register. Used by every adapter whose devices
//! report registers (OCPP chargers, smart meters).

use ovpp_wire::telemetry::Reading;
use serde::{Deserialize, Serialize};

/// The shortest and longest reading the oracle takes (TELEMETRY.md).
pub const MIN_INTERVAL_SECS: i64 = 10;
pub const MAX_INTERVAL_SECS: i64 = 3600;

/// One sample of a device's meter, in base units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Unix seconds.
    pub t: i64,
    /// Energy imported, register, Wh.
    pub energy_wh: Option<f64>,
    /// Active power imported, W.
    pub power_w: Option<f64>,
    pub current_a: Option<f64>,
    pub soc_percent: Option<f64>,
}

/// Where the readings are: saved with each reading, so a restarted gateway goes on from
/// the same register.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterCursor {
    /// Start of the next reading (a grid time) and the register there, once a grid time
    /// has passed (less any fraction of a Wh not yet in a reading).
    pub start: Option<(i64, f64)>,
    /// The newest sample: its time, register and power.
    pub last_t: i64,
    pub last_wh: f64,
    pub last_power_w: Option<f64>,
    /// Whether `last_wh` is integrated from power (no register seen yet): the first real
    /// register re-bases it rather than counting as energy.
    pub integrated: bool,
}

/// One reading's span and energy, and the charger's power around its end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub start: i64,
    pub secs: u32,
    pub energy_wh: u32,
    /// The last sample at or before the end: its time and power (W; from the register's
    /// rise when the charger reports no power).
    pub power_before: (i64, f64),
    /// The first sample after the end: its power.
    pub power_after_w: f64,
}

fn trapezoid_wh(a: Option<f64>, b: Option<f64>, secs: i64) -> f64 {
    let w = match (a, b) {
        (Some(a), Some(b)) => (a + b) / 2.0,
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => 0.0,
    };
    w.max(0.0) * secs as f64 / 3600.0
}

fn fresh(s: &Sample) -> MeterCursor {
    MeterCursor {
        start: None,
        last_t: s.t,
        last_wh: s.energy_wh.unwrap_or(0.0),
        last_power_w: s.power_w,
        integrated: s.energy_wh.is_none(),
    }
}

/// The readings a new sample completes and the cursor after it. Readings are `grid`
/// seconds long on the grid of multiples of `grid` (as the oracle measures events), the
/// register at each grid time interpolated between the samples around it; the Wh of the
/// readings add up exactly to the register's rise. A gap above [`MAX_INTERVAL_SECS`] (the
/// charger was away) or a register that went back (a replaced meter) starts afresh.
pub fn advance(cursor: Option<MeterCursor>, s: &Sample, grid: i64) -> (Vec<Interval>, Option<MeterCursor>) {
    let Some(mut c) = cursor else { return (Vec::new(), Some(fresh(s))) };
    let dt = s.t - c.last_t;
    if dt <= 0 {
        // An older or simultaneous sample (a resend) adds nothing, but a first register at
        // the cursor's time re-bases it (a transaction starting as the charger connects).
        if let (0, true, Some(r)) = (dt, c.integrated, s.energy_wh) {
            let offset = r - c.last_wh;
            c.start = c.start.map(|(t, wh)| (t, wh + offset));
            return (Vec::new(), Some(MeterCursor { last_wh: r, integrated: false, ..c }));
        }
        // A later register within the same second (a StopTransaction right after a meter value).
        if let (0, false, Some(r)) = (dt, c.integrated, s.energy_wh) {
            return (Vec::new(), Some(MeterCursor { last_wh: r.max(c.last_wh), ..c }));
        }
        return (Vec::new(), Some(c));
    }
    if dt > MAX_INTERVAL_SECS {
        return (Vec::new(), Some(fresh(s)));
    }
    let estimate = c.last_wh + trapezoid_wh(c.last_power_w, s.power_w, dt);
    let (register, integrated) = match s.energy_wh {
        Some(r) if c.integrated => {
            // The first register: what was integrated so far moves onto it.
            let offset = r - estimate;
            c.last_wh += offset;
            c.start = c.start.map(|(t, wh)| (t, wh + offset));
            (r, false)
        }
        Some(r) if r >= c.last_wh => (r, false),
        Some(_) => return (Vec::new(), Some(fresh(s))),
        None => (estimate, c.integrated),
    };
    let slope_w = (register - c.last_wh).max(0.0) * 3600.0 / dt as f64;
    let power_before = (c.last_t, c.last_power_w.unwrap_or(slope_w));
    let power_after_w = s.power_w.unwrap_or(slope_w);
    let mut out = Vec::new();
    let mut b = (c.last_t.div_euclid(grid) + 1) * grid;
    while b <= s.t {
        let at_b = c.last_wh + (register - c.last_wh) * (b - c.last_t) as f64 / dt as f64;
        c.start = Some(match c.start {
            Some((from, wh)) => {
                let whole = (at_b - wh).max(0.0).floor();
                let energy_wh = whole.min(f64::from(u32::MAX)) as u32;
                out.push(Interval { start: from, secs: (b - from) as u32, energy_wh, power_before, power_after_w });
                (b, wh + whole)
            }
            None => (b, at_b),
        });
        b += grid;
    }
    let next = MeterCursor { start: c.start, last_t: s.t, last_wh: register, last_power_w: s.power_w.or(c.last_power_w), integrated };
    (out, Some(next))
}

/// W on average over `iv` for `wh` (positive delivering, negative drawing), in range.
pub fn average_w(iv: &Interval, wh: i64) -> i32 {
    (wh * 3600 / i64::from(iv.secs.max(1))).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// A grid connection's reading: what came in and went out over the interval.
pub fn connection_reading(iv: &Interval, exported_wh: u32) -> Reading {
    Reading {
        energy_consumed_wh: iv.energy_wh,
        energy_imported_wh: iv.energy_wh,
        energy_exported_wh: exported_wh,
        average_power_w: average_w(iv, i64::from(exported_wh) - i64::from(iv.energy_wh)),
        ..Reading::empty(iv.start, iv.secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64, wh: f64) -> Sample {
        Sample { t, energy_wh: Some(wh), ..Sample::default() }
    }

    #[test]
    fn grid_readings_sum_to_the_register_difference_whatever_the_sampling() {
        // Idle from t = 995 (integrated, no register), then a register at 1001 and samples
        // 3 s apart with fractional registers.
        let (_, mut cursor) = advance(None, &Sample { t: 995, power_w: Some(0.0), ..Sample::default() }, 10);
        let mut readings = Vec::new();
        for i in 0..100 {
            let (out, next) = advance(cursor, &at(1_001 + 3 * i, 500.0 + 7.3 * i as f64), 10);
            readings.extend(out);
            cursor = next;
        }
        // Then idle again, the register flat: the rest comes in, to the whole Wh.
        let last = 500.0 + 7.3 * 99.0;
        for t in [1_310, 1_330] {
            let (out, next) = advance(cursor, &Sample { t, energy_wh: Some(last), power_w: Some(0.0), ..Sample::default() }, 10);
            readings.extend(out);
            cursor = next;
        }
        let total: u64 = readings.iter().map(|r| u64::from(r.energy_wh)).sum();
        assert_eq!(total, (7.3 * 99.0f64).floor() as u64);
        // Consecutive, on the grid, 10 s each, from the first grid time after the first sample.
        for (i, r) in readings.iter().enumerate() {
            assert_eq!((r.start, r.secs), (1_000 + 10 * i as i64, 10), "{r:?}");
        }
        assert_eq!(readings.len(), 33);
    }

    #[test]
    fn a_gap_or_a_register_going_back_starts_afresh() {
        let (_, c) = advance(None, &at(0, 100.0), 10);
        let (_, c) = advance(c, &at(15, 110.0), 10);
        assert!(advance(c, &at(4000, 200.0), 10).0.is_empty());
        assert_eq!(advance(c, &at(4000, 200.0), 10).1.unwrap().start, None);
        assert!(advance(c, &at(60, 50.0), 10).0.is_empty());
        // 100 at 0, 110 at 15, 160 at 65: the register is 106.7 at 10 and 155 at 60.
        let (out, _) = advance(c, &at(65, 160.0), 10);
        assert_eq!(out.iter().map(|r| r.start).collect::<Vec<_>>(), vec![10, 20, 30, 40, 50]);
        assert_eq!(out.iter().map(|r| r.energy_wh).sum::<u32>(), 48);
    }

    #[test]
    fn power_alone_is_integrated() {
        let (_, c) = advance(None, &Sample { t: 0, power_w: Some(3600.0), ..Sample::default() }, 60);
        let (_, c) = advance(c, &Sample { t: 60, power_w: Some(3600.0), ..Sample::default() }, 60);
        let (out, _) = advance(c, &Sample { t: 120, power_w: Some(7200.0), ..Sample::default() }, 60);
        assert_eq!(out, vec![Interval { start: 60, secs: 60, energy_wh: 90, power_before: (60, 3600.0), power_after_w: 7200.0 }]);
    }
}
