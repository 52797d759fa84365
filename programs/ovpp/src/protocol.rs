//! Byte-level contracts shared by the program and the off-chain crates: PDA seeds, Merkle
//! leaf and node hashing, the signed epoch message. Defined once, here.

use anchor_lang::prelude::*;

pub const CONFIG_SEED: &[u8] = b"config";
pub const MINT_SEED: &[u8] = b"mint";
pub const DEVICE_SEED: &[u8] = b"device";
pub const EPOCH_SEED: &[u8] = b"epoch";
pub const GOVERNANCE_SEED: &[u8] = b"governance";
pub const VAULT_SEED: &[u8] = b"vault";
pub const ESCROW_SEED: &[u8] = b"escrow";
pub const PROPOSAL_SEED: &[u8] = b"proposal";
pub const VOTE_SEED: &[u8] = b"vote";

pub const LEAF_DOMAIN: &[u8] = b"OVPP-LEAF-V1";
pub const EPOCH_DOMAIN: &[u8] = b"OVPP-EPOCH-V1";
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Longest proof a claim accepts: 32 levels cover 4 billion leaves.
pub const MAX_PROOF_LEN: usize = 32;

pub fn config_address() -> (Pubkey, u8) {
    Pubkey::find_program_address(&[CONFIG_SEED], &crate::ID)
}

pub fn mint_address() -> (Pubkey, u8) {
    Pubkey::find_program_address(&[MINT_SEED], &crate::ID)
}

pub fn device_address(device_key: &Pubkey) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[DEVICE_SEED, device_key.as_ref()], &crate::ID)
}

pub fn epoch_address(epoch: u64) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[EPOCH_SEED, &epoch.to_le_bytes()], &crate::ID)
}

pub fn governance_address() -> (Pubkey, u8) {
    Pubkey::find_program_address(&[GOVERNANCE_SEED], &crate::ID)
}

pub fn vault_address() -> (Pubkey, u8) {
    Pubkey::find_program_address(&[VAULT_SEED], &crate::ID)
}

pub fn escrow_address(owner: &Pubkey) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[ESCROW_SEED, owner.as_ref()], &crate::ID)
}

pub fn proposal_address(id: u64) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[PROPOSAL_SEED, &id.to_le_bytes()], &crate::ID)
}

pub fn vote_address(proposal: &Pubkey, voter: &Pubkey) -> (Pubkey, u8) {
    Pubkey::find_program_address(&[VOTE_SEED, proposal.as_ref(), voter.as_ref()], &crate::ID)
}

/// What one device's leaf in epoch `epoch` attests: everything it has earned since genesis,
/// and its standing as of that epoch. The program stores these on claim.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "offchain", derive(serde::Serialize, serde::Deserialize))]
pub struct RewardLeaf {
    pub epoch: u64,
    /// OVPP base units earned since genesis (not this epoch's share).
    pub cumulative_amount: u64,
    pub reputation_bps: u16,
    pub epochs_active: u32,
    pub faults: u32,
    pub energy_delivered_wh: u64,
    pub flexibility_delivered_wh: u64,
}

pub type Hash32 = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash32 {
    solana_sha256_hasher::hashv(parts).to_bytes()
}

/// leaf = sha256(0x00 || "OVPP-LEAF-V1" || program_id || device_key || cumulative_amount ||
/// reputation_bps || epoch || epochs_active || faults || energy_delivered_wh ||
/// flexibility_delivered_wh), integers little-endian.
pub fn leaf_hash(program_id: &Pubkey, device_key: &Pubkey, leaf: &RewardLeaf) -> Hash32 {
    sha256(&[
        &[LEAF_PREFIX],
        LEAF_DOMAIN,
        program_id.as_ref(),
        device_key.as_ref(),
        &leaf.cumulative_amount.to_le_bytes(),
        &leaf.reputation_bps.to_le_bytes(),
        &leaf.epoch.to_le_bytes(),
        &leaf.epochs_active.to_le_bytes(),
        &leaf.faults.to_le_bytes(),
        &leaf.energy_delivered_wh.to_le_bytes(),
        &leaf.flexibility_delivered_wh.to_le_bytes(),
    ])
}

/// node = sha256(0x01 || min(a, b) || max(a, b)): sorted pairs, so a proof is a plain
/// sibling list; the prefixes keep a node from ever passing as a leaf.
pub fn node_hash(a: &Hash32, b: &Hash32) -> Hash32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    sha256(&[&[NODE_PREFIX], lo, hi])
}

pub fn root_from_proof(leaf: Hash32, proof: &[Hash32]) -> Hash32 {
    proof.iter().fold(leaf, |acc, sibling| node_hash(&acc, sibling))
}

/// Length of the signed epoch message in bytes.
pub const EPOCH_MESSAGE_LEN: usize = 13 + 32 + 32 + 8 + 32 + 8 + 8 + 32;

/// The exact bytes every oracle key signs for an epoch:
/// "OVPP-EPOCH-V1" || program_id || config || epoch || root || cumulative_total ||
/// leaf_count || report_hash, integers little-endian.
pub fn epoch_message(
    program_id: &Pubkey,
    config: &Pubkey,
    epoch: u64,
    root: &Hash32,
    cumulative_total: u64,
    leaf_count: u64,
    report_hash: &Hash32,
) -> [u8; EPOCH_MESSAGE_LEN] {
    let mut out = [0u8; EPOCH_MESSAGE_LEN];
    let parts: [&[u8]; 8] = [
        EPOCH_DOMAIN,
        program_id.as_ref(),
        config.as_ref(),
        &epoch.to_le_bytes(),
        root,
        &cumulative_total.to_le_bytes(),
        &leaf_count.to_le_bytes(),
        report_hash,
    ];
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    out
}
