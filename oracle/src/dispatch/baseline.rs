//! Customer baselines: what a device would have drawn or delivered had there been no
//! event. Delivery is the difference between the baseline and the meter.
//!
//! Two families:
//! - **Day matching** for loads and meters ([`DayMatching`]), as data: which days (like
//!   days, all, weekdays, weekend days; the event day itself for prior-hours rules), how many
//!   of the most recent, which of those (all, the highest, the middle), over which hours (the
//!   event's, or a window before it, held), and a same-day adjustment (ratio within limits,
//!   additive, additive up only). Every published method in [`DAY_MATCHING`] is this one
//!   algorithm with its parameters, with its source and how far that source confirms it
//!   ([`Status`]); `DISPATCHING.md` has the table.
//! - **Regression** for loads and meters ([`super::regression`]): CalTRACK's hourly
//!   time-of-week-and-temperature model, from the region's temperatures.
//! - **Meter before / meter after** for batteries and EVs ([`meter_before`]): the device's
//!   average rate just before the event, held through it.
//!
//! Loads are net import in Wh per slot (`import - export`), keyed by slot index
//! `(t - origin) / slot_secs` (devices need not meter on round times); days are UTC days.

use std::collections::BTreeSet;

use serde::Serialize;

use super::regression::{self, RegressionError, Temperatures};
pub use super::series::LoadSeries;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool {
    /// How many most-recent eligible days form the window.
    pub days: usize,
    /// Which of them are averaged, by their average load over the reference hours.
    pub keep: Keep,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Keep {
    All,
    /// The highest `n`.
    Highest(usize),
    /// The middle `n`: as many highest and lowest dropped as balance (ERCOT "middle 8 of 10").
    Middle(usize),
}

/// Which days may form the window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DayType {
    /// Weekdays for a weekday event (the `weekday` pool), weekend days for a weekend one.
    Like,
    /// Any day (the `weekday` pool).
    All,
    /// Weekdays only, whatever the event day (the `weekday` pool).
    Weekdays,
    /// Weekend days only (the `weekend` pool).
    Weekends,
}

/// The hours of each day that make the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reference {
    /// The event's hours: the baseline follows the days' shape through the event.
    EventHours,
    /// A window before the event (`[start - from, start - to)`): the days' average load
    /// there, held through the event (a "prior hours" baseline).
    Before { from_secs_before: i64, to_secs_before: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdjustmentKind {
    /// Baseline times (event-day load / baseline load) in the window, clamped.
    Ratio { min: f64, max: f64 },
    /// Baseline plus the average difference (event day - baseline) in the window.
    Additive,
    /// As `Additive`, never negative (an adjustment only ever raises the baseline).
    AdditiveUpOnly,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// The window is `[event_start - from_secs_before, event_start - to_secs_before)`.
    pub from_secs_before: i64,
    pub to_secs_before: i64,
}

/// How far a method's rule is confirmed by its published source (`DISPATCHING.md` cites them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Confirmed,
    PartlyConfirmed,
    Unverified,
}

/// A customer baseline by matching days, as data: which days, how many, which of them,
/// which hours, and the same-day adjustment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DayMatching {
    pub name: &'static str,
    /// Days before the event day searched for eligible days.
    pub lookback_days: i64,
    pub day_type: DayType,
    /// The event day itself is one of the days (CenterPoint's prior-hours rule).
    pub include_event_day: bool,
    pub weekday: Pool,
    pub weekend: Pool,
    pub reference: Reference,
    /// Drop days whose average reference-hours load is under this fraction of the window's
    /// average (low-usage days: outages, holidays at a business).
    pub low_usage_fraction: Option<f64>,
    pub adjustment: Option<Adjustment>,
    pub status: Status,
    /// Where the rule is published, and what of it could not be checked.
    pub source: &'static str,
}

const HOUR: i64 = 3600;

const LIKE_10_OF_10: DayMatching = DayMatching {
    name: "",
    lookback_days: 45,
    day_type: DayType::Like,
    include_event_day: false,
    weekday: Pool { days: 10, keep: Keep::All },
    weekend: Pool { days: 4, keep: Keep::All },
    reference: Reference::EventHours,
    low_usage_fraction: None,
    adjustment: None,
    status: Status::Unverified,
    source: "",
};

/// The CAISO load point adjustment as this oracle applies it: a ratio over the three hours
/// ending one hour before the event, within ±20 % (the window and the ratio form are
/// unverified; the 20 % limit is confirmed).
const CAISO_ADJUSTMENT: Adjustment =
    Adjustment { kind: AdjustmentKind::Ratio { min: 0.8, max: 1.2 }, from_secs_before: 4 * HOUR, to_secs_before: HOUR };

/// CAISO "10 in 10" customer load baseline: the 10 most recent eligible weekdays (4 in 4
/// on weekends and holidays) in 45 days, with the load point adjustment limited to ±20 %.
pub const CAISO_10_IN_10: DayMatching = DayMatching {
    name: "CAISO_10_IN_10",
    adjustment: Some(CAISO_ADJUSTMENT),
    status: Status::PartlyConfirmed,
    source: "CAISO Baseline Accuracy Work Group draft proposal (April 2017): 10 of the most recent 10 eligible days, \
             same-day adjustment limited to 20 %. Unverified: weekend 4 of 4, 45-day lookback, adjustment window and form",
    ..LIKE_10_OF_10
};

/// PJM "High 4 of 5" with the symmetric additive adjustment.
pub const PJM_HIGH_4_OF_5: DayMatching = DayMatching {
    name: "PJM_HIGH_4_OF_5",
    weekday: Pool { days: 5, keep: Keep::Highest(4) },
    weekend: Pool { days: 3, keep: Keep::Highest(2) },
    low_usage_fraction: Some(0.25),
    adjustment: Some(Adjustment { kind: AdjustmentKind::Additive, from_secs_before: 4 * HOUR, to_secs_before: HOUR }),
    status: Status::Unverified,
    source: "PJM Manual 11 (economic default CBL; its text was not reachable): every parameter from secondary descriptions",
    ..LIKE_10_OF_10
};

/// NYISO customer baseline load (average-day CBL).
pub const NYISO_CBL: DayMatching = DayMatching {
    name: "NYISO_CBL",
    lookback_days: 30,
    weekday: Pool { days: 10, keep: Keep::Highest(5) },
    weekend: Pool { days: 3, keep: Keep::Highest(2) },
    low_usage_fraction: Some(0.25),
    adjustment: Some(Adjustment {
        kind: AdjustmentKind::Ratio { min: 0.8, max: 1.2 },
        from_secs_before: 4 * HOUR,
        to_secs_before: 2 * HOUR,
    }),
    status: Status::Unverified,
    source: "NYISO Manual 7 / Con Edison CBL verification methodology (texts not reachable): 5 highest of 10, low-usage \
             exclusion, weather adjustment within 0.8-1.2 from secondary descriptions",
    ..LIKE_10_OF_10
};

const AEMO_SOURCE: &str = "AEMO WDR baseline methodology register: four methods on the CAISO 10-of-10 framework by day type \
                           (confirmed). Unverified: the adjustment (CAISO's used here), window and caps";

/// AEMO wholesale demand response, all days: the 10 most recent days of any type.
pub const AEMO_ALL_DAYS: DayMatching = DayMatching {
    name: "AEMO_ALL_DAYS",
    day_type: DayType::All,
    adjustment: Some(CAISO_ADJUSTMENT),
    status: Status::PartlyConfirmed,
    source: AEMO_SOURCE,
    ..LIKE_10_OF_10
};

/// AEMO, business days: the 10 most recent business days (weekdays; no holiday calendar).
pub const AEMO_BUSINESS_DAYS: DayMatching = DayMatching { name: "AEMO_BUSINESS_DAYS", day_type: DayType::Weekdays, ..AEMO_ALL_DAYS };

/// AEMO, non-business days: the 10 most recent weekend days.
pub const AEMO_NON_BUSINESS_DAYS: DayMatching = DayMatching {
    name: "AEMO_NON_BUSINESS_DAYS",
    lookback_days: 45,
    day_type: DayType::Weekends,
    weekend: Pool { days: 10, keep: Keep::All },
    ..AEMO_ALL_DAYS
};

/// AEMO, composite: business days for a business-day event, non-business days otherwise.
pub const AEMO_COMPOSITE: DayMatching =
    DayMatching { name: "AEMO_COMPOSITE", day_type: DayType::Like, weekend: Pool { days: 10, keep: Keep::All }, ..AEMO_ALL_DAYS };

/// PG&E PowerSaver: the 5 highest-usage of the 10 previous weekdays; on weekends the 3
/// highest of the 5 previous weekend days. Averaged plainly: the FAQ gives neither its
/// weights nor its weather adjustment's hours, so neither is applied.
pub const PGE_5_OF_10: DayMatching = DayMatching {
    name: "PGE_5_OF_10",
    weekday: Pool { days: 10, keep: Keep::Highest(5) },
    weekend: Pool { days: 5, keep: Keep::Highest(3) },
    status: Status::PartlyConfirmed,
    source: "PG&E PowerSaver FAQ: 5 highest of 10 previous weekdays, 3 highest of 5 weekend days/holidays, event and \
             outage days excluded (confirmed). Not given: the weights and the weather adjustment's hours (not applied)",
    ..LIKE_10_OF_10
};

/// UK ESO Demand Flexibility Service 2022/23: the same period on the previous 10 weekdays,
/// plus the additive in-day adjustment over the 3 hours ending 1 hour before the event.
pub const UK_DFS_2022: DayMatching = DayMatching {
    name: "UK_DFS_2022",
    day_type: DayType::Weekdays,
    adjustment: Some(Adjustment { kind: AdjustmentKind::Additive, from_secs_before: 4 * HOUR, to_secs_before: HOUR }),
    status: Status::PartlyConfirmed,
    source: "UK ESO DFS 2022/23: 10 previous weekdays excluding event days plus the in-day additive adjustment over the \
             six half-hours of the 3 h window ending 1 h before (rule: trade press; formula: a quote of the procurement \
             rules). Removed for domestic sites in 2023/24",
    ..LIKE_10_OF_10
};

/// ERCOT ERS "middle 8 of 10" like days: the highest and lowest of the 10 dropped.
pub const ERCOT_MIDDLE_8_OF_10: DayMatching = DayMatching {
    name: "ERCOT_MIDDLE_8_OF_10",
    weekday: Pool { days: 10, keep: Keep::Middle(8) },
    weekend: Pool { days: 10, keep: Keep::Middle(8) },
    status: Status::PartlyConfirmed,
    source: "ERCOT EILS default baseline methodology, DSWG slides (Dec 2016): the method is confirmed; \
             dropping the highest and the lowest day is inferred from its name; its event-day adjustment unverified (none)",
    ..LIKE_10_OF_10
};

/// A flexibility services standard agreement's positive-only adjustment on a 10-of-10
/// baseline: the load in the hour starting 2 hours before the event minus the baseline
/// there, never negative.
pub const FLEX_10_OF_10_UP: DayMatching = DayMatching {
    name: "FLEX_10_OF_10_UP",
    adjustment: Some(Adjustment { kind: AdjustmentKind::AdditiveUpOnly, from_secs_before: 2 * HOUR, to_secs_before: HOUR }),
    status: Status::PartlyConfirmed,
    source: "A flexibility services standard agreement, \"Baseline Adjustment\" clause: positive-only, the hour starting 2 h \
             before, none for batteries (confirmed, with its worked example). The 10-of-10 day selection is this oracle's choice",
    ..LIKE_10_OF_10
};

/// CenterPoint Energy (Texas) C&I load management: the hour starting 2 hours before the
/// event, on the event day and the 4 preceding business days, averaged and held.
pub const CENTERPOINT_PRIOR_HOUR: DayMatching = DayMatching {
    name: "CENTERPOINT_PRIOR_HOUR",
    lookback_days: 14,
    day_type: DayType::Weekdays,
    include_event_day: true,
    weekday: Pool { days: 5, keep: Keep::All },
    reference: Reference::Before { from_secs_before: 2 * HOUR, to_secs_before: HOUR },
    status: Status::Confirmed,
    source: "CenterPoint Energy Texas C&I load management SOP, with its worked example (18 July 2008). Its performance \
             rule (the highest four consecutive 15-minute intervals) is not this oracle's (delivery per interval)",
    ..LIKE_10_OF_10
};

pub const DAY_MATCHING: [DayMatching; 12] = [
    CAISO_10_IN_10,
    PJM_HIGH_4_OF_5,
    NYISO_CBL,
    AEMO_ALL_DAYS,
    AEMO_BUSINESS_DAYS,
    AEMO_NON_BUSINESS_DAYS,
    AEMO_COMPOSITE,
    PGE_5_OF_10,
    UK_DFS_2022,
    ERCOT_MIDDLE_8_OF_10,
    FLEX_10_OF_10_UP,
    CENTERPOINT_PRIOR_HOUR,
];

pub fn day_matching(name: &str) -> Option<DayMatching> {
    DAY_MATCHING.into_iter().find(|m| m.name == name)
}

/// The program's choice for loads: one method, or the one most accurate for each device.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoadMethod {
    Fixed(DayMatching),
    /// CalTRACK's hourly regression ([`regression`]).
    Regression,
    /// Per device, the method of [`DAY_MATCHING`] or the regression with the lowest
    /// relative RMSE on the device's recent days like the event's, if it is within
    /// [`MAX_RRMSE`].
    MostAccurate,
}

/// A method a device can be measured with: one of [`DAY_MATCHING`] or the regression.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Candidate {
    Days(DayMatching),
    Regression,
}

/// A device's history as a measurement loaded it: its loads, its region's temperatures, the
/// days that do not count, and the first day loaded.
struct History<'a> {
    loads: &'a LoadSeries,
    temperatures: &'a Temperatures,
    excluded: &'a BTreeSet<i64>,
    earliest: i64,
}

impl Candidate {
    fn name(&self) -> &'static str {
        match self {
            Candidate::Days(m) => m.name,
            Candidate::Regression => regression::NAME,
        }
    }

    fn baseline(&self, h: &History, start: i64, end: i64) -> Result<Baseline, BaselineError> {
        match self {
            Candidate::Days(m) => m.baseline_since(h.loads, start, end, h.excluded, h.earliest),
            Candidate::Regression => {
                let (slots_wh, days) = regression::baseline(h.loads, h.temperatures, start, end, h.excluded, h.earliest)?;
                Ok(Baseline { method: regression::NAME, slots_wh, days, adjustment: None })
            }
        }
    }

    /// The method's accuracy on the test `days` (the baseline as if the event had been on
    /// each, from history no older than `earliest`, without that day). Day matching is
    /// computed day by day; the regression is fitted once without the test days (a
    /// hold-out) and predicts them.
    fn accuracy(&self, h: &History, start: i64, end: i64, days: &[i64]) -> Option<Accuracy> {
        match self {
            Candidate::Days(m) => accuracy(m, h.loads, start, end, h.excluded, days, h.earliest),
            Candidate::Regression => {
                let mut without = h.excluded.clone();
                without.extend(days);
                let (model, _) = regression::fit(h.loads, h.temperatures, start, &without, h.earliest).ok()?;
                accuracy_of(h.loads, start, end, days, |shifted_start, shifted_end, _| {
                    regression::predict_slots(&model, h.loads, h.temperatures, shifted_start, shifted_end).ok()
                })
            }
        }
    }
}

/// The program baseline name of [`LoadMethod::MostAccurate`].
pub const MOST_ACCURATE: &str = "MOST_ACCURATE";
/// The most relative RMSE a baseline may have on a device's test days to measure it (AEMO
/// judges baselines this way; its threshold, around 20 %, from a secondary source).
pub const MAX_RRMSE: f64 = 0.2;
/// Days like the event's on which a baseline is tested, at most and at least.
pub const TEST_DAYS: usize = 10;
pub const MIN_TEST_DAYS: usize = 3;

impl LoadMethod {
    pub fn named(name: &str) -> Option<Self> {
        match name {
            MOST_ACCURATE => Some(LoadMethod::MostAccurate),
            regression::NAME => Some(LoadMethod::Regression),
            _ => day_matching(name).map(LoadMethod::Fixed),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            LoadMethod::Fixed(m) => m.name,
            LoadMethod::Regression => regression::NAME,
            LoadMethod::MostAccurate => MOST_ACCURATE,
        }
    }

    /// The days of history a measurement reads.
    pub fn lookback_days(&self) -> i64 {
        match self {
            LoadMethod::Fixed(m) => m.lookback_days,
            LoadMethod::Regression => regression::LOOKBACK_DAYS,
            LoadMethod::MostAccurate => DAY_MATCHING.iter().map(|m| m.lookback_days).max().unwrap_or(0).max(regression::LOOKBACK_DAYS),
        }
    }

    /// Whether the method reads the region's temperatures.
    pub fn uses_temperatures(&self) -> bool {
        matches!(self, LoadMethod::Regression | LoadMethod::MostAccurate)
    }

    /// The baseline of a device for an event over `[start, end)`, with the accuracy of the
    /// method on the device's recent days (history no older than the method's lookback, as
    /// a measurement loads it).
    pub fn baseline(
        &self,
        loads: &LoadSeries,
        temperatures: &Temperatures,
        start: i64,
        end: i64,
        excluded: &BTreeSet<i64>,
    ) -> Result<(Baseline, Option<Accuracy>), BaselineError> {
        let history = History { loads, temperatures, excluded, earliest: start.div_euclid(86_400) - self.lookback_days() };
        let days = test_days(loads, start, end, excluded, self.lookback_days());
        let fixed = |method: Candidate| -> Result<(Baseline, Option<Accuracy>), BaselineError> {
            let baseline = method.baseline(&history, start, end)?;
            Ok((baseline, method.accuracy(&history, start, end, &days)))
        };
        match self {
            LoadMethod::Fixed(m) => fixed(Candidate::Days(*m)),
            LoadMethod::Regression => fixed(Candidate::Regression),
            LoadMethod::MostAccurate => {
                let candidates = DAY_MATCHING.iter().map(|m| Candidate::Days(*m)).chain([Candidate::Regression]);
                let mut tested: Vec<(Candidate, Accuracy)> =
                    candidates.filter_map(|m| Some((m, m.accuracy(&history, start, end, &days)?))).collect();
                // Lowest RRMSE first; the sort is stable, so a tie keeps the table's order.
                tested.sort_by(|a, b| a.1.rrmse.total_cmp(&b.1.rrmse));
                let Some((best, best_accuracy)) = tested.first().copied() else { return Err(BaselineError::Untestable(MIN_TEST_DAYS)) };
                if best_accuracy.rrmse > MAX_RRMSE {
                    return Err(BaselineError::Inaccurate { best: best.name(), rrmse: best_accuracy.rrmse, days: best_accuracy.days });
                }
                // The best that computes for the event itself.
                let mut last_error = None;
                for (method, accuracy) in tested.into_iter().take_while(|(_, a)| a.rrmse <= MAX_RRMSE) {
                    match method.baseline(&history, start, end) {
                        Ok(b) => return Ok((b, Some(accuracy))),
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(last_error.unwrap_or(BaselineError::Untestable(MIN_TEST_DAYS)))
            }
        }
    }
}

/// How well a baseline method predicted a device's load on recent days like the event's
/// (without events), over the event's hours: relative RMSE and relative bias (baseline
/// minus metered, over the mean metered load).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Accuracy {
    pub days: usize,
    pub rrmse: f64,
    pub bias: f64,
}

/// The days a device's baselines are tested on: the [`TEST_DAYS`] most recent days before
/// the event day like it (weekday or weekend), not excluded, metered through the event's
/// hours. Every method is tested on the same days.
pub fn test_days(loads: &LoadSeries, start: i64, end: i64, excluded: &BTreeSet<i64>, lookback_days: i64) -> Vec<i64> {
    let event_day = start.div_euclid(86_400);
    let (Some(first), Some(last)) = (loads.slot_at(start), loads.slot_at(end)) else { return vec![] };
    let per_day = 86_400 / loads.slot_secs.max(1);
    (1..=lookback_days)
        .map(|back| event_day - back)
        .filter(|d| is_weekend(*d) == is_weekend(event_day) && !excluded.contains(d))
        .filter(|d| (first..last).all(|s| loads.slots.contains_key(&(s - (event_day - d) * per_day))))
        .take(TEST_DAYS)
        .collect()
}

/// `method`'s accuracy for a device on `days` (from [`test_days`]): the baseline as if the
/// event had been on each, from history no older than `earliest` (what the measurement
/// loaded), against what was metered. `None` with fewer than [`MIN_TEST_DAYS`] days, or
/// when the method cannot be computed on every one of them (it is then untested, not
/// judged on the days that suit it).
pub fn accuracy(
    method: &DayMatching,
    loads: &LoadSeries,
    start: i64,
    end: i64,
    excluded: &BTreeSet<i64>,
    days: &[i64],
    earliest: i64,
) -> Option<Accuracy> {
    accuracy_of(loads, start, end, days, |shifted_start, shifted_end, day| {
        let mut without = excluded.clone();
        without.insert(day);
        method.baseline_since(loads, shifted_start, shifted_end, &without, earliest).ok().map(|b| b.slots_wh)
    })
}

/// Relative RMSE and bias of `predict(start, end, day)` (a baseline's slots for the event's
/// hours moved to `day`) against what was metered on each of `days`.
fn accuracy_of(
    loads: &LoadSeries,
    start: i64,
    end: i64,
    days: &[i64],
    predict: impl Fn(i64, i64, i64) -> Option<Vec<f64>>,
) -> Option<Accuracy> {
    if days.len() < MIN_TEST_DAYS {
        return None;
    }
    let event_day = start.div_euclid(86_400);
    let (first, last) = (loads.slot_at(start)?, loads.slot_at(end)?);
    let per_day = 86_400 / loads.slot_secs.max(1);
    let (mut n, mut sum_error, mut sum_squared, mut sum_metered) = (0usize, 0.0, 0.0, 0.0);
    for day in days {
        let shift = (event_day - day) * 86_400;
        let baseline = predict(start - shift, end - shift, *day)?;
        for (b, s) in baseline.iter().zip(first..last) {
            let m = *loads.slots.get(&(s - (event_day - day) * per_day))?;
            sum_error += b - m;
            sum_squared += (b - m) * (b - m);
            sum_metered += m;
            n += 1;
        }
    }
    let mean = sum_metered / n.max(1) as f64;
    if n == 0 || mean.abs() < 1e-9 {
        return None;
    }
    Some(Accuracy { days: days.len(), rrmse: (sum_squared / n as f64).sqrt() / mean.abs(), bias: sum_error / n as f64 / mean.abs() })
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
    #[error("no baseline method could be tested on {0} or more recent days like the event's")]
    Untestable(usize),
    #[error("the most accurate baseline, {best}, has a relative RMSE of {rrmse:.2} on {days} recent days, over the 0.20 allowed")]
    Inaccurate { best: &'static str, rrmse: f64, days: usize },
    #[error("CALTRACK_HOURLY: {0}")]
    Regression(#[from] RegressionError),
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

impl DayMatching {
    /// Whether `day` is of the kind this method takes for an event on a weekend (or not).
    fn takes(&self, day: i64, event_on_weekend: bool) -> bool {
        match self.day_type {
            DayType::Like => is_weekend(day) == event_on_weekend,
            DayType::All => true,
            DayType::Weekdays => !is_weekend(day),
            DayType::Weekends => is_weekend(day),
        }
    }

    /// The pool of days for an event on a weekend (or not), and what the days are called.
    fn pool(&self, event_on_weekend: bool) -> (Pool, &'static str) {
        match self.day_type {
            DayType::Like if event_on_weekend => (self.weekend, "weekend"),
            DayType::Like | DayType::Weekdays => (self.weekday, "weekday"),
            DayType::All => (self.weekday, "any"),
            DayType::Weekends => (self.weekend, "weekend"),
        }
    }

    /// The baseline for an event over `[start, end)`; `excluded` are days that do not count
    /// (event days, holidays, outages).
    pub fn baseline(&self, loads: &LoadSeries, start: i64, end: i64, excluded: &BTreeSet<i64>) -> Result<Baseline, BaselineError> {
        self.baseline_since(loads, start, end, excluded, i64::MIN)
    }

    /// As [`Self::baseline`], with no day before `earliest` (the history a measurement loads).
    fn baseline_since(
        &self,
        loads: &LoadSeries,
        start: i64,
        end: i64,
        excluded: &BTreeSet<i64>,
        earliest: i64,
    ) -> Result<Baseline, BaselineError> {
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
        let (pool, kind) = self.pool(weekend);
        let reference: Vec<i64> = match self.reference {
            Reference::EventHours => event_slots.clone().collect(),
            Reference::Before { from_secs_before, to_secs_before } => {
                (first - from_secs_before.div_euclid(slot)..first - to_secs_before.div_euclid(slot)).collect()
            }
        };
        let shifted = |day: i64| {
            let shift = (event_day - day) * per_day;
            reference.iter().map(move |s| s - shift)
        };
        // Eligible days, most recent first, with their average load over the reference hours.
        let first_back = if self.include_event_day { 0 } else { 1 };
        let mut eligible: Vec<(i64, f64)> = (first_back..=self.lookback_days)
            .map(|back| event_day - back)
            .filter(|d| *d >= earliest && self.takes(*d, weekend) && (*d == event_day || !excluded.contains(d)))
            .filter_map(|d| Some((d, loads.mean(shifted(d))?)))
            .collect();
        // A prior-hours rule is the event day's own hours and earlier days': never earlier days alone.
        if self.include_event_day && eligible.first().is_none_or(|(d, _)| *d != event_day) {
            return Err(BaselineError::InsufficientHistory {
                method: self.name,
                kind,
                needed: pool.days,
                found: 0,
                lookback: self.lookback_days,
            });
        }
        if let Some(fraction) = self.low_usage_fraction {
            let window = &eligible[..pool.days.min(eligible.len())];
            let average = window.iter().map(|(_, l)| l).sum::<f64>() / window.len().max(1) as f64;
            eligible.retain(|(_, load)| *load >= fraction * average);
        }
        if eligible.len() < pool.days {
            return Err(BaselineError::InsufficientHistory {
                method: self.name,
                kind,
                needed: pool.days,
                found: eligible.len(),
                lookback: self.lookback_days,
            });
        }
        let mut chosen = eligible[..pool.days].to_vec();
        // Highest average load first; the sort is stable, so ties keep the more recent day.
        chosen.sort_by(|a, b| b.1.total_cmp(&a.1));
        match pool.keep {
            Keep::All => {}
            Keep::Highest(n) => chosen.truncate(n),
            Keep::Middle(n) => {
                let drop_high = (chosen.len().saturating_sub(n)) / 2;
                chosen = chosen.into_iter().skip(drop_high).take(n).collect();
            }
        }
        chosen.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
        let days: Vec<i64> = chosen.iter().map(|(d, _)| *d).collect();
        let mut slots_wh: Vec<f64> = match self.reference {
            // Every chosen day has every reference slot (its mean exists).
            Reference::EventHours => event_slots
                .clone()
                .map(|offset| days.iter().map(|d| loads.slots[&(offset - (event_day - d) * per_day)]).sum::<f64>() / days.len() as f64)
                .collect(),
            Reference::Before { .. } => {
                let held = chosen.iter().map(|(_, load)| load).sum::<f64>() / chosen.len() as f64;
                vec![held; event_slots.clone().count()]
            }
        };
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
                AdjustmentKind::Additive | AdjustmentKind::AdditiveUpOnly => {
                    let mut delta = actual - typical;
                    if adj.kind == AdjustmentKind::AdditiveUpOnly {
                        delta = delta.max(0.0);
                    }
                    slots_wh.iter_mut().for_each(|b| *b += delta);
                    delta
                }
            })
        });
        Ok(Baseline { method: self.name, slots_wh, days, adjustment })
    }
}

/// The name of [`meter_before`] in reports.
pub const METER_BEFORE_AFTER: &str = "METER_BEFORE_AFTER";

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
    Ok(Baseline { method: METER_BEFORE_AFTER, slots_wh: vec![rate; (last - first).max(0) as usize], days: vec![], adjustment: None })
}

#[cfg(test)]
mod tests {
    //! No ISO's own worked example could be retrieved here (see DISPATCHING.md): these
    //! cases are computed by hand from the rules as stated above, on loads chosen so that
    //! every selection step changes the answer.
    use super::*;
    use std::collections::HashMap;

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

    /// The published worked example of the positive-only adjustment (a flexibility services
    /// standard agreement): baseline 500 kW and load 600 kW in the hour starting 2 hours
    /// before the event -> +100 kW; load 400 kW -> 0 kW (never negative). Hourly slots, so
    /// Wh per slot are the kW.
    #[test]
    fn worked_example_positive_only_adjustment() {
        let (start, end) = (WEDNESDAY + 17 * H, WEDNESDAY + 18 * H);
        for (load_before, expected) in [(600.0, 100.0), (400.0, 0.0)] {
            let loads = series(|back, hour| {
                Some(match (back, hour) {
                    (0, 15) => load_before, // the hour starting 2 h before the event
                    (0, _) => 0.0,
                    _ => 500.0,
                })
            });
            let b = FLEX_10_OF_10_UP.baseline(&loads, start, end, &BTreeSet::new()).unwrap();
            assert_eq!(b.adjustment, Some(expected), "load {load_before} kW");
            assert_eq!(b.slots_wh, vec![500.0 + expected]);
        }
        // "No baseline adjustment for batteries": `measure` tests it (storage is metered before/after).
    }

    /// CenterPoint Energy's worked example of its calendar: a curtailment on Friday 18 July
    /// 2008 from 16:00 to 17:00 uses 14:00-15:00 (the 15-minute intervals ending 14:15 to
    /// 15:00) of that day and of the four preceding business days, 14-17 July, averaged.
    #[test]
    fn worked_example_centerpoint_calendar() {
        const FRIDAY_2008_07_18: i64 = 1_216_339_200;
        let quarter = 900;
        let mut slots = HashMap::new();
        // Two weeks of 15-minute kWh, each day's 14:00-15:00 at its day of month (kW = kWh x 4),
        // everything else at 1; the weekend before at 99 (it must not count).
        for back in 0..14 {
            let day_start = FRIDAY_2008_07_18 - back * 86_400;
            let day_of_month = 18 - back;
            for q in 0..96 {
                let t = day_start + q * quarter;
                let hour = q / 4;
                let kwh = if is_weekend(day(day_start)) {
                    99.0
                } else if hour == 14 {
                    day_of_month as f64
                } else {
                    1.0
                };
                slots.insert(t / quarter, kwh);
            }
        }
        let loads = LoadSeries { slot_secs: quarter, origin: 0, slots };
        let (start, end) = (FRIDAY_2008_07_18 + 16 * H, FRIDAY_2008_07_18 + 17 * H);
        assert!(!is_weekend(day(FRIDAY_2008_07_18)) && is_weekend(day(FRIDAY_2008_07_18) - 6));
        let b = CENTERPOINT_PRIOR_HOUR.baseline(&loads, start, end, &BTreeSet::from([day(start)])).unwrap();
        let d = day(FRIDAY_2008_07_18);
        assert_eq!(b.days, vec![d, d - 1, d - 2, d - 3, d - 4], "18, 17, 16, 15, 14 July");
        // (18 + 17 + 16 + 15 + 14) / 5 = 16 kWh a quarter hour (64 kW), held for the event's four.
        assert_eq!(b.slots_wh, vec![16.0; 4]);
        assert_eq!(b.adjustment, None);
    }

    #[test]
    fn middle_8_of_10_drops_the_highest_and_the_lowest_day() {
        let loads = series(|back, _| Some(100.0 + back as f64));
        let b = ERCOT_MIDDLE_8_OF_10.baseline(&loads, WEDNESDAY + 16 * H, WEDNESDAY + 17 * H, &BTreeSet::new()).unwrap();
        // The ten most recent weekdays: 1, 2, 5, 6, 7, 8, 9, 12, 13, 14; the highest load is
        // the oldest (14), the lowest the newest (1): both dropped.
        let d = day(WEDNESDAY);
        assert_eq!(b.days, [2, 5, 6, 7, 8, 9, 12, 13].iter().map(|back| d - back).collect::<Vec<_>>());
    }

    #[test]
    fn day_types_choose_the_days_they_name() {
        let loads = series(|back, _| Some(100.0 + back as f64));
        let d = day(WEDNESDAY);
        let at = |m: &DayMatching| m.baseline(&loads, WEDNESDAY + 16 * H, WEDNESDAY + 17 * H, &BTreeSet::new()).unwrap().days;
        assert_eq!(at(&AEMO_ALL_DAYS), (1..=10).map(|back| d - back).collect::<Vec<_>>(), "any day");
        assert!(at(&AEMO_BUSINESS_DAYS).iter().all(|x| !is_weekend(*x)));
        let weekend = at(&AEMO_NON_BUSINESS_DAYS);
        assert!(weekend.len() == 10 && weekend.iter().all(|x| is_weekend(*x)), "a weekday event measured on weekend days");
        // PG&E: the 5 highest of the 10 most recent weekdays (the oldest five here).
        assert_eq!(at(&PGE_5_OF_10), [8, 9, 12, 13, 14].iter().map(|back| d - back).collect::<Vec<_>>());
        // UK DFS: the 10 most recent weekdays (offsets 1, 2, 5-9, 12-14: 107.7 on average) and
        // its additive in-day adjustment: the event morning ran at 100, so -7.7, back to 100.
        let b = UK_DFS_2022.baseline(&loads, WEDNESDAY + 16 * H, WEDNESDAY + 17 * H, &BTreeSet::new()).unwrap();
        assert!((b.adjustment.unwrap() + 7.7).abs() < 1e-9 && (b.slots_wh[0] - 100.0).abs() < 1e-9, "{b:?}");
        // On a Saturday: business days are still weekdays, composite takes weekend days.
        let saturday = WEDNESDAY + 3 * 86_400;
        let on_saturday = |m: &DayMatching| m.baseline(&loads, saturday + 10 * H, saturday + 11 * H, &BTreeSet::new()).unwrap().days;
        assert!(on_saturday(&AEMO_BUSINESS_DAYS).iter().all(|x| !is_weekend(*x)));
        let composite = on_saturday(&AEMO_COMPOSITE);
        assert!(composite.len() == 10 && composite.iter().all(|x| is_weekend(*x)));
        // CenterPoint's rule counts the event day's own prior hour: without it, no baseline.
        let no_event_day = series(|back, _| (back > 0).then_some(100.0));
        assert!(CENTERPOINT_PRIOR_HOUR.baseline(&no_event_day, WEDNESDAY + 16 * H, WEDNESDAY + 17 * H, &BTreeSet::new()).is_err());
        // Names are unique, and every method says where it comes from.
        let names: BTreeSet<&str> = DAY_MATCHING.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), DAY_MATCHING.len());
        assert!(DAY_MATCHING.iter().all(|m| m.source.len() > 40));
    }

    #[test]
    fn accuracy_is_judged_on_recent_like_days_and_the_most_accurate_method_is_chosen() {
        let (start, end) = (WEDNESDAY + 16 * H, WEDNESDAY + 18 * H);
        // Weekdays steady at 100 in every hour (weekends at 500: they must not matter).
        let steady = series(|back, _| Some(if is_weekend(day(WEDNESDAY) - back) { 500.0 } else { 100.0 }));
        let days = test_days(&steady, start, end, &BTreeSet::new(), 45);
        let a = accuracy(&CAISO_10_IN_10, &steady, start, end, &BTreeSet::new(), &days, day(WEDNESDAY) - 45).unwrap();
        assert_eq!((a.days, a.rrmse, a.bias), (TEST_DAYS, 0.0, 0.0));
        let (b, chosen) = LoadMethod::MostAccurate.baseline(&steady, &Temperatures::new(), start, end, &BTreeSet::new()).unwrap();
        // Every like-day method is exact here; the first of the table wins the tie.
        assert_eq!((b.method, chosen.map(|c| c.rrmse)), ("CAISO_10_IN_10", Some(0.0)));

        // The event hours swing between 50 and 250 from one weekday to the next (the mornings
        // steady, so no adjustment can follow): no method predicts a day within 20 %.
        let weekday_index = |back: i64| (1..=back).filter(|b| !is_weekend(day(WEDNESDAY) - b)).count();
        let erratic = series(|back, hour| {
            Some(match hour {
                16 | 17 if weekday_index(back) % 2 == 0 => 250.0,
                16 | 17 => 50.0,
                _ => 100.0,
            })
        });
        let err = LoadMethod::MostAccurate.baseline(&erratic, &Temperatures::new(), start, end, &BTreeSet::new()).unwrap_err();
        assert!(matches!(err, BaselineError::Inaccurate { rrmse, .. } if rrmse > MAX_RRMSE), "{err}");
        // A fixed method still measures, and says how (in)accurate it is.
        let (_, fixed) = LoadMethod::Fixed(CAISO_10_IN_10).baseline(&erratic, &Temperatures::new(), start, end, &BTreeSet::new()).unwrap();
        assert!(fixed.unwrap().rrmse > MAX_RRMSE);
        // The test days: the most recent weekdays, not excluded (an event day), fully metered.
        let d = day(WEDNESDAY);
        let days = test_days(&steady, start, end, &BTreeSet::from([d - 1]), 45);
        assert_eq!(days, [2, 5, 6, 7, 8, 9, 12, 13, 14, 15].iter().map(|b| d - b).collect::<Vec<_>>());
        // Without history there is nothing to test on.
        let none = series(|back, _| (back < 2).then_some(100.0));
        assert_eq!(
            LoadMethod::MostAccurate.baseline(&none, &Temperatures::new(), start, end, &BTreeSet::new()).unwrap_err(),
            BaselineError::Untestable(MIN_TEST_DAYS)
        );
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
