use anchor_spl::token_2022::spl_token_2022::extension::{BaseStateWithExtensions, StateWithExtensions};
use anchor_spl::token_2022::spl_token_2022::state::Mint;
use anchor_spl::token_interface::spl_token_metadata_interface::state::TokenMetadata;
use ovpp::client;
use ovpp::instructions::PostEpochArgs;
use ovpp::merkle::MerkleTree;
use ovpp::protocol::{config_address, epoch_address, leaf_hash, mint_address, RewardLeaf};
use ovpp::state::{DeviceKind, DeviceStatus, Epoch};
use ovpp_program_tests::*;
use solana_sdk::signature::Signer;

#[tokio::test]
async fn initialize_creates_config_and_a_pda_mint_wallets_can_name() {
    let mut chain = TestChain::initialized(3, 2).await;
    let config = chain.config().await;
    assert_eq!(config.authority, chain.authority.pubkey());
    assert_eq!(config.threshold, 2);
    assert_eq!(config.oracles.len(), 3);
    assert_eq!(config.mint, mint_address().0);
    assert!(!config.paused);
    assert_ovpp_mint(&mut chain).await;
}

/// The OVPP mint exists as initialize makes it: Token-2022, `Config` its only authority,
/// 6 decimals, nothing minted, name and symbol in its own metadata.
pub async fn assert_ovpp_mint(chain: &mut TestChain) {
    let mint_account = chain.account(mint_address().0).await.expect("mint exists");
    assert_eq!(mint_account.owner, anchor_spl::token_2022::ID);
    let mint = StateWithExtensions::<Mint>::unpack(&mint_account.data).expect("mint");
    assert_eq!(Option::<anchor_lang::prelude::Pubkey>::from(mint.base.mint_authority), Some(config_address().0));
    assert_eq!(Option::<anchor_lang::prelude::Pubkey>::from(mint.base.freeze_authority), None);
    assert_eq!(mint.base.decimals, 6);
    assert_eq!(mint.base.supply, 0);
    let metadata = mint.get_variable_len_extension::<TokenMetadata>().expect("token metadata");
    assert_eq!(metadata.name, "OpenVPP");
    assert_eq!(metadata.symbol, "OVPP");
    assert_eq!(metadata.uri, "https://openvpp.org/token.json");
    assert_eq!(metadata.mint, mint_address().0);
    assert_eq!(Option::<anchor_lang::prelude::Pubkey>::from(metadata.update_authority), Some(config_address().0));
}

/// initialize, register two devices, post epochs 1 and 2 signed by M of N oracles, claim
/// across both epochs in one claim, transfer a device, claim again as the new owner.
#[tokio::test]
async fn happy_path_register_post_claim_transfer_claim() {
    let mut chain = TestChain::initialized(5, 3).await;
    let alice = chain.new_owner().await;
    let bob = chain.new_owner().await;
    let battery = chain.register(&alice, DeviceKind::HomeBattery, home_battery()).await;
    let solar = chain.register(&bob, DeviceKind::RooftopSolar, rooftop_solar()).await;

    let device = chain.device(&battery.pubkey()).await;
    assert_eq!(device.owner, alice.pubkey());
    assert_eq!(device.kind, DeviceKind::HomeBattery);
    assert_eq!(device.status, DeviceStatus::Active);
    assert_eq!(device.rated_power_w, 5_000);
    assert_eq!(device.energy_capacity_wh, 13_500);
    assert_eq!(&device.region[..5], b"DE-BY");

    // Epoch 1: battery earned 10 OVPP, solar 4 OVPP.
    let e1 = [(battery.pubkey(), leaf(1, 10_000_000)), (solar.pubkey(), leaf(1, 4_000_000))];
    let (tree1, args1) = epoch_tree(1, &e1);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args1, 3).await.expect("post epoch 1");
    // Epoch 2: cumulative 25 and 9.
    let e2 = [(battery.pubkey(), leaf(2, 25_000_000)), (solar.pubkey(), leaf(2, 9_000_000))];
    let (tree2, args2) = epoch_tree(2, &e2);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args2, 3).await.expect("post epoch 2");

    let epoch2: Epoch = chain.anchor_account(epoch_address(2).0).await;
    assert_eq!(epoch2.root, args2.root);
    assert_eq!(epoch2.signers.len(), 3);
    let config = chain.config().await;
    assert_eq!(config.last_epoch, 2);
    assert_eq!(config.cumulative_total, 34_000_000);

    // One claim with the epoch-2 leaf covers both epochs (alice never claimed epoch 1).
    chain.claim(&battery.pubkey(), alice.pubkey(), e2[0].1, tree2.proof(0).unwrap()).await.expect("claim");
    assert_eq!(chain.ovpp_balance(&alice.pubkey()).await, 25_000_000);
    let device = chain.device(&battery.pubkey()).await;
    assert_eq!(device.claimed, 25_000_000);
    assert_eq!(device.credit.reputation_bps, 9_000);
    assert_eq!(device.credit.as_of_epoch, 2);
    assert_eq!(device.contribution.energy_delivered_wh, 2_000);

    // Bob claims epoch 1 first, then the rest with epoch 2: 4 then 5.
    chain.claim(&solar.pubkey(), bob.pubkey(), e1[1].1, tree1.proof(1).unwrap()).await.expect("claim e1");
    assert_eq!(chain.ovpp_balance(&bob.pubkey()).await, 4_000_000);
    chain.claim(&solar.pubkey(), bob.pubkey(), e2[1].1, tree2.proof(1).unwrap()).await.expect("claim e2");
    assert_eq!(chain.ovpp_balance(&bob.pubkey()).await, 9_000_000);

    // Alice sells the battery to Carol; epoch 3 pays Carol the new earnings.
    let carol = chain.new_owner().await;
    let ix = client::transfer_device(alice.pubkey(), &battery.pubkey(), carol.pubkey());
    chain.send(&[ix], &[&alice]).await.expect("transfer");
    assert_eq!(chain.device(&battery.pubkey()).await.owner, carol.pubkey());
    let e3 = [(battery.pubkey(), leaf(3, 31_000_000)), (solar.pubkey(), leaf(3, 9_000_000))];
    let (tree3, args3) = epoch_tree(3, &e3);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args3, 4).await.expect("post epoch 3");
    chain.claim(&battery.pubkey(), carol.pubkey(), e3[0].1, tree3.proof(0).unwrap()).await.expect("claim as carol");
    assert_eq!(chain.ovpp_balance(&carol.pubkey()).await, 6_000_000);
    assert_eq!(chain.ovpp_balance(&alice.pubkey()).await, 25_000_000);

    let config = chain.config().await;
    assert_eq!(config.total_claimed, 40_000_000);
    let mint_account = chain.account(mint_address().0).await.unwrap();
    let mint = StateWithExtensions::<Mint>::unpack(&mint_account.data).unwrap();
    assert_eq!(mint.base.supply, 40_000_000);
}

/// A leaf with plausible credit fields derived from the epoch.
pub fn leaf(epoch: u64, cumulative_amount: u64) -> RewardLeaf {
    RewardLeaf {
        epoch,
        cumulative_amount,
        reputation_bps: 8_000 + 500 * epoch as u16,
        epochs_active: epoch as u32,
        faults: 0,
        energy_delivered_wh: 1_000 * epoch,
        flexibility_delivered_wh: 300 * epoch,
    }
}

/// The tree and posting arguments of an epoch whose leaves are `entries`, in order.
pub fn epoch_tree(epoch: u64, entries: &[(anchor_lang::prelude::Pubkey, RewardLeaf)]) -> (MerkleTree, PostEpochArgs) {
    let hashes = entries.iter().map(|(key, leaf)| leaf_hash(&ovpp::ID, key, leaf)).collect();
    let tree = MerkleTree::new(hashes).expect("non-empty");
    let args = PostEpochArgs {
        epoch,
        root: tree.root(),
        cumulative_total: entries.iter().map(|(_, l)| l.cumulative_amount).sum(),
        leaf_count: entries.len() as u64,
        report_hash: [epoch as u8; 32],
    };
    (tree, args)
}
