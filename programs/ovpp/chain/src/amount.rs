//! Amounts as people write them and as the chain counts them: OVPP (the mint's base units,
//! 6 decimals) and SOL (lamports, 9 decimals).

use ovpp::limits::OVPP_DECIMALS;

/// Lamports per SOL: SOL has 9 decimals.
pub const SOL_DECIMALS: u8 = 9;

/// Text that is not an amount of `unit`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not an amount of {unit} (digits, at most {decimals} decimals)")]
pub struct AmountError {
    pub text: String,
    pub unit: &'static str,
    pub decimals: u8,
}

/// Base units as OVPP with all decimals: `1234.500000`.
pub fn format_ovpp(base_units: u64) -> String {
    format_fixed(base_units, OVPP_DECIMALS)
}

/// Parses an OVPP amount (`12`, `0.5`, `10000.000001`) into base units.
pub fn parse_ovpp(text: &str) -> Result<u64, AmountError> {
    parse_fixed(text, OVPP_DECIMALS).ok_or(AmountError { text: text.to_string(), unit: "OVPP", decimals: OVPP_DECIMALS })
}

/// Lamports as SOL with all decimals: `1.500000000`.
pub fn format_sol(lamports: u64) -> String {
    format_fixed(lamports, SOL_DECIMALS)
}

/// Parses a SOL amount (`1`, `0.5`) into lamports.
pub fn parse_sol(text: &str) -> Result<u64, AmountError> {
    parse_fixed(text, SOL_DECIMALS).ok_or(AmountError { text: text.to_string(), unit: "SOL", decimals: SOL_DECIMALS })
}

fn format_fixed(units: u64, decimals: u8) -> String {
    let scale = 10u64.pow(u32::from(decimals));
    format!("{}.{:0width$}", units / scale, units % scale, width = usize::from(decimals))
}

/// `whole[.fraction]` with at most `decimals` fraction digits, in units of 10^-decimals.
fn parse_fixed(text: &str, decimals: u8) -> Option<u64> {
    let width = usize::from(decimals);
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > width
        || !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: u64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<width$}").parse().ok()? };
    whole.checked_mul(10u64.pow(u32::from(decimals)))?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovpp_and_sol_amounts() {
        assert_eq!(parse_ovpp("10000.000001"), Ok(10_000_000_001));
        assert_eq!(format_ovpp(1_234_500_000), "1234.500000");
        assert_eq!(parse_sol("1.5"), Ok(1_500_000_000));
        assert_eq!(format_sol(1), "0.000000001");
        assert!(parse_ovpp("0.0000001").is_err() && parse_sol("one").is_err() && parse_ovpp(".").is_err());
        assert_eq!(parse_sol("x").unwrap_err().to_string(), "\"x\" is not an amount of SOL (digits, at most 9 decimals)");
        assert!(parse_ovpp("18446744073709551615").is_err(), "overflow is refused");
    }
}
