//! Customer baselines: what a device would have drawn or delivered had there been no
//! event. Delivery is the difference between the baseline and the meter.
//!
//! Two families:
//! - **Day matching** for loads and meters ([`DayMatching`]): the same time of day on
//!   recent similar days (weekdays for a weekday event, weekend days for a weekend one),
//!   optionally the highest of them, corrected by how the event day ran in the hours just
//!   before the event. [`CAISO_10_IN_10`], [`PJM_HIGH_4_OF_5`] and [`NYISO_CBL`] are this
//!   one algorithm with each ISO's parameters. `DISPATCHING.md` cites where each parameter
//!   comes from and which of them could not be checked against the ISO's own text.
//! - **Meter before / meter after** for batteries and EVs ([`meter_before`]): the device's
//!   average rate just before the event, held through it.
//!
//! Loads are net import in Wh per slot (`import - export`), keyed by slot index
//! `(t - origin) / slot_secs` (devices need not meter on round times); days are UTC days.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool {
    /// How many most-recent eligible days form the window.
    pub days: usize,
    /// How many of them, highest average load over the event hours, are averaged.
    pub highest: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdjustmentKind {
    /// Baseline times (event-day load / baseline load) in the window, clamped.
    Ratio { min: f64, max: f64 },
    /// Baseline plus the average difference (event day - baseline) in the window.
    Additive,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// The window is `[event_start - from_secs_before, event_start - to_secs_before)`.
    pub from_secs_before: i64,
    pub to_secs_before: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DayMatching {
    pub name: &'static str,
    /// Days before the event day searched for eligible days.
    pub lookback_days: i64,
    pub weekday: Pool,
    pub weekend: Pool,
    /// Drop days whose average event-hours load is under this fraction of the window's
    /// average (low-usage days: outages, holidays at a business).
    pub low_usage_fraction: Option<f64>,
    pub adjustment: Option<Adjustment>,
}

const HOUR: i64 = 3600;

/// CAISO "10 in 10" customer load baseline: the 10 most recent eligible weekdays (4 in 4
/// on weekends and holidays) in 45 days, with the load point adjustment over the three
/// hours ending one hour before the event, limited to ±20 %.
pub const CAISO_10_IN_10: DayMatching = DayMatching {
    name: "CAISO_10_IN_10",
    lookback_days: 45,
    weekday: Pool { days: 10, highest: 10 },
    weekend: Pool { days: 4, highest: 4 },
    low_usage_fraction: None,
    adjustment: Some(Adjustment { kind: AdjustmentKind::Ratio { min: 0.8, max: 1.2 }, from_secs_before: 4 * HOUR, to_secs_before: HOUR }),
};

/// PJM "High 4 of 5" with the symmetric additive adjustment: the 4 highest of the 5 most
/// recent eligible weekdays (High 2 of 3 on weekends), low-usage days (< 25 %) excluded,
/// adjusted by the average difference over the three hours ending one hour before.
pub const PJM_HIGH_4_OF_5: DayMatching = DayMatching {
    name: "PJM_HIGH_4_OF_5",
    lookback_days: 45,
    weekday: Pool { days: 5, highest: 4 },
    weekend: Pool { days: 3, highest: 2 },
    low_usage_fraction: Some(0.25),
    adjustment: Some(Adjustment { kind: AdjustmentKind::Additive, from_secs_before: 4 * HOUR, to_secs_before: HOUR }),
};

/// NYISO customer baseline load (average-day CBL): the 5 highest of the 10 most recent
/// eligible weekdays (2 of the 3 most recent like weekend days), low-usage days (< 25 %)
/// excluded, with the weather-sensitive in-day adjustment over the two hours beginning four
/// hours before the event, bounded to 0.8 ..= 1.2.
pub const NYISO_CBL: DayMatching = DayMatching {
    name: "NYISO_CBL",
    lookback_days: 30,
    weekday: Pool { days: 10, highest: 5 },
    weekend: Pool { days: 3, highest: 2 },
    low_usage_fraction: Some(0.25),
    adjustment: Some(Adjustment {
        kind: AdjustmentKind::Ratio { min: 0.8, max: 1.2 },
        from_secs_before: 4 * HOUR,
        to_secs_before: 2 * HOUR,
    }),
};

pub const DAY_MATCHING: [DayMatching; 3] = [CAISO_10_IN_10, PJM_HIGH_4_OF_5, NYISO_CBL];

pub fn day_matching(name: &str) -> Option<DayMatching> {
    DAY_MATCHING.into_iter().find(|m| m.name == name)
}

/// Saturday and Sunday (1970-01-01, day 0, was a Thursday).
pub fn is_weekend(day: i64) -> bool {
    matches!(day.rem_euclid(7), 2 | 3)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineError {
    #[error("{method}: needs {needed} eligible {kind} days of complete data in the last {lookback} days, found {found}")]
    InsufficientHistory { method: &'static str, kind: &'static str, needed: usize, found: usize, lookback: i64 },
    #[error("no reading in the {0} s before the event")]
    NoPreEventReading(i64),
    #[error("the event is not aligned to {0}-second slots")]
    Misaligned(i64),
}

/// A baseline over the event's slots (net import, Wh per slot).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Baseline {
    pub method: &'static str,
    /// Per event slot, in order.
    pub slots_wh: Vec<f64>,
    /// The days averaged (day numbers), for the report.
    pub days: Vec<i64>,
    /// The factor (ratio) or Wh per slot (additive) applied; `None` without adjustment.
    pub adjustment: Option<f64>,
}

/// Net import per slot, keyed by slot `(t - origin) / slot_secs`.
pub struct LoadSeries {
    pub slot_secs: i64,
    /// Any time on the devices' slot grid.
    pub origin: i64,
    pub slots: HashMap<i64, f64>,
}

impl LoadSeries {
    /// The slot starting at `t`, if `t` is on the grid.
    pub fn slot_at(&self, t: i64) -> Option<i64> {
        let offset = t - self.origin;
        (self.slot_secs > 0 && offset % self.slot_secs == 0).then(|| offset.div_euclid(self.slot_secs))
    }

    fn mean(&self, slots: impl Iterator<Item = i64>) -> Option<f64> {
        let (mut sum, mut n) = (0.0, 0usize);
        for s in slots {
            sum += *self.slots.get(&s)?;
            n += 1;
        }
        (n > 0).then(|| sum / n as f64)
    }
}

impl DayMatching {
    /// The baseline for an event over `[start, end)`; `excluded` are days that do not count
    /// (event days, holidays, outages).
    pub fn baseline(&self, loads: &LoadSeries, start: i64, end: i64, excluded: &BTreeSet<i64>) -> Result<Baseline, BaselineError> {
        let slot = loads.slot_secs;
        let (Some(first), Some(last)) = (loads.slot_at(start), loads.slot_at(end)) else {
            return Err(BaselineError::Misaligned(slot));
        };
        if 86_400 % slot != 0 {
            return Err(BaselineError::Misaligned(slot));
        }
        let per_day = 86_400 / slot;
        let event_slots = first..last;
        let event_day = start.div_euclid(86_400);
        let weekend = is_weekend(event_day);
        let pool = if weekend { self.weekend } else { self.weekday };
        let shifted = |day: i64| {
            let shift = (event_day - day) * per_day;
            event_slots.clone().map(move |s| s - shift)
        };
        // Eligible days, most recent first, with their average load over the event hours.
        let mut eligible: Vec<(i64, f64)> = (1..=self.lookback_days)
            .map(|back| event_day - back)
            .filter(|d| is_weekend(*d) == weekend && !excluded.contains(d))
            .filter_map(|d| Some((d, loads.mean(shifted(d))?)))
            .collect();
        if let Some(fraction) = self.low_usage_fraction {
            let window = &eligible[..pool.days.min(eligible.len())];
            let average = window.iter().map(|(_, l)| l).sum::<f64>() / window.len().max(1) as f64;
            eligible.retain(|(_, load)| *load >= fraction * average);
        }
        if eligible.len() < pool.days {
            return Err(BaselineError::InsufficientHistory {
                method: self.name,
                kind: if weekend { "weekend" } else { "weekday" },
                needed: pool.days,
                found: eligible.len(),
                lookback: self.lookback_days,
            });
        }
        let mut chosen = eligible[..pool.days].to_vec();
        // Highest average load first; the sort is stable, so ties keep the more recent day.
        chosen.sort_by(|a, b| b.1.total_cmp(&a.1));
        chosen.truncate(pool.highest);
        chosen.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
        let days: Vec<i64> = chosen.iter().map(|(d, _)| *d).collect();
        let average_at =
            |offset: i64| days.iter().map(|d| loads.slots[&(offset - (event_day - d) * per_day)]).sum::<f64>() / days.len() as f64;
        let mut slots_wh: Vec<f64> = event_slots.clone().map(average_at).collect();
        let adjustment = self.adjustment.and_then(|adj| {
            let window = first - adj.from_secs_before.div_euclid(slot)..first - adj.to_secs_before.div_euclid(slot);
            let actual = loads.mean(window.clone())?;
            // The chosen days' load over the same hours (they may lack those slots).
            let mut sum = 0.0;
            for s in window.clone() {
                for d in &days {
                    sum += loads.slots.get(&(s - (event_day - d) * per_day))?;
                }
            }
            let typical = sum / (window.count() * days.len()) as f64;
            Some(match adj.kind {
                AdjustmentKind::Ratio { min, max } => {
                    let factor = if typical.abs() < f64::EPSILON { 1.0 } else { (actual / typical).clamp(min, max) };
                    slots_wh.iter_mut().for_each(|b| *b *= factor);
                    factor
                }
                AdjustmentKind::Additive => {
                    let delta = actual - typical;
                    slots_wh.iter_mut().for_each(|b| *b += delta);
                    delta
                }
            })
        });
        Ok(Baseline { method: self.name, slots_wh, days, adjustment })
    }
}

/// How far before the event the meter-before rate is taken.
pub const METER_BEFORE_SECS: i64 = 1800;

/// Meter before / meter after: the average net import over the `METER_BEFORE_SECS` before
/// the event, held for each of its slots.
pub fn meter_before(loads: &LoadSeries, start: i64, end: i64) -> Result<Baseline, BaselineError> {
    let slot = loads.slot_secs;
    let (Some(first), Some(last)) = (loads.slot_at(start), loads.slot_at(end)) else {
        return Err(BaselineError::Misaligned(slot));
    };
    let before: Vec<f64> = (first - METER_BEFORE_SECS.div_euclid(slot)..first).filter_map(|s| loads.slots.get(&s).copied()).collect();
    if before.is_empty() {
        return Err(BaselineError::NoPreEventReading(METER_BEFORE_SECS));
    }
    let rate = before.iter().sum::<f64>() / before.len() as f64;
    Ok(Baseline { method: "METER_BEFORE_AFTER", slots_wh: vec![rate; (last - first).max(0) as usize], days: vec![], adjustment: None })
}

#[cfg(test)]
mod tests {
    //! No ISO's own worked example could be retrieved here (see DISPATCHING.md): these
    //! cases are computed by hand from the rules as stated above, on loads chosen so that
    //! every selection step changes the answer.
    use super::*;

    const H: i64 = 3600;

    /// 2026-11-25 (a Wednesday), 00:00 UTC.
    const WEDNESDAY: i64 = 1_795_564_800;

    fn day(t: i64) -> i64 {
        t.div_euclid(86_400)
    }

    /// Hourly loads: `load(day_offset, hour)` for the 60 days before and the event day.
    fn series(load: impl Fn(i64, i64) -> Option<f64>) -> LoadSeries {
        let mut slots = HashMap::new();
        for back in 0..60 {
            for hour in 0..24 {
                let t = WEDNESDAY - back * 86_400 + hour * H;
                if let Some(l) = load(back, hour) {
                    slots.insert(t / H, l);
                }
            }
        }
        LoadSeries { slot_secs: H, origin: 0, slots }
    }

    #[test]
    fn weekday_is_wednesday_and_weekends_are_found() {
        assert!(!is_weekend(day(WEDNESDAY)));
        assert!(is_weekend(day(WEDNESDAY) - 4)); // Saturday
        assert!(is_weekend(day(WEDNESDAY) - 3)); // Sunday
        assert!(!is_weekend(day(WEDNESDAY) - 2)); // Monday
    }

    #[test]
    fn caiso_averages_the_ten_most_recent_weekdays_and_adjusts_within_twenty_percent() {
        // Each day's load is 100 + its offset, so the average tells which days were used.
        let loads = series(|back, _| Some(if back == 0 { 150.0 } else { 100.0 + back as f64 }));
        let (start, end) = (WEDNESDAY + 16 * H, WEDNESDAY + 18 * H);
        let mut excluded = BTreeSet::from([day(WEDNESDAY) - 1]); // yesterday had an event
        excluded.insert(day(WEDNESDAY));
        let b = CAISO_10_IN_10.baseline(&loads, start, end, &excluded).unwrap();
        // Weekdays back from Wednesday, skipping Tuesday (event) and weekends:
        // Mon 2, Fri 5, Thu 6, Wed 7, Tue 8, Mon 9, Fri 12, Thu 13, Wed 14, Tue 15.
        let expected_days: Vec<i64> = [2, 5, 6, 7, 8, 9, 12, 13, 14, 15].iter().map(|b| day(WEDNESDAY) - b).collect();
        assert_eq!(b.days, expected_days);
        let average = 100.0 + (2 + 5 + 6 + 7 + 8 + 9 + 12 + 13 + 14 + 15) as f64 / 10.0; // 109.1
                                                                                         // Event day runs at 150 in the adjustment hours: 150 / 109.1 = 1.37, capped at 1.2.
        assert_eq!(b.adjustment, Some(1.2));
        assert!(b.slots_wh.iter().all(|w| (w - average * 1.2).abs() < 1e-9), "{:?}", b.slots_wh);
    }

    #[test]
    fn caiso_weekend_event_uses_the_four_most_recent_weekend_days() {
        let loads = series(|back, _| Some(100.0 + back as f64));
        let saturday = WEDNESDAY + 3 * 86_400;
        let b = CAISO_10_IN_10.baseline(&loads, saturday + 10 * H, saturday + 11 * H, &BTreeSet::new()).unwrap();
        // Back from Saturday 11-28: Sun 11-22, Sat 11-21, Sun 11-15, Sat 11-14.
        assert_eq!(b.days, vec![day(WEDNESDAY) - 3, day(WEDNESDAY) - 4, day(WEDNESDAY) - 10, day(WEDNESDAY) - 11]);
    }

    #[test]
    fn pjm_takes_the_four_highest_of_five_and_adds_the_difference() {
        // Event hours 14-16; the five most recent weekdays are offsets 1, 2, 5, 6, 7.
        let event_load = |back: i64| match back {
            1 => 80.0,
            2 => 120.0,
            5 => 90.0,
            6 => 110.0,
            7 => 100.0,
            _ => 95.0,
        };
        let loads = series(|back, hour| {
            Some(match (back, hour) {
                (0, 10..=12) => 130.0, // event morning: 30 above the typical 100 at those hours
                (0, _) => 0.0,
                (_, 14..=15) => event_load(back),
                _ => 100.0,
            })
        });
        let b = PJM_HIGH_4_OF_5.baseline(&loads, WEDNESDAY + 14 * H, WEDNESDAY + 16 * H, &BTreeSet::new()).unwrap();
        // Highest four of {80, 120, 90, 110, 100}: Tuesday's 80 is dropped (days most recent first).
        let d = day(WEDNESDAY);
        assert_eq!(b.days, vec![d - 2, d - 5, d - 6, d - 7]);
        // Adjustment window 10:00-13:00: event day 130 against 100 on the chosen days: +30.
        assert_eq!(b.adjustment, Some(30.0));
        assert_eq!(b.slots_wh, vec![105.0 + 30.0; 2]);
    }

    #[test]
    fn nyiso_drops_low_usage_days_and_bounds_its_ratio() {
        // One of the ten weekdays is an outage (load 10, under 25 % of the average).
        let loads = series(|back, hour| {
            Some(match (back, hour) {
                (0, 12..=13) => 60.0, // event morning at 60 % of typical: bounded to 0.8
                (0, _) => 0.0,
                (9, _) => 10.0,
                (b, _) => 100.0 + b as f64,
            })
        });
        let b = NYISO_CBL.baseline(&loads, WEDNESDAY + 16 * H, WEDNESDAY + 17 * H, &BTreeSet::new()).unwrap();
        let d = day(WEDNESDAY);
        // Weekdays back: 1, 2, 5, 6, 7, 8, (9 dropped), 12, 13, 14, 15 -> ten days; the five
        // highest are the oldest: 8, 12, 13, 14, 15.
        assert_eq!(b.days, vec![d - 8, d - 12, d - 13, d - 14, d - 15]);
        assert_eq!(b.adjustment, Some(0.8));
        let average = 100.0 + (15 + 14 + 13 + 12 + 8) as f64 / 5.0;
        assert!((b.slots_wh[0] - average * 0.8).abs() < 1e-9);
    }

    #[test]
    fn too_little_history_is_an_error_not_a_guess() {
        let loads = series(|back, _| (back < 5).then_some(100.0));
        let err = CAISO_10_IN_10.baseline(&loads, WEDNESDAY + 16 * H, WEDNESDAY + 17 * H, &BTreeSet::new()).unwrap_err();
        assert!(matches!(err, BaselineError::InsufficientHistory { needed: 10, found: 2, .. }), "{err}");
    }

    #[test]
    fn meter_before_holds_the_pre_event_rate() {
        let mut slots = HashMap::new();
        // 5-minute slots: 600, 500, ..., the half hour before is 6 slots averaging 350.
        for (i, wh) in [600.0, 500.0, 400.0, 300.0, 200.0, 100.0].into_iter().enumerate() {
            slots.insert((WEDNESDAY - 1800) / 300 + i as i64, wh);
        }
        let loads = LoadSeries { slot_secs: 300, origin: 0, slots };
        let b = meter_before(&loads, WEDNESDAY, WEDNESDAY + 900).unwrap();
        assert_eq!(b.slots_wh, vec![350.0; 3]);
        assert_eq!(
            meter_before(&LoadSeries { slot_secs: 300, origin: 0, slots: HashMap::new() }, WEDNESDAY, WEDNESDAY + 900),
            Err(BaselineError::NoPreEventReading(1800))
        );
    }
}
