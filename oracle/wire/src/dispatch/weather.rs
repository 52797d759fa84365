//! A region's hourly outdoor temperatures, the weather input regression baselines need
//! (`PUT`/`GET /v1/regions/{region}/temperatures`, `DISPATCHING.md` §5).

use serde::{Deserialize, Serialize};

/// Most hours one request may carry or ask for (about 400 days).
pub const MAX_HOURS: usize = 24 * 400;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureSeries {
    pub hours: Vec<HourlyTemperature>,
}

/// The mean outdoor temperature of the hour starting at `start` (unix s, on the hour), °C.
/// Stored to the thousandth of a degree, so every oracle reads back the same number.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourlyTemperature {
    pub start: i64,
    pub celsius: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemperatureError {
    #[error("region must be a region code as devices register it on-chain (ISO 3166-1 alpha-2 or 3166-2, uppercase, at most 8 bytes: DE, DE-BY), got {0:?}")]
    Region(String),
    #[error("at most {MAX_HOURS} hours at once, got {0}")]
    TooMany(usize),
    #[error("hour {0}: start must be on the hour (a multiple of 3600)")]
    NotOnTheHour(i64),
    #[error("hour {0}: celsius must be a number between -90 and 60")]
    OutOfRange(i64),
    #[error("hour {0} appears twice")]
    Duplicate(i64),
}

/// A region code as devices register it (the program's rule, `ovpp::limits::check_region`).
pub fn check_region(region: &str) -> Result<(), TemperatureError> {
    let mut bytes = [0u8; 8];
    let valid = region.len() <= 8 && !region.contains('\0') && {
        bytes[..region.len()].copy_from_slice(region.as_bytes());
        ovpp::limits::check_region(&bytes).is_ok()
    };
    if valid {
        Ok(())
    } else {
        Err(TemperatureError::Region(region.chars().take(16).collect()))
    }
}

impl HourlyTemperature {
    /// Thousandths of a degree, as stored.
    pub fn millicelsius(&self) -> i64 {
        (self.celsius * 1000.0).round() as i64
    }
}

impl TemperatureSeries {
    pub fn validate(&self) -> Result<(), TemperatureError> {
        if self.hours.len() > MAX_HOURS {
            return Err(TemperatureError::TooMany(self.hours.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for h in &self.hours {
            if h.start.rem_euclid(3600) != 0 {
                return Err(TemperatureError::NotOnTheHour(h.start));
            }
            if !(h.celsius.is_finite() && (-90.0..=60.0).contains(&h.celsius)) {
                return Err(TemperatureError::OutOfRange(h.start));
            }
            if !seen.insert(h.start) {
                return Err(TemperatureError::Duplicate(h.start));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_regions_are_checked() {
        let ok = TemperatureSeries { hours: vec![HourlyTemperature { start: 7200, celsius: -3.25 }] };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.hours[0].millicelsius(), -3250);
        let off = TemperatureSeries { hours: vec![HourlyTemperature { start: 7201, celsius: 1.0 }] };
        assert_eq!(off.validate(), Err(TemperatureError::NotOnTheHour(7201)));
        let hot = TemperatureSeries { hours: vec![HourlyTemperature { start: 0, celsius: f64::NAN }] };
        assert_eq!(hot.validate(), Err(TemperatureError::OutOfRange(0)));
        let twice = TemperatureSeries { hours: vec![HourlyTemperature { start: 0, celsius: 1.0 }; 2] };
        assert_eq!(twice.validate(), Err(TemperatureError::Duplicate(0)));
        assert!(check_region("DE-BY").is_ok());
        assert!(check_region("DE").is_ok());
        for bad in ["", "D", "de-by", "DE/BY", "TOO-LONG-1", "1E-BY", "DE\0"] {
            assert!(check_region(bad).is_err(), "{bad:?}");
        }
    }
}
