//! OCPP meter values (1.6 and 2.0.1) to register samples ([`crate::register`]): the
//! energy register (`Energy.Active.Import.Register`, the default measurand), power, current
//! and the car's state of charge, in base units.

use serde_json::Value;

use crate::register::Sample;

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
