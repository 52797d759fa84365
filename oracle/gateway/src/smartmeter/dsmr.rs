//! DSMR P1 telegrams (DSMR 4 and 5, and the Belgian e-MUCS that follows DSMR 5): text from
//! `/` to `!`, then the CRC-16 (ARC: polynomial 0xA001 reflected, initial 0) of everything
//! from the `/` to the `!` inclusive, as four hex digits. Lines are OBIS references with
//! values: `1-0:1.8.1(001581.123*kWh)`. Used here: energy delivered to the client (import)
//! per tariff `1-0:1.8.1`, `1-0:1.8.2` (or the total `1-0:1.8.0`), energy delivered by the
//! client (export) `1-0:2.8.x`, and the power `1-0:1.7.0` (import) and `1-0:2.7.0` (export).
//! Values are read as decimals into whole Wh and W, without rounding.

use super::{MeterError, Registers};

/// The longest telegram kept while waiting for its end (a DSMR 5 telegram is about 1 KiB).
const MAX_TELEGRAM: usize = 16 * 1024;

/// CRC-16/ARC.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// A decimal with up to 3 fractional digits, times 1000 (kWh -> Wh, kW -> W), exactly.
fn thousandths(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 3 || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<3}").parse().ok()?;
    whole.checked_mul(1000)?.checked_add(fraction)
}

/// The value of `line` if it is `reference(number*unit)` with one of `units` (factor to Wh or W).
fn value(line: &str, reference: &str, units: &[(&str, i64)]) -> Result<Option<i64>, MeterError> {
    let Some(rest) = line.strip_prefix(reference).and_then(|r| r.strip_prefix('(')) else { return Ok(None) };
    let inner = rest.strip_suffix(')').ok_or_else(|| MeterError::Malformed(format!("{line:?}: no closing parenthesis")))?;
    let (number, unit) = inner.split_once('*').ok_or_else(|| MeterError::Malformed(format!("{line:?}: no unit")))?;
    let Some(&(_, factor)) = units.iter().find(|(u, _)| *u == unit) else {
        return Err(MeterError::Malformed(format!(
            "{line:?}: unit {unit} is not one of {:?}",
            units.iter().map(|u| u.0).collect::<Vec<_>>()
        )));
    };
    let milli = thousandths(number).ok_or_else(|| MeterError::Malformed(format!("{line:?}: {number:?} is not a decimal")))?;
    Ok(Some(milli * factor / 1000))
}

const ENERGY: &[(&str, i64)] = &[("kWh", 1000), ("Wh", 1)];
const POWER: &[(&str, i64)] = &[("kW", 1000), ("W", 1)];

/// One whole telegram, `/` to the CRC.
pub fn parse(telegram: &[u8]) -> Result<Registers, MeterError> {
    let text = std::str::from_utf8(telegram).map_err(|_| MeterError::Malformed("not ASCII text".into()))?;
    if !text.starts_with('/') {
        return Err(MeterError::Malformed("a telegram starts with '/'".into()));
    }
    let bang = text.rfind('!').ok_or_else(|| MeterError::Malformed("no '!' ending the telegram".into()))?;
    let stated = text[bang + 1..].trim_end();
    if stated.len() != 4 {
        return Err(MeterError::Malformed(format!("the CRC after '!' is {stated:?}, not four hex digits (DSMR 4 or later)")));
    }
    let stated = u16::from_str_radix(stated, 16).map_err(|_| MeterError::Malformed(format!("CRC {stated:?} is not hex")))?;
    let computed = crc16(&telegram[..=bang]);
    if stated != computed {
        return Err(MeterError::Checksum { stated, computed });
    }
    let (mut import, mut export, mut import_total, mut export_total) = (None::<i64>, None::<i64>, None, None);
    let (mut power_in, mut power_out) = (None, None);
    let add = |sum: &mut Option<i64>, v: i64| *sum = Some(sum.unwrap_or(0) + v);
    for line in text[..bang].lines().map(str::trim) {
        for tariff in ["1-0:1.8.1", "1-0:1.8.2", "1-0:1.8.3", "1-0:1.8.4"] {
            if let Some(v) = value(line, tariff, ENERGY)? {
                add(&mut import, v);
            }
        }
        for tariff in ["1-0:2.8.1", "1-0:2.8.2", "1-0:2.8.3", "1-0:2.8.4"] {
            if let Some(v) = value(line, tariff, ENERGY)? {
                add(&mut export, v);
            }
        }
        import_total = import_total.or(value(line, "1-0:1.8.0", ENERGY)?);
        export_total = export_total.or(value(line, "1-0:2.8.0", ENERGY)?);
        power_in = power_in.or(value(line, "1-0:1.7.0", POWER)?);
        power_out = power_out.or(value(line, "1-0:2.7.0", POWER)?);
    }
    let power = match (power_in, power_out) {
        (None, None) => None,
        (i, o) => Some(i.unwrap_or(0) - o.unwrap_or(0)),
    };
    Ok(Registers {
        import_wh: import.or(import_total).map(|v| v as f64),
        export_wh: export.or(export_total).map(|v| v as f64),
        power_w: power.map(|v| v as f64),
    })
}

/// Telegrams out of a byte stream (a P1 port's serial line or its TCP bridge), whatever
/// the chunking; bytes before a `/` are skipped.
#[derive(Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Registers, MeterError>> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let Some(start) = self.buffer.iter().position(|&b| b == b'/') else {
                self.buffer.clear();
                break;
            };
            self.buffer.drain(..start);
            // The end: '!', four characters, then the line end.
            let Some(bang) = self.buffer.iter().position(|&b| b == b'!') else {
                if self.buffer.len() > MAX_TELEGRAM {
                    out.push(Err(MeterError::Malformed(format!("no '!' in {MAX_TELEGRAM} bytes"))));
                    self.buffer.clear();
                }
                break;
            };
            let Some(eol) = self.buffer[bang..].iter().position(|&b| b == b'\n').map(|i| bang + i) else { break };
            let telegram: Vec<u8> = self.buffer.drain(..=eol).collect();
            out.push(parse(&telegram));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_the_check_string() {
        // CRC-16/ARC of "123456789".
        assert_eq!(crc16(b"123456789"), 0xBB3D);
    }

    #[test]
    fn decimals_become_whole_thousandths() {
        assert_eq!(thousandths("001581.123"), Some(1_581_123));
        assert_eq!(thousandths("02.02"), Some(2_020));
        assert_eq!(thousandths("7"), Some(7_000));
        for bad in ["", "1.2345", "-1.0", "1,5", ".5", "1e3"] {
            assert_eq!(thousandths(bad), None, "{bad}");
        }
    }
}
