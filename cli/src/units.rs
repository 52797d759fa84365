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

/// Power in W: `7400`, `7.4kW`, `2MW`.
pub fn parse_power(text: &str) -> Result<u64, String> {
    parse_with_units(text, "power", &[("kW", 1_000), ("MW", 1_000_000), ("W", 1)])
}

/// Energy in Wh: `13500`, `13.5kWh`, `2MWh`.
pub fn parse_energy(text: &str) -> Result<u64, String> {
    parse_with_units(text, "energy", &[("kWh", 1_000), ("MWh", 1_000_000), ("Wh", 1)])
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
