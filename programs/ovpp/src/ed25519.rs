//! The Ed25519 precompile's instruction layout, read on-chain and built off-chain.
//!
//! Data: `num_signatures u8, padding u8`, then per signature 7 little-endian u16
//! (signature offset, signature ix index, pubkey offset, pubkey ix index, message offset,
//! message size, message ix index). The precompile verifies whatever those offsets point
//! at, possibly in *other* instructions; the program therefore only accepts entries whose
//! three indexes all name the Ed25519 instruction itself, and then reads the pubkey and
//! message from the very bytes the precompile verified.

pub const HEADER_LEN: usize = 2;
pub const OFFSETS_LEN: usize = 14;
pub const PUBKEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;
/// Index value meaning "this instruction" to the precompile.
pub const CURRENT_INSTRUCTION: u16 = u16::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureOffsets {
    pub signature_offset: u16,
    pub signature_instruction_index: u16,
    pub public_key_offset: u16,
    pub public_key_instruction_index: u16,
    pub message_data_offset: u16,
    pub message_data_size: u16,
    pub message_instruction_index: u16,
}

impl SignatureOffsets {
    pub fn read(data: &[u8], index: usize) -> Option<Self> {
        let start = HEADER_LEN.checked_add(index.checked_mul(OFFSETS_LEN)?)?;
        let raw = data.get(start..start.checked_add(OFFSETS_LEN)?)?;
        let word = |i: usize| u16::from_le_bytes([raw[2 * i], raw[2 * i + 1]]);
        Some(Self {
            signature_offset: word(0),
            signature_instruction_index: word(1),
            public_key_offset: word(2),
            public_key_instruction_index: word(3),
            message_data_offset: word(4),
            message_data_size: word(5),
            message_instruction_index: word(6),
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        for word in [
            self.signature_offset,
            self.signature_instruction_index,
            self.public_key_offset,
            self.public_key_instruction_index,
            self.message_data_offset,
            self.message_data_size,
            self.message_instruction_index,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    /// True when the signature, key and message all live in the instruction at `own_index`.
    pub fn all_in(&self, own_index: u16) -> bool {
        [self.signature_instruction_index, self.public_key_instruction_index, self.message_instruction_index]
            .iter()
            .all(|&i| i == own_index || i == CURRENT_INSTRUCTION)
    }
}

fn slice(data: &[u8], offset: u16, len: usize) -> Option<&[u8]> {
    let start = usize::from(offset);
    data.get(start..start.checked_add(len)?)
}

/// One verified entry of an Ed25519 instruction: the key and the message it signed.
pub struct SignedEntry<'a> {
    pub pubkey: &'a [u8],
    pub message: &'a [u8],
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Signature count zero, or offsets/sizes outside the instruction data.
    Malformed,
    /// An index names another instruction.
    IndexMismatch,
}

/// Reads every entry of the Ed25519 instruction at `own_index` of the transaction.
pub fn parse_entries(data: &[u8], own_index: u16) -> Result<Vec<SignedEntry<'_>>, ParseError> {
    let count = usize::from(*data.first().ok_or(ParseError::Malformed)?);
    if count == 0 || data.len() < HEADER_LEN + count * OFFSETS_LEN {
        return Err(ParseError::Malformed);
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let offsets = SignatureOffsets::read(data, i).ok_or(ParseError::Malformed)?;
        if !offsets.all_in(own_index) {
            return Err(ParseError::IndexMismatch);
        }
        slice(data, offsets.signature_offset, SIGNATURE_LEN).ok_or(ParseError::Malformed)?;
        let pubkey = slice(data, offsets.public_key_offset, PUBKEY_LEN).ok_or(ParseError::Malformed)?;
        let message = slice(data, offsets.message_data_offset, usize::from(offsets.message_data_size)).ok_or(ParseError::Malformed)?;
        entries.push(SignedEntry { pubkey, message });
    }
    Ok(entries)
}

/// Builds the data of one Ed25519 instruction carrying every `(pubkey, signature)` over
/// one shared copy of `message`; all indexes say "this instruction". `None` when there is
/// no signature, more than 255, or the data would not be addressable by u16 offsets.
#[cfg(feature = "offchain")]
pub fn build_instruction_data(signatures: &[([u8; PUBKEY_LEN], [u8; SIGNATURE_LEN])], message: &[u8]) -> Option<Vec<u8>> {
    let n = signatures.len();
    if !(1..=usize::from(u8::MAX)).contains(&n) {
        return None;
    }
    let keys_at = HEADER_LEN + n * OFFSETS_LEN;
    let message_at = keys_at + n * (PUBKEY_LEN + SIGNATURE_LEN);
    let total = message_at + message.len();
    if total > usize::from(u16::MAX) {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[n as u8, 0]);
    for i in 0..n {
        let key_at = keys_at + i * (PUBKEY_LEN + SIGNATURE_LEN);
        SignatureOffsets {
            signature_offset: (key_at + PUBKEY_LEN) as u16,
            signature_instruction_index: CURRENT_INSTRUCTION,
            public_key_offset: key_at as u16,
            public_key_instruction_index: CURRENT_INSTRUCTION,
            message_data_offset: message_at as u16,
            message_data_size: message.len() as u16,
            message_instruction_index: CURRENT_INSTRUCTION,
        }
        .write(&mut out);
    }
    for (pubkey, signature) in signatures {
        out.extend_from_slice(pubkey);
        out.extend_from_slice(signature);
    }
    out.extend_from_slice(message);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry_bytes(offsets: SignatureOffsets, tail: &[u8]) -> Vec<u8> {
        let mut data = vec![1, 0];
        offsets.write(&mut data);
        data.extend_from_slice(tail);
        data
    }

    const SELF_ALL: SignatureOffsets = SignatureOffsets {
        signature_offset: 48,
        signature_instruction_index: CURRENT_INSTRUCTION,
        public_key_offset: 16,
        public_key_instruction_index: CURRENT_INSTRUCTION,
        message_data_offset: 112,
        message_data_size: 4,
        message_instruction_index: CURRENT_INSTRUCTION,
    };

    #[test]
    fn reads_key_and_message_from_the_verified_bytes() {
        let mut tail = vec![7u8; 32];
        tail.extend_from_slice(&[9u8; 64]);
        tail.extend_from_slice(b"epoc");
        let data = entry_bytes(SELF_ALL, &tail);
        let entries = parse_entries(&data, 3).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].pubkey, &[7u8; 32]);
        assert_eq!(entries[0].message, b"epoc");
        // The explicit own index is as good as "this instruction".
        let own = SignatureOffsets { message_instruction_index: 3, ..SELF_ALL };
        assert!(parse_entries(&entry_bytes(own, &tail), 3).is_ok());
    }

    #[test]
    fn refuses_out_of_bounds_zero_count_and_foreign_indexes() {
        let tail = vec![0u8; 100];
        assert_eq!(parse_entries(&[], 0).err(), Some(ParseError::Malformed));
        assert_eq!(parse_entries(&[0, 0], 0).err(), Some(ParseError::Malformed));
        assert_eq!(parse_entries(&[2, 0, 1, 2, 3], 0).err(), Some(ParseError::Malformed));
        // The message runs one byte past the end.
        let long = SignatureOffsets { message_data_size: 5, ..SELF_ALL };
        assert_eq!(parse_entries(&entry_bytes(long, &tail), 0).err(), Some(ParseError::Malformed));
        let far = SignatureOffsets { public_key_offset: u16::MAX, ..SELF_ALL };
        assert_eq!(parse_entries(&entry_bytes(far, &tail), 0).err(), Some(ParseError::Malformed));
        for foreign in [
            SignatureOffsets { signature_instruction_index: 0, ..SELF_ALL },
            SignatureOffsets { public_key_instruction_index: 0, ..SELF_ALL },
            SignatureOffsets { message_instruction_index: 0, ..SELF_ALL },
        ] {
            assert_eq!(parse_entries(&entry_bytes(foreign, &tail), 1).err(), Some(ParseError::IndexMismatch));
        }
    }

    #[cfg(feature = "offchain")]
    #[test]
    fn built_instructions_parse_back() {
        let sigs = [([1u8; 32], [2u8; 64]), ([3u8; 32], [4u8; 64])];
        let data = build_instruction_data(&sigs, b"hello").unwrap();
        let entries = parse_entries(&data, 5).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[1].pubkey, entries[1].message), (&[3u8; 32][..], &b"hello"[..]));
        assert_eq!(build_instruction_data(&[], b"x"), None);
        assert_eq!(build_instruction_data(&sigs, &vec![0; 70_000]), None);
    }

    proptest! {
        /// Arbitrary instruction data never panics the parser.
        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), own in any::<u16>()) {
            let _ = parse_entries(&data, own);
        }
    }
}
