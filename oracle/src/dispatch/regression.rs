//! The regression baseline: CalTRACK's hourly time-of-week-and-temperature model as LF
//! Energy's OpenDSM fits it for demand response (`opendsm.drmeter.CaltrackDRModel`: one
//! segment, every hour weighted alike). A device's hourly net import is one level per hour
//! of the week plus a piecewise-linear function of the outdoor temperature, one for the
//! hours of the week its building is "occupied" and one for the others:
//!
//! 1. **Occupancy**: least squares `load ~ 1 + CDD65 + HDD50` (°F) over the history; an hour
//!    of the week is occupied when more than 65 % of its residuals are positive (or it has
//!    no data).
//! 2. **Temperature bins**: edges 30, 45, 55, 65, 75, 90 °F, dropped until every bin holds
//!    at least 20 hours (a thin first or last bin first, then every thin middle bin at once),
//!    separately for occupied and unoccupied hours. A temperature's bin features are its
//!    parts in each bin (`min(T, e1)`, then `clamp(T - e_i, 0, e_i+1 - e_i)`, ..., `max(T - e_k, 0)`).
//! 3. **Least squares** of the load on one indicator per hour of the week seen and the bin
//!    features (the occupied bins on occupied hours, the unoccupied ones on the others).
//!    Solved by removing each hour of the week's mean (Frisch-Waugh-Lovell: the same
//!    coefficients as the full design matrix, from a system of at most 14 unknowns instead
//!    of 180, and better conditioned).
//!
//! Differences from OpenDSM by design (DISPATCHING.md): hours of the week are UTC (OpenDSM
//! takes the data's time zone; the cross-check gives it UTC); a zero reading is data (OpenDSM
//! drops zeros as missing: a home with PV can net to zero); the last hour of the history is
//! used (OpenDSM drops it); and a model whose temperature terms are not determined by the
//! data (too few hours of each hour of the week) is refused, not solved by pseudo-inverse:
//! nobody is paid against a baseline the data does not determine.

use std::collections::{BTreeSet, HashMap};

use super::series::LoadSeries;

pub const NAME: &str = "CALTRACK_HOURLY";
/// Days of history fitted (the longest day-matching lookback: retention needs no more).
pub const LOOKBACK_DAYS: i64 = 45;
/// Days with metered, temperature-known hours a fit needs (four of each day of the week).
pub const MIN_DAYS: usize = 28;
const EDGES_F: [f64; 6] = [30.0, 45.0, 55.0, 65.0, 75.0, 90.0];
const MIN_BIN_HOURS: usize = 20;
const OCCUPIED_SHARE: f64 = 0.65;
const HOURS_OF_WEEK: usize = 168;

/// Outdoor temperature by hour start (unix s), °C: a region's weather input.
pub type Temperatures = HashMap<i64, f64>;

pub fn fahrenheit(celsius: f64) -> f64 {
    celsius * 1.8 + 32.0
}

/// Monday 00:00 UTC is 0 (1970-01-01, day 0, was a Thursday).
pub fn hour_of_week(t: i64) -> usize {
    ((t.div_euclid(86_400) + 3).rem_euclid(7) * 24 + t.rem_euclid(86_400) / 3600) as usize
}

/// One hour of history: its start, the load over it (Wh), the temperature (°F).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hour {
    pub start: i64,
    pub load: f64,
    pub fahrenheit: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("no hours to fit")]
    Empty,
    #[error("the temperature terms are not determined by the history (too few hours of each hour of the week)")]
    Underdetermined,
}

/// Why a device has no regression baseline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegressionError {
    #[error("needs {needed} days of hourly metering with the region's temperatures in the last {lookback} days, found {found}")]
    History { needed: usize, found: usize, lookback: i64 },
    #[error("{0}")]
    Fit(#[from] FitError),
    #[error("no temperature for the region's hour starting at {0} (PUT /v1/regions/{{region}}/temperatures)")]
    NoTemperature(i64),
    #[error("the history has no hour of the week of the hour starting at {0}")]
    UnseenHour(i64),
    #[error("the metering slots ({0} s) do not tile hours")]
    Misaligned(i64),
}

/// Piecewise-linear in temperature: bin edges (°F) and one slope per bin.
#[derive(Clone, Debug, PartialEq)]
struct Bins {
    edges: Vec<f64>,
    slopes: Vec<f64>,
}

/// A fitted model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    occupied: [bool; HOURS_OF_WEEK],
    /// Per hour of the week, its level (none for hours the history never saw).
    level: [Option<f64>; HOURS_OF_WEEK],
    occupied_bins: Bins,
    unoccupied_bins: Bins,
}

/// A temperature's part in each bin of `edges`: the parts add up to the temperature.
fn bin_features(t: f64, edges: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(edges.len() + 1);
    let Some((&first, _)) = edges.split_first() else { return vec![t] };
    out.push(t.min(first));
    for pair in edges.windows(2) {
        out.push((t - pair[0]).clamp(0.0, pair[1] - pair[0]));
    }
    out.push((t - edges[edges.len() - 1]).max(0.0));
    out
}

/// The bin edges for `temps`: [`EDGES_F`], thin bins merged (OpenDSM's order of merging).
fn fit_edges(temps: &[f64]) -> Vec<f64> {
    let mut edges = EDGES_F.to_vec();
    loop {
        if edges.is_empty() {
            return edges;
        }
        // Counts of (-inf, e1], (e1, e2], ..., (ek, inf).
        let mut counts = vec![0usize; edges.len() + 1];
        for t in temps {
            counts[edges.partition_point(|e| e < t)] += 1;
        }
        let mut remove: BTreeSet<usize> = BTreeSet::new();
        if counts[0] < MIN_BIN_HOURS {
            remove.insert(0);
        }
        if counts[counts.len() - 1] < MIN_BIN_HOURS {
            remove.insert(edges.len() - 1);
        }
        if remove.is_empty() {
            // Every thin middle bin loses its right edge.
            remove.extend((1..counts.len() - 1).filter(|&i| counts[i] < MIN_BIN_HOURS));
        }
        if remove.is_empty() {
            return edges;
        }
        edges = edges.iter().enumerate().filter(|(i, _)| !remove.contains(i)).map(|(_, e)| *e).collect();
    }
}

/// Solves `m x = v` (symmetric, positive semi-definite, its lower triangle given) by
/// Cholesky. Columns that are zero in the data (`zero[j]`) get 0; `None` if the rest is
/// singular.
fn solve_normal(m: &[Vec<f64>], v: &[f64], zero: &[bool]) -> Option<Vec<f64>> {
    let keep: Vec<usize> = (0..v.len()).filter(|&j| !zero[j]).collect();
    let n = keep.len();
    let scale = keep.iter().map(|&j| m[j][j]).fold(0.0f64, f64::max);
    let mut l = vec![vec![0.0; n]; n];
    for a in 0..n {
        for b in 0..=a {
            let sum = m[keep[a]][keep[b]] - l[a][..b].iter().zip(&l[b][..b]).map(|(x, y)| x * y).sum::<f64>();
            if a == b {
                if sum <= scale * 1e-12 {
                    return None;
                }
                l[a][a] = sum.sqrt();
            } else {
                l[a][b] = sum / l[b][b];
            }
        }
    }
    // L y = v, then L^T x = y.
    let mut y = vec![0.0; n];
    for a in 0..n {
        y[a] = (v[keep[a]] - (0..a).map(|k| l[a][k] * y[k]).sum::<f64>()) / l[a][a];
    }
    let mut x = vec![0.0; n];
    for a in (0..n).rev() {
        x[a] = (y[a] - (a + 1..n).map(|k| l[k][a] * x[k]).sum::<f64>()) / l[a][a];
    }
    let mut out = vec![0.0; v.len()];
    for (a, &j) in keep.iter().enumerate() {
        out[j] = x[a];
    }
    Some(out)
}

/// Least squares of `y` on the rows of `x`, each column centred within its group (hour of
/// the week) when `groups` is given: the coefficients and whether each column was all zero.
fn least_squares(x: &[Vec<f64>], y: &[f64], groups: Option<&[usize]>) -> Result<Vec<f64>, FitError> {
    let p = x.first().map_or(0, Vec::len);
    let zero: Vec<bool> = (0..p).map(|j| x.iter().all(|row| row[j] == 0.0)).collect();
    let (x, y): (Vec<Vec<f64>>, Vec<f64>) = match groups {
        None => (x.to_vec(), y.to_vec()),
        Some(groups) => {
            let mut sums: HashMap<usize, (usize, Vec<f64>, f64)> = HashMap::new();
            for ((row, &target), &g) in x.iter().zip(y).zip(groups) {
                let entry = sums.entry(g).or_insert_with(|| (0, vec![0.0; p], 0.0));
                entry.0 += 1;
                entry.1.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                entry.2 += target;
            }
            x.iter()
                .zip(y)
                .zip(groups)
                .map(|((row, &target), g)| {
                    let (n, sum_x, sum_y) = &sums[g];
                    let n = *n as f64;
                    (row.iter().zip(sum_x).map(|(v, s)| v - s / n).collect(), target - sum_y / n)
                })
                .unzip()
        }
    };
    let mut m = vec![vec![0.0; p]; p];
    let mut v = vec![0.0; p];
    // The lower triangle of X'X, and X'y.
    for (row, target) in x.iter().zip(&y) {
        for (a, (xa, sums)) in row.iter().zip(m.iter_mut()).enumerate() {
            v[a] += xa * target;
            sums[..=a].iter_mut().zip(row).for_each(|(sum, xb)| *sum += xa * xb);
        }
    }
    solve_normal(&m, &v, &zero).ok_or(FitError::Underdetermined)
}

impl Model {
    pub fn fit(hours: &[Hour]) -> Result<Model, FitError> {
        if hours.is_empty() {
            return Err(FitError::Empty);
        }
        let loads: Vec<f64> = hours.iter().map(|h| h.load).collect();
        let how: Vec<usize> = hours.iter().map(|h| hour_of_week(h.start)).collect();
        // 1. Occupancy from the residuals of a degree-day fit.
        let degree_days: Vec<Vec<f64>> =
            hours.iter().map(|h| vec![1.0, (h.fahrenheit - 65.0).max(0.0), (50.0 - h.fahrenheit).max(0.0)]).collect();
        let beta = least_squares(&degree_days, &loads, None)?;
        let mut positive = [(0usize, 0usize); HOURS_OF_WEEK];
        for ((row, load), &k) in degree_days.iter().zip(&loads).zip(&how) {
            let residual = load - row.iter().zip(&beta).map(|(x, b)| x * b).sum::<f64>();
            positive[k].0 += usize::from(residual > 0.0);
            positive[k].1 += 1;
        }
        let occupied: [bool; HOURS_OF_WEEK] =
            std::array::from_fn(|k| positive[k].1 == 0 || positive[k].0 as f64 / positive[k].1 as f64 > OCCUPIED_SHARE);
        // 2. Temperature bins, for occupied and unoccupied hours apart.
        let temps =
            |occ: bool| -> Vec<f64> { hours.iter().zip(&how).filter(|(_, k)| occupied[**k] == occ).map(|(h, _)| h.fahrenheit).collect() };
        let (occupied_edges, unoccupied_edges) = (fit_edges(&temps(true)), fit_edges(&temps(false)));
        let (n_occupied, n_unoccupied) = (occupied_edges.len() + 1, unoccupied_edges.len() + 1);
        // 3. Levels per hour of the week and bin slopes.
        let features: Vec<Vec<f64>> = hours
            .iter()
            .zip(&how)
            .map(|(h, &k)| {
                let mut row = vec![0.0; n_occupied + n_unoccupied];
                if occupied[k] {
                    row[..n_occupied].copy_from_slice(&bin_features(h.fahrenheit, &occupied_edges));
                } else {
                    row[n_occupied..].copy_from_slice(&bin_features(h.fahrenheit, &unoccupied_edges));
                }
                row
            })
            .collect();
        let slopes = least_squares(&features, &loads, Some(&how))?;
        let mut sums = [(0usize, 0.0f64); HOURS_OF_WEEK];
        for ((row, load), &k) in features.iter().zip(&loads).zip(&how) {
            sums[k].0 += 1;
            sums[k].1 += load - row.iter().zip(&slopes).map(|(x, b)| x * b).sum::<f64>();
        }
        let level = std::array::from_fn(|k| (sums[k].0 > 0).then(|| sums[k].1 / sums[k].0 as f64));
        Ok(Model {
            occupied,
            level,
            occupied_bins: Bins { edges: occupied_edges, slopes: slopes[..n_occupied].to_vec() },
            unoccupied_bins: Bins { edges: unoccupied_edges, slopes: slopes[n_occupied..].to_vec() },
        })
    }

    /// The load of the hour starting at `start` at `fahrenheit`; `None` for an hour of the
    /// week the history never saw.
    pub fn predict(&self, start: i64, fahrenheit: f64) -> Option<f64> {
        let k = hour_of_week(start);
        let bins = if self.occupied[k] { &self.occupied_bins } else { &self.unoccupied_bins };
        let temperature: f64 = bin_features(fahrenheit, &bins.edges).iter().zip(&bins.slopes).map(|(x, b)| x * b).sum();
        Some(self.level[k]? + temperature)
    }
}

/// The device's fully metered hours of `days` with a temperature; errors if the slots do
/// not tile hours.
pub fn hours(loads: &LoadSeries, temperatures: &Temperatures, days: impl Iterator<Item = i64>) -> Result<Vec<Hour>, RegressionError> {
    let slot = loads.slot_secs;
    if slot <= 0 || 3600 % slot != 0 || loads.slot_at(0).is_none() {
        return Err(RegressionError::Misaligned(slot));
    }
    let per_hour = 3600 / slot;
    let mut out = Vec::new();
    for day in days {
        for h in 0..24 {
            let start = day * 86_400 + h * 3600;
            let Some(celsius) = temperatures.get(&start) else { continue };
            let first = loads.slot_at(start).ok_or(RegressionError::Misaligned(slot))?;
            let load: Option<f64> = (first..first + per_hour).map(|s| loads.slots.get(&s)).sum();
            if let Some(load) = load {
                out.push(Hour { start, load, fahrenheit: fahrenheit(*celsius) });
            }
        }
    }
    Ok(out)
}

/// Fits on the device's history: the [`LOOKBACK_DAYS`] before the event's day (none before
/// `earliest`), leaving out `excluded` days; at least [`MIN_DAYS`] days must have hours.
pub fn fit(
    loads: &LoadSeries,
    temperatures: &Temperatures,
    start: i64,
    excluded: &BTreeSet<i64>,
    earliest: i64,
) -> Result<(Model, Vec<i64>), RegressionError> {
    let event_day = start.div_euclid(86_400);
    let days = (event_day - LOOKBACK_DAYS).max(earliest)..event_day;
    let history = hours(loads, temperatures, days.filter(|d| !excluded.contains(d)))?;
    let used: Vec<i64> = history.iter().map(|h| h.start.div_euclid(86_400)).collect::<BTreeSet<_>>().into_iter().rev().collect();
    if used.len() < MIN_DAYS {
        return Err(RegressionError::History { needed: MIN_DAYS, found: used.len(), lookback: LOOKBACK_DAYS });
    }
    let model = Model::fit(&history)?;
    Ok((model, used))
}

/// The model's prediction for each slot of `[start, end)` (the hour's load, spread evenly).
pub fn predict_slots(
    model: &Model,
    loads: &LoadSeries,
    temperatures: &Temperatures,
    start: i64,
    end: i64,
) -> Result<Vec<f64>, RegressionError> {
    let slot = loads.slot_secs;
    let (Some(first), Some(last)) = (loads.slot_at(start), loads.slot_at(end)) else { return Err(RegressionError::Misaligned(slot)) };
    (first..last)
        .map(|s| {
            let t = loads.origin + s * slot;
            let hour = t.div_euclid(3600) * 3600;
            let celsius = temperatures.get(&hour).ok_or(RegressionError::NoTemperature(hour))?;
            let load = model.predict(hour, fahrenheit(*celsius)).ok_or(RegressionError::UnseenHour(hour))?;
            Ok(load * slot as f64 / 3600.0)
        })
        .collect()
}

/// The regression baseline of an event over `[start, end)`: Wh per slot, and the days fitted.
pub fn baseline(
    loads: &LoadSeries,
    temperatures: &Temperatures,
    start: i64,
    end: i64,
    excluded: &BTreeSet<i64>,
    earliest: i64,
) -> Result<(Vec<f64>, Vec<i64>), RegressionError> {
    let (model, days) = fit(loads, temperatures, start, excluded, earliest)?;
    Ok((predict_slots(&model, loads, temperatures, start, end)?, days))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23, a Monday, 00:00 UTC.
    const MONDAY: i64 = 1_795_392_000;

    #[test]
    fn hours_of_the_week_start_on_monday_utc() {
        assert_eq!(hour_of_week(MONDAY), 0);
        assert_eq!(hour_of_week(MONDAY + 25 * 3600 + 59), 25);
        assert_eq!(hour_of_week(MONDAY - 3600), 167);
        assert_eq!(hour_of_week(0), 3 * 24, "1970-01-01 was a Thursday");
    }

    #[test]
    fn bin_features_add_up_to_the_temperature() {
        let edges = [30.0, 45.0, 55.0];
        assert_eq!(bin_features(50.0, &edges), vec![30.0, 15.0, 5.0, 0.0]);
        assert_eq!(bin_features(20.0, &edges), vec![20.0, 0.0, 0.0, 0.0]);
        assert_eq!(bin_features(70.0, &edges), vec![30.0, 15.0, 10.0, 15.0]);
        assert_eq!(bin_features(70.0, &[]), vec![70.0]);
    }

    /// Hand-counted: 25 hours at 40 °F, 25 at 60, 5 at 70, 25 at 80. (-inf, 30] is empty:
    /// 30 goes; then (75, 90] holds 25 but (90, inf) none: 90 goes. Then the middle bins:
    /// (30, 45] 25, (45, 55] 0, (55, 65] 25, (65, 75] 5 (both thin: 55 and 75 go).
    #[test]
    fn thin_bins_are_merged_in_opendsms_order() {
        let temps: Vec<f64> =
            [(40.0, 25), (60.0, 25), (70.0, 5), (80.0, 25)].iter().flat_map(|&(t, n)| std::iter::repeat_n(t, n)).collect();
        // After 30 and 90: edges 45 55 65 75 -> bins (-inf,45] 25, (45,55] 0, (55,65] 25,
        // (65,75] 5, (75,inf) 25: the first and last are full, 55 and 75 go; then
        // (-inf,45] 25, (45,65] 25, (65,inf) 30: done.
        assert_eq!(fit_edges(&temps), vec![45.0, 65.0]);
        assert_eq!(fit_edges(&[50.0; 10]), Vec::<f64>::new(), "too few hours for any edge");
    }

    /// A load that is exactly the model's form (levels per hour of the week, occupied in
    /// working hours, cooling above 65 °F) is recovered exactly.
    #[test]
    fn a_load_of_the_models_form_is_recovered() {
        let load = |t: i64, f: f64| {
            let how = hour_of_week(t);
            let working = how < 5 * 24 && (8..18).contains(&(how % 24));
            1_000.0 + 20.0 * (how % 24) as f64 + if working { 3_000.0 } else { 0.0 } + 40.0 * (f - 65.0).max(0.0)
        };
        // 6 weeks of hours whose temperatures cycle through 40-89 °F.
        let hours: Vec<Hour> = (0..42 * 24)
            .map(|i| {
                let start = MONDAY + i * 3600;
                let f = 40.0 + ((i * 7) % 50) as f64;
                Hour { start, load: load(start, f), fahrenheit: f }
            })
            .collect();
        let model = Model::fit(&hours).unwrap();
        assert_eq!(model.occupied.iter().filter(|o| **o).count(), 50, "weekday working hours are occupied");
        for (t, f) in [(MONDAY + 9 * 3600, 85.0), (MONDAY + 5 * 86_400 + 3 * 3600, 50.0), (MONDAY + 2 * 86_400 + 14 * 3600, 72.5)] {
            let predicted = model.predict(t, f).unwrap();
            assert!((predicted - load(t, f)).abs() < 1e-6, "{predicted} vs {}", load(t, f));
        }
    }

    #[test]
    fn one_hour_of_each_hour_of_the_week_determines_no_temperature_term() {
        let hours: Vec<Hour> =
            (0..168).map(|i| Hour { start: MONDAY + i * 3600, load: 100.0 + i as f64, fahrenheit: 40.0 + (i % 40) as f64 }).collect();
        assert_eq!(Model::fit(&hours).unwrap_err(), FitError::Underdetermined);
        assert_eq!(Model::fit(&[]).unwrap_err(), FitError::Empty);
    }
}
