//! Instructions into transactions that fit Solana's packet (1232 bytes): many claims (or
//! other instructions) in as few transactions as will carry them.

use anchor_lang::prelude::Pubkey;
use solana_sdk::instruction::Instruction;
use solana_sdk::message::Message;

/// The most bytes a serialized transaction may take.
pub const PACKET_BYTES: usize = 1232;

/// Whether `instructions`, paid by `payer`, fit one transaction with every signature.
pub fn fits(instructions: &[Instruction], payer: &Pubkey) -> bool {
    let message = Message::new(instructions, Some(payer));
    // Compact-u16 signature count (one byte below 128), the signatures, the message.
    1 + 64 * usize::from(message.header.num_required_signatures) + message.serialize().len() <= PACKET_BYTES
}

/// Splits `items` (each with its instruction) into consecutive groups that each fit one
/// transaction paid by `payer`; an item too big even alone gets a group of its own.
pub fn pack<'a, T>(items: &'a [T], payer: &Pubkey, instruction: impl Fn(&T) -> &Instruction) -> Vec<&'a [T]> {
    let group_fits = |group: &[T]| fits(&group.iter().map(|i| instruction(i).clone()).collect::<Vec<_>>(), payer);
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start + 1;
        while end < items.len() && group_fits(&items[start..=end]) {
            end += 1;
        }
        out.push(&items[start..end]);
        start = end;
    }
    out
}
