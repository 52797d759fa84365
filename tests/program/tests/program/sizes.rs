//! Transaction sizes at production scale: both must fit Solana's 1232-byte packet.

use anchor_lang::prelude::Pubkey;
use ovpp::client;
use ovpp::instructions::PostEpochArgs;
use ovpp::merkle::MerkleTree;
use ovpp::protocol::{leaf_hash, RewardLeaf};
use ovpp::state::{DeviceKind, MAX_THRESHOLD};
use ovpp_program_tests::*;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

const PACKET_DATA_SIZE: usize = 1232;

/// Wire size of a legacy transaction: signature count (1 byte below 128), signatures, message.
fn wire_size(ixs: &[Instruction], payer: &Keypair) -> usize {
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &[payer], Hash::new_unique());
    1 + 64 * tx.signatures.len() + tx.message.serialize().len()
}

/// A claim against a 2^20-leaf epoch (20 proof siblings) sent by the owner, and the
/// same claim landing on chain.
#[tokio::test]
async fn claim_from_a_2_pow_20_leaf_tree_fits_one_packet() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let device = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    let n = 1usize << 20;
    let ours = RewardLeaf { epoch: 1, cumulative_amount: 1_000_000, reputation_bps: 9_000, ..RewardLeaf::default() };
    let mut hashes: Vec<[u8; 32]> = (0..n as u64)
        .map(|i| {
            let leaf = RewardLeaf { epoch: 1, cumulative_amount: i, ..RewardLeaf::default() };
            leaf_hash(&ovpp::ID, &Pubkey::new_from_array(ovpp_key(i)), &leaf)
        })
        .collect();
    let index = n / 3;
    hashes[index] = leaf_hash(&ovpp::ID, &device, &ours);
    let tree = MerkleTree::new(hashes).unwrap();
    let proof = tree.proof(index).unwrap();
    assert_eq!(proof.len(), 20);

    let ix = client::claim(owner.pubkey(), &device, owner.pubkey(), ours, proof.clone());
    let size = wire_size(&[ix], &owner);
    println!("claim transaction, 2^20-leaf tree: {size} bytes");
    assert!(size <= PACKET_DATA_SIZE, "{size} > {PACKET_DATA_SIZE}");

    let args = PostEpochArgs { epoch: 1, root: tree.root(), cumulative_total: EMISSION_CAP, leaf_count: n as u64, report_hash: [1; 32] };
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args, 1).await.expect("post");
    chain.claim(&device, owner.pubkey(), ours, proof).await.expect("claim with a 20-sibling proof");
    assert_eq!(chain.ovpp_balance(&owner.pubkey()).await, 1_000_000);
}

fn ovpp_key(i: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&i.to_le_bytes());
    key[31] = 0xaa;
    key
}

/// The largest threshold (5 signatures in one Ed25519 instruction) still fits, and lands.
#[tokio::test]
async fn post_epoch_with_the_maximum_threshold_fits_one_packet() {
    let mut chain = TestChain::initialized(8, MAX_THRESHOLD).await;
    let args = PostEpochArgs { epoch: 1, root: [5; 32], cumulative_total: 10, leaf_count: 1_000_000, report_hash: [6; 32] };
    let signers: Vec<&Keypair> = chain.oracles.iter().take(MAX_THRESHOLD as usize).collect();
    let signatures = TestChain::sign_epoch(&args, &signers);
    let relayer = Keypair::new();
    let ixs = client::post_epoch(relayer.pubkey(), args, &signatures).unwrap();
    let size = wire_size(&ixs, &relayer);
    println!("post_epoch transaction, {MAX_THRESHOLD} signatures: {size} bytes");
    assert!(size <= PACKET_DATA_SIZE, "{size} > {PACKET_DATA_SIZE}");
    let six: Vec<&Keypair> = chain.oracles.iter().take(MAX_THRESHOLD as usize + 1).collect();
    let ixs6 = client::post_epoch(relayer.pubkey(), args, &TestChain::sign_epoch(&args, &six)).unwrap();
    assert!(wire_size(&ixs6, &relayer) > PACKET_DATA_SIZE, "MAX_THRESHOLD could be raised");
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args, MAX_THRESHOLD as usize).await.expect("5 of 8");
}
