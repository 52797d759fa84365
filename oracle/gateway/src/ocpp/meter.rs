//! From OCPP meter samples to telemetry intervals. A charger reports its energy register
//! (`Energy.Active.Import.Register`, the default measurand) and power at times of its
//! choosing; a reading covers the time from one sample to the next, its energy the
//! register's difference (exact, whatever the sampling), or the power's trapezoid when
//! there is no register.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The shortest and longest reading the oracle takes (TELEMETRY.md).
pub const MIN_INTERVAL_SECS: i64 = 10;
pub const MAX_INTERVAL_SECS: i64 = 3600;

/// What one meter value says, in base units.
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

/// Where the last reading ended: saved with each reading, so a restarted gateway goes on
/// from the same register.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterCursor {
    pub t: i64,
    pub energy_wh: Option<f64>,
    pub power_w: Option<f64>,
}

/// One reading's span and energy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub start: i64,
    pub secs: u32,
    pub energy_wh: u32,
}

/// The reading a new sample completes (if any), and the cursor after it. Samples closer
/// than [`MIN_INTERVAL_SECS`] to the cursor wait for a later one (nothing is lost: the
/// register difference spans them); a gap above [`MAX_INTERVAL_SECS`] or a register that
/// went back (a replaced meter) starts afresh from the sample.
pub fn advance(cursor: Option<MeterCursor>, s: &Sample) -> (Option<Interval>, Option<MeterCursor>) {
    let fresh = MeterCursor { t: s.t, energy_wh: s.energy_wh, power_w: s.power_w };
    let Some(c) = cursor else { return (None, Some(fresh)) };
    let dt = s.t - c.t;
    if dt < MIN_INTERVAL_SECS {
        // The reading goes on from the older start to a later sample.
        return (None, Some(c));
    }
    if dt > MAX_INTERVAL_SECS {
        return (None, Some(fresh));
    }
    let energy = match (c.energy_wh, s.energy_wh) {
        (Some(a), Some(b)) if b >= a => b - a,
        (Some(_), Some(_)) => return (None, Some(fresh)),
        _ => match (c.power_w, s.power_w) {
            (Some(a), Some(b)) => (a + b) / 2.0 * dt as f64 / 3600.0,
            (None, Some(p)) | (Some(p), None) => p * dt as f64 / 3600.0,
            (None, None) => 0.0,
        },
    };
    // With a register, a reading's energy is whole Wh and the remainder stays in the
    // cursor, so the sum of readings equals the register's difference exactly.
    let whole = energy.max(0.0).floor();
    let energy_wh = c.energy_wh.map(|a| a + whole).or(s.energy_wh);
    let next = MeterCursor { t: s.t, energy_wh, power_w: s.power_w.or(c.power_w) };
    (Some(Interval { start: c.t, secs: dt as u32, energy_wh: whole.min(f64::from(u32::MAX)) as u32 }), Some(next))
}

/// The measurands a sampled value may carry that the gateway uses.
fn unit_factor(unit: &str) -> Option<f64> {
    match unit {
        "Wh" | "W" | "A" | "Percent" => Some(1.0),
        "kWh" | "kW" => Some(1000.0),
        _ => None,
    }
}

/// One meter value (`{"timestamp", "sampledValue": [...]}`) of OCPP 1.6 (values as strings,
/// `unit`) or 2.0.1 (values as numbers, `unitOfMeasure {unit, multiplier}`). Phase values
/// add up when the total is not given (current: the largest phase).
pub fn sample(meter_value: &Value) -> Result<Sample, String> {
    let t = meter_value.get("timestamp").and_then(Value::as_str).ok_or("a meter value needs a timestamp")?;
    let t = super::parse_time(t)?;
    let values = meter_value.get("sampledValue").and_then(Value::as_array).ok_or("a meter value needs sampledValue")?;
    let mut totals: [Option<f64>; 4] = [None; 4];
    let mut phases: [Option<f64>; 4] = [None; 4];
    for v in values {
        let measurand = v.get("measurand").and_then(Value::as_str).unwrap_or("Energy.Active.Import.Register");
        let slot = match measurand {
            "Energy.Active.Import.Register" => 0,
            "Power.Active.Import" => 1,
            "Current.Import" => 2,
            "SoC" => 3,
            _ => continue,
        };
        let number = match v.get("value") {
            Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| format!("{measurand} value {s:?} is not a number"))?,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            _ => return Err(format!("{measurand} has no value")),
        };
        let (unit, multiplier) = match v.get("unitOfMeasure") {
            Some(u) => (
                u.get("unit").and_then(Value::as_str).unwrap_or(default_unit(slot)),
                u.get("multiplier").and_then(Value::as_i64).unwrap_or(0),
            ),
            None => (v.get("unit").and_then(Value::as_str).unwrap_or(default_unit(slot)), 0),
        };
        let Some(factor) = unit_factor(unit) else { return Err(format!("{measurand} in {unit} is not a unit the gateway reads")) };
        let value = number * factor * 10f64.powi(multiplier.clamp(-9, 9) as i32);
        if !value.is_finite() || value < 0.0 && slot != 1 {
            return Err(format!("{measurand} value {number} is out of range"));
        }
        let phase = v.get("phase").and_then(Value::as_str);
        match phase {
            None => totals[slot] = Some(value),
            Some("L1" | "L2" | "L3" | "L1-N" | "L2-N" | "L3-N") => {
                let p = phases[slot].get_or_insert(0.0);
                *p = if slot == 2 { p.max(value) } else { *p + value };
            }
            Some(_) => {}
        }
    }
    let pick = |i: usize| totals[i].or(phases[i]);
    Ok(Sample { t, energy_wh: pick(0), power_w: pick(1).map(|p| p.max(0.0)), current_a: pick(2), soc_percent: pick(3) })
}

fn default_unit(slot: usize) -> &'static str {
    match slot {
        0 => "Wh",
        1 => "W",
        2 => "A",
        _ => "Percent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(t: i64, wh: f64) -> Sample {
        Sample { t, energy_wh: Some(wh), ..Sample::default() }
    }

    #[test]
    fn readings_sum_to_the_register_difference_whatever_the_sampling() {
        let mut cursor = None;
        let mut total = 0u64;
        // Samples 3 s apart with fractional registers: readings of >= 10 s, no energy lost.
        for i in 0..100 {
            let (interval, next) = advance(cursor, &at(1_000 + 3 * i, 500.0 + 7.3 * i as f64));
            if let Some(iv) = interval {
                assert!(iv.secs >= 10 && iv.secs <= 3600);
                total += u64::from(iv.energy_wh);
            }
            cursor = next;
        }
        // What is not in a reading yet is the register's rise since the last one (under 10 s
        // of samples, and the fraction of a Wh): it goes into the next reading.
        let remainder = 7.3 * 99.0 - total as f64;
        assert!((0.0..7.3 * 4.0 + 1.0).contains(&remainder), "{total} Wh in readings, {remainder} Wh left");
        assert_eq!(cursor.unwrap().energy_wh, Some(500.0 + total as f64));
    }

    #[test]
    fn a_gap_or_a_register_going_back_starts_afresh() {
        let (_, c) = advance(None, &at(0, 100.0));
        assert_eq!(advance(c, &at(4000, 200.0)).0, None);
        assert_eq!(advance(c, &at(60, 50.0)).0, None);
        assert_eq!(advance(c, &at(60, 160.0)).0, Some(Interval { start: 0, secs: 60, energy_wh: 60 }));
    }

    #[test]
    fn power_alone_is_integrated() {
        let first = Sample { t: 0, power_w: Some(3600.0), ..Sample::default() };
        let (_, c) = advance(None, &first);
        let (iv, _) = advance(c, &Sample { t: 60, power_w: Some(7200.0), ..Sample::default() });
        assert_eq!(iv.unwrap().energy_wh, 90);
    }

    #[test]
    fn meter_values_of_both_versions_parse_to_base_units() {
        let v16 = json!({"timestamp": "2026-12-03T10:00:00Z", "sampledValue": [
            {"value": "12.5", "unit": "kWh"},
            {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "10.7", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "10.9", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
            {"value": "61", "measurand": "SoC", "unit": "Percent", "location": "EV"}]});
        let s = sample(&v16).unwrap();
        assert_eq!((s.energy_wh, s.power_w, s.current_a, s.soc_percent), (Some(12_500.0), Some(7400.0), Some(10.9), Some(61.0)));
        let v201 = json!({"timestamp": "2026-12-03T10:00:00.000Z", "sampledValue": [
            {"value": 12.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh", "multiplier": 3}},
            {"value": 2.4, "measurand": "Power.Active.Import", "phase": "L1", "unitOfMeasure": {"unit": "kW"}},
            {"value": 2.5, "measurand": "Power.Active.Import", "phase": "L2", "unitOfMeasure": {"unit": "kW"}}]});
        let s = sample(&v201).unwrap();
        assert_eq!((s.energy_wh, s.power_w), (Some(12_500.0), Some(4900.0)));
        assert_eq!(s.t, 1_796_292_000);
        for bad in [
            json!({"sampledValue": []}),
            json!({"timestamp": "yesterday", "sampledValue": []}),
            json!({"timestamp": "2026-12-03T10:00:00Z", "sampledValue": [{"value": "lots"}]}),
            json!({"timestamp": "2026-12-03T10:00:00Z", "sampledValue": [{"value": "-5"}]}),
            json!({"timestamp": "2026-12-03T10:00:00Z", "sampledValue": [{"value": "5", "unit": "furlongs"}]}),
        ] {
            assert!(sample(&bad).is_err(), "{bad}");
        }
    }
}
