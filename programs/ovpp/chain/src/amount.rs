//! OVPP amounts as people write them and as the mint counts them (base units, 6 decimals).

use ovpp::limits::OVPP_DECIMALS;

/// Text that is not an OVPP amount.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not an OVPP amount (digits, at most {decimals} decimals)", decimals = OVPP_DECIMALS)]
pub struct AmountError {
    pub text: String,
}

/// Base units as OVPP with all decimals: `1234.500000`.
pub fn format_ovpp(base_units: u64) -> String {
    let decimals = u32::from(OVPP_DECIMALS);
    let scale = 10u64.pow(decimals);
    format!("{}.{:0width$}", base_units / scale, base_units % scale, width = decimals as usize)
}

/// Parses an OVPP amount (`12`, `0.5`, `10000.000001`) into base units.
pub fn parse_ovpp(text: &str) -> Result<u64, AmountError> {
    let decimals = usize::from(OVPP_DECIMALS);
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let bad = || AmountError { text: text.to_string() };
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > decimals
        || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let fraction: u64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<decimals$}").parse().map_err(|_| bad())? };
    whole.checked_mul(10u64.pow(u32::from(OVPP_DECIMALS))).and_then(|w| w.checked_add(fraction)).ok_or_else(bad)
}
