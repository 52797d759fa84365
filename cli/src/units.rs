//! Quantities as people type them: `11kW`, `7400`, `13.5kWh`, OVPP with decimals.

/// Parses `<number>[unit]` where unit is one of `units` (`(suffix, multiplier)`); a bare
/// number is in the base unit. Fractions are allowed down to the base unit.
fn parse_with_units(text: &str, what: &str, units: &[(&str, u64)]) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let (number, multiplier) = units
        .iter()
        .find_map(|(suffix, m)| lower.strip_suffix(&suffix.to_ascii_lowercase()).map(|n| (n.trim().to_string(), *m)))
        .unwrap_or((lower.clone(), 1));
    if number.starts_with('-') {
        return Err(format!("{what} cannot be negative: {trimmed}"));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
        let names: Vec<&str> = units.iter().map(|(s, _)| *s).collect();
        return Err(format!("{what} must be a number with an optional unit ({}): {trimmed}", names.join(", ")));
    }
    let whole: u64 = whole.parse().map_err(|_| format!("{what} is too large: {trimmed}"))?;
    let mut value = whole.checked_mul(multiplier).ok_or_else(|| format!("{what} is too large: {trimmed}"))?;
    if !fraction.is_empty() {
        let scale = 10u64.checked_pow(fraction.len() as u32).ok_or_else(|| format!("{what} has too many decimals: {trimmed}"))?;
        let part: u64 = fraction.parse().map_err(|_| format!("{what} has too many decimals: {trimmed}"))?;
        let extra = u128::from(part) * u128::from(multiplier);
        if extra % u128::from(scale) != 0 {
            return Err(format!("{what} is finer than 1 of its base unit: {trimmed}"));
        }
        value = value.checked_add((extra / u128::from(scale)) as u64).ok_or_else(|| format!("{what} is too large: {trimmed}"))?;
    }
    Ok(value)
}

/// `t` (unix seconds) as people read it: UTC ISO 8601 and how far from `now`, e.g.
/// `2026-12-03T13:40:00Z (in 1 min 20 s)` or `2026-12-03T10:00:00Z (3 h 40 min ago)`.
pub fn format_time(t: i64, now: i64) -> String {
    format!("{} ({})", ovpp_wire::dispatch::event::rfc3339(t), relative(t.saturating_sub(now)))
}

/// A signed span in its two largest units: `in 1 min 20 s`, `2 d 3 h ago`, `now`.
fn relative(secs: i64) -> String {
    if secs == 0 {
        return "now".into();
    }
    let mut left = secs.unsigned_abs();
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)] {
        if left >= size && parts.len() < 2 {
            parts.push(format!("{} {unit}", left / size));
            left %= size;
        } else if !parts.is_empty() {
            // Two adjacent units at most: `1 d 5 s` would read oddly.
            break;
        }
    }
    let span = parts.join(" ");
    if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A power or energy must name its unit (`5` is never 5 W to the person who typed it); only
/// zero is the same in every unit.
fn with_unit(text: &str, what: &str, example: &str) -> Result<(), String> {
    let trimmed = text.trim();
    let bare = !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.');
    if bare && trimmed.chars().any(|c| c != '0' && c != '.') {
        return Err(format!("{what} {trimmed} needs a unit: {example}"));
    }
    Ok(())
}

/// Power in W: `7400W`, `7.4kW`, `2MW`.
pub fn parse_power(text: &str) -> Result<u64, String> {
    with_unit(text, "power", &format!("{0}W, {0}kW or {0}MW", text.trim()))?;
    parse_with_units(text, "power", &[("kW", 1_000), ("MW", 1_000_000), ("W", 1)])
}

/// Energy in Wh: `13500Wh`, `13.5kWh`, `2MWh`.
pub fn parse_energy(text: &str) -> Result<u64, String> {
    with_unit(text, "energy", &format!("{0}Wh, {0}kWh or {0}MWh", text.trim()))?;
    parse_with_units(text, "energy", &[("kWh", 1_000), ("MWh", 1_000_000), ("Wh", 1)])
}

/// `w` in the largest unit that keeps it readable: `500 W`, `30 kW`, `1.4 kW`, `100 MW`.
pub fn format_power(w: u64) -> String {
    scaled(w, "W")
}

/// `wh` as `format_power` does: `1 kWh`, `13.5 kWh`, `500 MWh`.
pub fn format_energy(wh: u64) -> String {
    scaled(wh, "Wh")
}

fn scaled(value: u64, unit: &str) -> String {
    let (divisor, prefix) = match value {
        v if v >= 1_000_000 => (1_000_000, "M"),
        v if v >= 1_000 => (1_000, "k"),
        _ => (1, ""),
    };
    let whole = value / divisor;
    let fraction = format!("{:0width$}", value % divisor, width = divisor.ilog10() as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{whole} {prefix}{unit}")
    } else {
        format!("{whole}.{fraction} {prefix}{unit}")
    }
}

/// OVPP in base units: `12`, `0.5`, `1000000`.
pub fn parse_ovpp(text: &str) -> Result<u64, String> {
    ovpp_chain::amount::parse_ovpp(text).map_err(|e| e.to_string())
}

pub use ovpp_chain::amount::format_ovpp;

/// A duration in seconds: `3600`, `90m`, `12h`, `7d`, `2w`, `4y` (365-day years).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    parse_with_units(text, "duration", &[("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400), ("w", 7 * 86_400), ("y", 365 * 86_400)])
}

/// Percent as basis points: `40` -> 4000, `50.5` -> 5050.
pub fn parse_percent_bps(text: &str) -> Result<u16, String> {
    let bps = parse_with_units(text.trim_end_matches('%'), "percentage", &[("", 100)])?;
    u16::try_from(bps).ok().filter(|&b| b <= 10_000).ok_or_else(|| format!("percentage must be 0 to 100: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_and_energies_need_units() {
        assert_eq!(parse_power("7.4kW"), Ok(7_400));
        assert_eq!(parse_power("500W"), Ok(500));
        assert_eq!(parse_energy("0"), Ok(0));
        assert_eq!(parse_power("5"), Err("power 5 needs a unit: 5W, 5kW or 5MW".into()));
        assert!(parse_energy("13.5").unwrap_err().contains("13.5kWh"));
        assert_eq!((format_power(500), format_power(1_400), format_power(30_000)), ("500 W".into(), "1.4 kW".into(), "30 kW".into()));
        assert_eq!(
            (format_energy(1_000), format_energy(13_500), format_energy(500_000_000)),
            ("1 kWh".into(), "13.5 kWh".into(), "500 MWh".into())
        );
    }

    #[test]
    fn times_in_utc_and_relative() {
        let now = 1_796_300_000;
        assert_eq!(format_time(now + 80, now), format!("{} (in 1 min 20 s)", ovpp_wire::dispatch::event::rfc3339(now + 80)));
        assert!(format_time(now - 3 * 3600 - 40 * 60, now).ends_with("(3 h 40 min ago)"));
        assert!(format_time(now + 2 * 86_400 + 5, now).ends_with("(in 2 d)"));
        assert!(format_time(now, now).ends_with("(now)"));
        assert!(format_time(now - 1, now).ends_with("(1 s ago)"));
    }
}
