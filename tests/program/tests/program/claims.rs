use anchor_lang::prelude::Pubkey;
use ovpp::client;
use ovpp::errors::OvppError;
use ovpp::protocol::RewardLeaf;
use ovpp::state::DeviceKind;
use ovpp_program_tests::*;
use solana_sdk::signature::{Keypair, Signer};

use crate::lifecycle::{epoch_tree, leaf};

struct Fleet {
    chain: TestChain,
    alice: Keypair,
    battery: Pubkey,
    solar: Pubkey,
    bob: Keypair,
}

/// Two devices and `epochs` posted epochs in which the battery earns 10 OVPP and the solar
/// system 4 OVPP per epoch. Returns the fleet and the trees of every epoch.
async fn fleet(epochs: u64) -> (Fleet, Vec<(ovpp::merkle::MerkleTree, [RewardLeaf; 2])>) {
    let mut chain = TestChain::initialized(1, 1).await;
    let alice = chain.new_owner().await;
    let bob = chain.new_owner().await;
    let battery = chain.register(&alice, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    let solar = chain.register(&bob, DeviceKind::RooftopSolar, rooftop_solar()).await.pubkey();
    let mut trees = Vec::new();
    for epoch in 1..=epochs {
        let leaves = [leaf(epoch, 10_000_000 * epoch), leaf(epoch, 4_000_000 * epoch)];
        let (tree, args) = epoch_tree(epoch, &[(battery, leaves[0]), (solar, leaves[1])]);
        chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
        chain.post_epoch(args, 1).await.expect("post");
        trees.push((tree, leaves));
    }
    (Fleet { chain, alice, battery, solar, bob }, trees)
}

#[tokio::test]
async fn wrong_proofs_and_other_devices_leaves_are_refused() {
    let (mut f, trees) = fleet(1).await;
    let (tree, leaves) = &trees[0];
    let alice = f.alice.pubkey();
    // Tampered amount, tampered credit field, wrong sibling, empty proof.
    let richer = RewardLeaf { cumulative_amount: leaves[0].cumulative_amount + 1, ..leaves[0] };
    assert_ovpp_err(f.chain.claim(&f.battery, alice, richer, tree.proof(0).unwrap()).await, OvppError::InvalidProof);
    let flattering = RewardLeaf { reputation_bps: 10_000, ..leaves[0] };
    assert_ovpp_err(f.chain.claim(&f.battery, alice, flattering, tree.proof(0).unwrap()).await, OvppError::InvalidProof);
    assert_ovpp_err(f.chain.claim(&f.battery, alice, leaves[0], vec![[3; 32]]).await, OvppError::InvalidProof);
    assert_ovpp_err(f.chain.claim(&f.battery, alice, leaves[0], vec![]).await, OvppError::InvalidProof);
    // Alice presents Bob's leaf and proof for her battery.
    assert_ovpp_err(f.chain.claim(&f.battery, alice, leaves[1], tree.proof(1).unwrap()).await, OvppError::InvalidProof);
    assert_eq!(f.chain.ovpp_balance(&alice).await, 0);
}

#[tokio::test]
async fn a_second_claim_with_the_same_leaf_pays_nothing() {
    let (mut f, trees) = fleet(2).await;
    let alice = f.alice.pubkey();
    let (tree, leaves) = &trees[1];
    f.chain.claim(&f.battery, alice, leaves[0], tree.proof(0).unwrap()).await.expect("first claim");
    assert_ovpp_err(f.chain.claim(&f.battery, alice, leaves[0], tree.proof(0).unwrap()).await, OvppError::NothingToClaim);
    // An older leaf neither pays nor rolls the credit record back.
    let (old_tree, old_leaves) = &trees[0];
    let result = f.chain.claim(&f.battery, alice, old_leaves[0], old_tree.proof(0).unwrap()).await;
    assert_ovpp_err(result, OvppError::NothingToClaim);
    assert_eq!(f.chain.ovpp_balance(&alice).await, 20_000_000);
    assert_eq!(f.chain.device(&f.battery).await.credit.as_of_epoch, 2);
}

#[tokio::test]
async fn a_newer_leaf_with_no_new_earnings_updates_only_the_credit_record() {
    let (mut f, trees) = fleet(1).await;
    let alice = f.alice.pubkey();
    let (tree, leaves) = &trees[0];
    f.chain.claim(&f.battery, alice, leaves[0], tree.proof(0).unwrap()).await.expect("claim");
    let stalled = RewardLeaf { epoch: 2, faults: 3, reputation_bps: 4_000, ..leaves[0] };
    let (tree2, args2) = epoch_tree(2, &[(f.battery, stalled), (f.solar, leaf(2, 8_000_000))]);
    f.chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    f.chain.post_epoch(args2, 1).await.expect("post 2");
    f.chain.claim(&f.battery, alice, stalled, tree2.proof(0).unwrap()).await.expect("record update");
    let device = f.chain.device(&f.battery).await;
    assert_eq!((device.credit.faults, device.credit.reputation_bps, device.credit.as_of_epoch), (3, 4_000, 2));
    assert_eq!(f.chain.ovpp_balance(&alice).await, 10_000_000);
}

#[tokio::test]
async fn only_roots_in_the_ring_are_accepted() {
    let (mut f, trees) = fleet(9).await;
    let alice = f.alice.pubkey();
    // Epoch 1's root was overwritten by epoch 9's in the ring of 8.
    let (tree1, leaves1) = &trees[0];
    assert_ovpp_err(f.chain.claim(&f.battery, alice, leaves1[0], tree1.proof(0).unwrap()).await, OvppError::RootNotInRing);
    // An epoch that was never posted.
    let future = RewardLeaf { epoch: 10, ..leaves1[0] };
    assert_ovpp_err(f.chain.claim(&f.battery, alice, future, tree1.proof(0).unwrap()).await, OvppError::RootNotInRing);
    // Epoch 2, the oldest kept, still pays.
    let (tree2, leaves2) = &trees[1];
    f.chain.claim(&f.battery, alice, leaves2[0], tree2.proof(0).unwrap()).await.expect("epoch 2 is in the ring");
}

#[tokio::test]
async fn only_the_device_owner_is_paid() {
    let (mut f, trees) = fleet(1).await;
    let (tree, leaves) = &trees[0];
    let mallory = f.chain.new_owner().await;
    // Mallory names herself as the owner.
    let result = f.chain.claim(&f.battery, mallory.pubkey(), leaves[0], tree.proof(0).unwrap()).await;
    assert_ovpp_err(result, OvppError::NotDeviceOwner);
    // Mallory names Alice but substitutes her own token account.
    let mallory_ata = client::owner_token_account(&mallory.pubkey());
    let ix = client::claim(mallory.pubkey(), &f.battery, f.alice.pubkey(), leaves[0], tree.proof(0).unwrap());
    let ix = replace_account(ix, 5, mallory_ata);
    let result = f.chain.send(&[ix], &[&mallory]).await;
    assert_ovpp_err(result, OvppError::NotOwnerTokenAccount);
    // A stranger cranks the claim and pays for the account; Alice gets the tokens.
    let ix = client::claim(mallory.pubkey(), &f.battery, f.alice.pubkey(), leaves[0], tree.proof(0).unwrap());
    f.chain.send(&[ix], &[&mallory]).await.expect("crank");
    assert_eq!(f.chain.ovpp_balance(&f.alice.pubkey()).await, 10_000_000);
    assert_eq!(f.chain.ovpp_balance(&mallory.pubkey()).await, 0);
}

#[tokio::test]
async fn a_mint_other_than_the_ovpp_pda_mint_is_refused() {
    use anchor_spl::token_2022::spl_token_2022::instruction::initialize_mint2;
    let (mut f, trees) = fleet(1).await;
    let (tree, leaves) = &trees[0];
    // Mallory's own Token-2022 mint, with herself as mint authority.
    let mallory = f.chain.new_owner().await;
    let fake_mint = Keypair::new();
    let space = 82;
    let create = anchor_lang::solana_program::system_instruction::create_account(
        &mallory.pubkey(),
        &fake_mint.pubkey(),
        1_000_000_000,
        space,
        &anchor_spl::token_2022::ID,
    );
    let init = initialize_mint2(&anchor_spl::token_2022::ID, &fake_mint.pubkey(), &mallory.pubkey(), None, 6).unwrap();
    f.chain.send(&[create, init], &[&mallory, &fake_mint]).await.expect("fake mint");
    let ix = client::claim(mallory.pubkey(), &f.battery, f.alice.pubkey(), leaves[0], tree.proof(0).unwrap());
    let ix = replace_account(ix, 2, fake_mint.pubkey());
    assert_ovpp_err(f.chain.send(&[ix], &[&mallory]).await, OvppError::WrongMint);
}

#[tokio::test]
async fn retired_and_suspended_devices_cannot_claim() {
    let (mut f, trees) = fleet(1).await;
    let (tree, leaves) = &trees[0];
    let authority = f.chain.authority.insecure_clone();
    f.chain.send(&[client::suspend_device(authority.pubkey(), &f.battery, 1)], &[&authority]).await.unwrap();
    let result = f.chain.claim(&f.battery, f.alice.pubkey(), leaves[0], tree.proof(0).unwrap()).await;
    assert_ovpp_err(result, OvppError::DeviceNotActive);
    f.chain.send(&[client::reinstate_device(authority.pubkey(), &f.battery)], &[&authority]).await.unwrap();
    f.chain.claim(&f.battery, f.alice.pubkey(), leaves[0], tree.proof(0).unwrap()).await.expect("reinstated");

    let bob = f.bob.insecure_clone();
    f.chain.send(&[client::retire_device(bob.pubkey(), &f.solar)], &[&bob]).await.unwrap();
    let result = f.chain.claim(&f.solar, bob.pubkey(), leaves[1], tree.proof(1).unwrap()).await;
    assert_ovpp_err(result, OvppError::DeviceNotActive);
}

/// Even a root signed by the oracles cannot mint more than the posted cumulative total.
#[tokio::test]
async fn claims_never_exceed_the_posted_cumulative_total() {
    let mut chain = TestChain::initialized(1, 1).await;
    let alice = chain.new_owner().await;
    let battery = chain.register(&alice, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    let inflated = leaf(1, 50_000_000);
    let (tree, mut args) = epoch_tree(1, &[(battery, inflated)]);
    args.cumulative_total = 10_000_000;
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args, 1).await.unwrap();
    let result = chain.claim(&battery, alice.pubkey(), inflated, tree.proof(0).unwrap()).await;
    assert_ovpp_err(result, OvppError::ClaimExceedsPosted);
}
