use ovpp::client;
use ovpp::errors::OvppError;
use ovpp::instructions::InitializeArgs;
use ovpp::limits::MAX_EMISSION_CAP_PER_EPOCH;
use ovpp::state::DeviceKind;
use ovpp_program_tests::*;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::lifecycle::{epoch_tree, leaf};

#[tokio::test]
async fn only_the_upgrade_authority_initializes_and_only_once() {
    let mut chain = TestChain::new(2).await;
    let squatter = chain.new_owner().await;
    let args = chain.default_init_args(1);
    let ix = client::initialize(squatter.pubkey(), args.clone());
    assert_ovpp_err(chain.send(&[ix], &[&squatter]).await, OvppError::NotUpgradeAuthority);

    let authority = chain.authority.insecure_clone();
    let bad: [(InitializeArgs, OvppError); 6] = [
        (InitializeArgs { threshold: 0, ..args.clone() }, OvppError::InvalidThreshold),
        (InitializeArgs { threshold: 3, ..args.clone() }, OvppError::InvalidThreshold),
        (InitializeArgs { oracles: vec![], ..args.clone() }, OvppError::InvalidOracleSet),
        (InitializeArgs { epoch_length_secs: 59, ..args.clone() }, OvppError::InvalidEpochLength),
        (InitializeArgs { emission_cap_per_epoch: 0, ..args.clone() }, OvppError::InvalidEmissionCap),
        (InitializeArgs { metadata_uri: "x".repeat(201), ..args.clone() }, OvppError::InvalidTokenMetadata),
    ];
    for (bad_args, expected) in bad {
        let ix = client::initialize(authority.pubkey(), bad_args);
        assert_ovpp_err(chain.send(&[ix], &[&authority]).await, expected);
    }
    let ix = client::initialize(authority.pubkey(), args);
    chain.send(std::slice::from_ref(&ix), &[&authority]).await.expect("initialize");
    assert_ovpp_err(chain.send(&[ix], &[&authority]).await, OvppError::AlreadyInitialized);
}

#[tokio::test]
async fn parameter_changes_need_the_authority_and_stay_in_bounds() {
    let mut chain = TestChain::initialized(3, 2).await;
    let stranger = chain.new_owner().await;
    let s = stranger.pubkey();
    let keys: Vec<Pubkey> = chain.oracles.iter().map(Signer::pubkey).collect();
    let by_stranger: [Instruction; 5] = [
        client::set_oracle_set(s, vec![s], 1),
        client::set_emission_cap(s, 1),
        client::set_epoch_length(s, 60),
        client::set_paused(s, true),
        client::propose_authority(s, Some(s)),
    ];
    for ix in by_stranger {
        assert_ovpp_err(chain.send(&[ix], &[&stranger]).await, OvppError::NotAuthority);
    }

    let authority = chain.authority.insecure_clone();
    let a = authority.pubkey();
    let nine: Vec<Pubkey> = (0..9).map(|_| Pubkey::new_unique()).collect();
    let six: Vec<Pubkey> = (0..6).map(|_| Pubkey::new_unique()).collect();
    let out_of_bounds: [(Instruction, OvppError); 8] = [
        (client::set_oracle_set(a, nine, 3), OvppError::InvalidOracleSet),
        (client::set_oracle_set(a, vec![keys[0], keys[0]], 1), OvppError::InvalidOracleSet),
        (client::set_oracle_set(a, vec![keys[0], Pubkey::default()], 1), OvppError::InvalidOracleSet),
        (client::set_oracle_set(a, six, 6), OvppError::InvalidThreshold),
        (client::set_emission_cap(a, 0), OvppError::InvalidEmissionCap),
        (client::set_emission_cap(a, MAX_EMISSION_CAP_PER_EPOCH + 1), OvppError::InvalidEmissionCap),
        (client::set_epoch_length(a, 59), OvppError::InvalidEpochLength),
        (client::set_epoch_length(a, 31 * 24 * 3600 + 1), OvppError::InvalidEpochLength),
    ];
    for (ix, expected) in out_of_bounds {
        assert_ovpp_err(chain.send(&[ix], &[&authority]).await, expected);
    }
    chain.send(&[client::set_emission_cap(a, 5)], &[&authority]).await.unwrap();
    assert_eq!(chain.config().await.emission_cap_per_epoch, 5);
}

#[tokio::test]
async fn the_next_epoch_needs_the_new_oracle_set() {
    let mut chain = TestChain::initialized(2, 2).await;
    let authority = chain.authority.insecure_clone();
    let new_set: Vec<Keypair> = (0..3).map(|_| Keypair::new()).collect();
    let keys = new_set.iter().map(Signer::pubkey).collect();
    chain.send(&[client::set_oracle_set(authority.pubkey(), keys, 2)], &[&authority]).await.unwrap();
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    let owner = chain.new_owner().await;
    let device = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    let (_, args) = epoch_tree(1, &[(device, leaf(1, 1))]);
    assert_ovpp_err(chain.post_epoch(args, 2).await, OvppError::UnknownOracleSigner);
    chain.oracles = new_set;
    chain.post_epoch(args, 2).await.expect("new set signs");
}

#[tokio::test]
async fn a_new_epoch_length_applies_from_the_last_posted_epoch() {
    let mut chain = TestChain::initialized(1, 1).await;
    let authority = chain.authority.insecure_clone();
    let owner = chain.new_owner().await;
    let device = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(epoch_tree(1, &[(device, leaf(1, 1))]).1, 1).await.unwrap();
    chain.send(&[client::set_epoch_length(authority.pubkey(), 2 * EPOCH_LENGTH_SECS)], &[&authority]).await.unwrap();
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    let (_, args2) = epoch_tree(2, &[(device, leaf(2, 2))]);
    assert_ovpp_err(chain.post_epoch(args2, 1).await, OvppError::EpochNotEnded);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args2, 1).await.expect("two hours after epoch 1 ended");
}

#[tokio::test]
async fn authority_moves_in_two_steps() {
    let mut chain = TestChain::initialized(1, 1).await;
    let authority = chain.authority.insecure_clone();
    let multisig = chain.new_owner().await;
    let stranger = chain.new_owner().await;
    assert_ovpp_err(chain.send(&[client::accept_authority(multisig.pubkey())], &[&multisig]).await, OvppError::NoPendingAuthority);
    chain.send(&[client::propose_authority(authority.pubkey(), Some(multisig.pubkey()))], &[&authority]).await.unwrap();
    assert_eq!(chain.config().await.authority, authority.pubkey(), "nothing changes before acceptance");
    assert_ovpp_err(chain.send(&[client::accept_authority(stranger.pubkey())], &[&stranger]).await, OvppError::NotPendingAuthority);
    chain.send(&[client::accept_authority(multisig.pubkey())], &[&multisig]).await.unwrap();
    let config = chain.config().await;
    assert_eq!((config.authority, config.pending_authority), (multisig.pubkey(), None));
    let ix = client::set_paused(authority.pubkey(), true);
    assert_ovpp_err(chain.send(&[ix], &[&authority]).await, OvppError::NotAuthority);
    chain.send(&[client::set_paused(multisig.pubkey(), true)], &[&multisig]).await.expect("new authority");
}

#[tokio::test]
async fn pause_stops_registration_device_changes_posting_and_claims() {
    let mut chain = TestChain::initialized(1, 1).await;
    let authority = chain.authority.insecure_clone();
    let owner = chain.new_owner().await;
    let device = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    let (tree, args) = epoch_tree(1, &[(device, leaf(1, 5))]);
    chain.post_epoch(args, 1).await.unwrap();
    chain.send(&[client::set_paused(authority.pubkey(), true)], &[&authority]).await.unwrap();

    let new_key = Keypair::new();
    let register = client::register_device(owner.pubkey(), new_key.pubkey(), DeviceKind::HomeBattery, home_battery());
    assert_ovpp_err(chain.send(&[register], &[&owner, &new_key]).await, OvppError::Paused);
    let owner_ixs = [
        client::update_device(owner.pubkey(), &device, home_battery()),
        client::transfer_device(owner.pubkey(), &device, Pubkey::new_unique()),
        client::retire_device(owner.pubkey(), &device),
    ];
    for ix in owner_ixs {
        assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::Paused);
    }
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    assert_ovpp_err(chain.post_epoch(epoch_tree(2, &[(device, leaf(2, 6))]).1, 1).await, OvppError::Paused);
    assert_ovpp_err(chain.claim(&device, owner.pubkey(), leaf(1, 5), tree.proof(0).unwrap()).await, OvppError::Paused);

    chain.send(&[client::set_paused(authority.pubkey(), false)], &[&authority]).await.unwrap();
    chain.claim(&device, owner.pubkey(), leaf(1, 5), tree.proof(0).unwrap()).await.expect("unpaused");
}
