//! SML (Smart Message Language, version 1.04), what German smart meters send on their
//! optical interface: frames between the escape sequences `1b1b1b1b 01010101` and
//! `1b1b1b1b 1a <padding> <crc>`, the CRC-16/X-25 of everything before it (low byte
//! first); inside, a
//! type-length-value tree of messages. A `GetList.Res` holds the meter's values as entries
//! `(objName, status, valTime, unit, scaler, value, valueSignature)`; used here: OBIS
//! 1-0:1.8.0 (import, Wh), 1-0:2.8.0 (export, Wh), each the sum of its tariffs 1.8.1/1.8.2
//! when the total is missing, and 1-0:16.7.0 (net power, W), each `value * 10^scaler`.

use super::{MeterError, Registers};

const ESCAPE: [u8; 4] = [0x1b; 4];
/// A frame's beginning: the escape, then the start sequence 01010101.
const BEGIN: [u8; 8] = [0x1b, 0x1b, 0x1b, 0x1b, 0x01, 0x01, 0x01, 0x01];
/// The longest frame kept while waiting for its end.
const MAX_FRAME: usize = 16 * 1024;
/// Nesting deeper than any SML message, refused (a hostile stream cannot exhaust the stack).
const MAX_DEPTH: usize = 24;

/// CRC-16/X-25 (as SML 1.04 specifies).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
        }
    }
    !crc
}

/// One node of the type-length-value tree.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Absent,
    EndOfMessage,
    Octets(Vec<u8>),
    Bool(bool),
    Int(i64),
    Uint(u64),
    List(Vec<Node>),
}

fn malformed(what: impl Into<String>) -> MeterError {
    MeterError::Malformed(what.into())
}

/// Parses one node at `*pos`.
fn node(data: &[u8], pos: &mut usize, depth: usize) -> Result<Node, MeterError> {
    if depth > MAX_DEPTH {
        return Err(malformed("nested too deeply"));
    }
    let start = *pos;
    let first = *data.get(start).ok_or_else(|| malformed("ends inside a value"))?;
    *pos += 1;
    match first {
        0x00 => return Ok(Node::EndOfMessage),
        0x01 => return Ok(Node::Absent),
        _ => {}
    }
    let kind = first & 0x70;
    let mut size = usize::from(first & 0x0F);
    let mut more = first & 0x80 != 0;
    while more {
        let next = *data.get(*pos).ok_or_else(|| malformed("ends inside a length"))?;
        *pos += 1;
        size = size.checked_shl(4).filter(|s| *s < MAX_FRAME).ok_or_else(|| malformed("a length beyond the frame"))?
            | usize::from(next & 0x0F);
        more = next & 0x80 != 0;
    }
    if kind == 0x70 {
        // A list: `size` elements follow.
        let mut items = Vec::with_capacity(size.min(64));
        for _ in 0..size {
            items.push(node(data, pos, depth + 1)?);
        }
        return Ok(Node::List(items));
    }
    // Other types: `size` counts the type-length bytes too.
    let end = start.checked_add(size).filter(|e| *e <= data.len() && *e >= *pos).ok_or_else(|| malformed("a value beyond the frame"))?;
    let bytes = &data[*pos..end];
    *pos = end;
    match kind {
        0x00 => Ok(Node::Octets(bytes.to_vec())),
        0x40 => Ok(Node::Bool(bytes.first().is_some_and(|b| *b != 0))),
        0x50 | 0x60 if bytes.len() > 8 => Err(malformed("an integer of more than 8 bytes")),
        0x50 => {
            let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) { 0xFF } else { 0 };
            let mut be = [fill; 8];
            be[8 - bytes.len()..].copy_from_slice(bytes);
            Ok(Node::Int(i64::from_be_bytes(be)))
        }
        0x60 => {
            let mut be = [0u8; 8];
            be[8 - bytes.len()..].copy_from_slice(bytes);
            Ok(Node::Uint(u64::from_be_bytes(be)))
        }
        other => Err(malformed(format!("unknown type 0x{other:02x}"))),
    }
}

/// A value entry: OBIS code and `value * 10^scaler`.
fn entries(n: &Node, out: &mut Vec<([u8; 6], f64)>) {
    let Node::List(items) = n else { return };
    if let [Node::Octets(name), _, _, _, scaler, value, _] = items.as_slice() {
        if let (Ok(obis), Some(v)) = (<[u8; 6]>::try_from(name.as_slice()), number(value)) {
            let scaler = match scaler {
                Node::Int(s) => *s,
                Node::Uint(s) => *s as i64,
                _ => 0,
            };
            out.push((obis, v * 10f64.powi(scaler.clamp(-12, 12) as i32)));
            return;
        }
    }
    for item in items {
        entries(item, out);
    }
}

fn number(n: &Node) -> Option<f64> {
    match n {
        Node::Int(v) => Some(*v as f64),
        Node::Uint(v) => Some(*v as f64),
        _ => None,
    }
}

/// The messages of one frame's payload (escapes removed, padding dropped).
fn registers(payload: &[u8]) -> Result<Registers, MeterError> {
    let mut pos = 0;
    let mut found = Vec::new();
    while pos < payload.len() {
        let message = node(payload, &mut pos, 0)?;
        if !matches!(message, Node::List(_)) {
            return Err(malformed(format!("a message is a list, not {message:?}")));
        }
        entries(&message, &mut found);
    }
    let get = |c: u8, d: u8, e: u8| found.iter().find(|(o, _)| o[..5] == [1, 0, c, d, e]).map(|(_, v)| *v);
    let tariffs = |c: u8| {
        let parts: Vec<f64> = (1..=4).filter_map(|t| get(c, 8, t)).collect();
        (!parts.is_empty()).then(|| parts.iter().sum())
    };
    Ok(Registers { import_wh: get(1, 8, 0).or(tariffs(1)), export_wh: get(2, 8, 0).or(tariffs(2)), power_w: get(16, 7, 0) })
}

/// One whole frame, from the start escape to the CRC.
pub fn parse(frame: &[u8]) -> Result<Registers, MeterError> {
    if frame.len() < 16 || frame[..8] != BEGIN {
        return Err(malformed("a frame starts with 1b1b1b1b 01010101"));
    }
    let mut payload = Vec::with_capacity(frame.len());
    let mut i = 8;
    loop {
        let block = frame.get(i..i + 4).ok_or_else(|| malformed("no end escape"))?;
        if block != ESCAPE {
            payload.extend_from_slice(block);
            i += 4;
            continue;
        }
        let next = frame.get(i + 4..i + 8).ok_or_else(|| malformed("ends inside an escape"))?;
        if next == ESCAPE {
            // Escaped data: the four escape bytes themselves.
            payload.extend_from_slice(&ESCAPE);
            i += 8;
            continue;
        }
        if next[0] != 0x1a {
            return Err(malformed(format!("unknown escape {next:02x?}")));
        }
        if i + 8 != frame.len() {
            return Err(malformed("bytes after the end escape"));
        }
        let padding = usize::from(next[1]);
        // The CRC goes out low byte first (as real meters send it).
        let stated = u16::from_le_bytes([next[2], next[3]]);
        let computed = crc16(&frame[..i + 6]);
        if stated != computed {
            return Err(MeterError::Checksum { stated, computed });
        }
        // The specification pads to 4 bytes (0 to 3); real meters have been seen sending 4.
        if padding > payload.len() {
            return Err(malformed(format!("padding of {padding} bytes")));
        }
        payload.truncate(payload.len() - padding);
        return registers(&payload);
    }
}

/// Frames out of a byte stream (an optical reader's serial line or its TCP bridge),
/// whatever the chunking; bytes before a start escape are skipped.
#[derive(Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Registers, MeterError>> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let Some(start) = self.buffer.windows(8).position(|w| w == BEGIN) else {
                // Keep a possible beginning of a start sequence.
                let keep = self.buffer.len().min(7);
                self.buffer.drain(..self.buffer.len() - keep);
                break;
            };
            self.buffer.drain(..start);
            // The end escape, on a 4-byte boundary from the start, not escaped data.
            let mut i = 8;
            let mut end = None;
            while i + 8 <= self.buffer.len() {
                if self.buffer[i..i + 4] == ESCAPE {
                    if self.buffer[i + 4..i + 8] == ESCAPE {
                        i += 8;
                        continue;
                    }
                    end = Some(i + 8);
                    break;
                }
                i += 4;
            }
            match end {
                Some(end) => {
                    let frame: Vec<u8> = self.buffer.drain(..end).collect();
                    out.push(parse(&frame));
                }
                None if self.buffer.len() > MAX_FRAME => {
                    out.push(Err(malformed(format!("no end escape in {MAX_FRAME} bytes"))));
                    self.buffer.drain(..8);
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_the_check_string() {
        // CRC-16/X-25 of "123456789".
        assert_eq!(crc16(b"123456789"), 0x906E);
    }

    #[test]
    fn hostile_nesting_and_lengths_are_refused() {
        let deep = vec![0x71; 200];
        assert!(node(&deep, &mut 0, 0).is_err());
        assert!(node(&[0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x0f], &mut 0, 0).is_err());
        assert!(node(&[0x09, 1, 2], &mut 0, 0).is_err());
        assert!(node(&[0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9], &mut 0, 0).is_err());
        assert_eq!(node(&[0x52, 0xff], &mut 0, 0), Ok(Node::Int(-1)));
        assert_eq!(node(&[0x63, 0x01, 0x00], &mut 0, 0), Ok(Node::Uint(256)));
    }
}
