//! Anyone can send lamports to an address before the program creates its account there
//! (every PDA is predictable). A stranger pre-funding each of them, with dust or with more
//! than the rent, must not stop the normal flow: initialize, register, post, claim (into a
//! pre-funded token account), and governance's init, lock, propose and vote.

use ovpp::client;
use ovpp::errors::OvppError;
use ovpp::protocol::{
    config_address, device_address, epoch_address, escrow_address, governance_address, mint_address, proposal_address, vault_address,
    vote_address,
};
use ovpp::state::{DeviceKind, Escrow, Governance, GovernanceChange, Proposal};
use ovpp_program_tests::*;
use solana_sdk::signature::{Keypair, Signer};

use crate::governance::{params, OVPP, YEAR};
use crate::lifecycle::{assert_ovpp_mint, epoch_tree, leaf};

/// The least a new address can be sent (rent exemption of an empty account): the program
/// must top it up.
const DUST: u64 = 890_880;
/// What the attacker sent to the next epoch's address (0.0009 SOL), under its rent.
const NEAR_RENT: u64 = 900_000;
/// More than any rent: nothing to top up, the extra stays in the account.
const PLENTY: u64 = 2_000_000_000;

#[tokio::test]
async fn pre_funded_addresses_do_not_stop_the_normal_flow() {
    let mut chain = TestChain::new(1).await;

    // Initialize: Config and the mint.
    chain.fund(&config_address().0, DUST).await;
    chain.fund(&mint_address().0, PLENTY).await;
    let authority = chain.authority.insecure_clone();
    let init = client::initialize(authority.pubkey(), chain.default_init_args(1));
    chain.send(std::slice::from_ref(&init), &[&authority]).await.expect("initialize at pre-funded addresses");
    assert_eq!(chain.config().await.authority, authority.pubkey());
    assert_ovpp_mint(&mut chain).await;
    assert!(chain.account(mint_address().0).await.unwrap().lamports >= PLENTY, "the stranger's lamports stay");
    assert_ovpp_err(chain.send(&[init], &[&authority]).await, OvppError::AlreadyInitialized);

    // A device, before its owner registers it.
    let owner = chain.new_owner().await;
    let device_key = Keypair::new();
    chain.fund(&device_address(&device_key.pubkey()).0, NEAR_RENT).await;
    let register = client::register_device(owner.pubkey(), device_key.pubkey(), DeviceKind::HomeBattery, home_battery());
    chain.send(std::slice::from_ref(&register), &[&owner, &device_key]).await.expect("register at a pre-funded address");
    assert_eq!(chain.device(&device_key.pubkey()).await.owner, owner.pubkey());
    assert_ovpp_err(chain.send(&[register], &[&owner, &device_key]).await, OvppError::DeviceAlreadyRegistered);

    // The next epochs, then a claim from the first.
    chain.fund(&epoch_address(1).0, NEAR_RENT).await;
    chain.fund(&epoch_address(2).0, PLENTY).await;
    let earned = 500 * OVPP;
    let (tree, args) = epoch_tree(1, &[(device_key.pubkey(), leaf(1, earned))]);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args, 1).await.expect("post epoch 1 at a pre-funded address");
    let (_, args2) = epoch_tree(2, &[(device_key.pubkey(), leaf(2, earned))]);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain.post_epoch(args2, 1).await.expect("post epoch 2 at a pre-funded address");
    assert_eq!(chain.config().await.last_epoch, 2);
    chain.fund(&client::owner_token_account(&owner.pubkey()), DUST).await;
    chain.claim(&device_key.pubkey(), owner.pubkey(), leaf(1, earned), tree.proof(0).unwrap()).await.expect("claim");
    assert_eq!(chain.ovpp_balance(&owner.pubkey()).await, earned);

    // Governance and its vault, a lock, a proposal and a vote.
    chain.fund(&governance_address().0, DUST).await;
    chain.fund(&vault_address().0, NEAR_RENT).await;
    let ix = client::init_governance(authority.pubkey(), params(), Some(authority.pubkey()));
    chain.send(&[ix], &[&authority]).await.expect("init_governance at pre-funded addresses");
    assert_eq!(chain.config().await.authority, governance_address().0);
    chain.fund(&escrow_address(&owner.pubkey()).0, DUST).await;
    chain.send(&[client::lock(owner.pubkey(), earned, YEAR)], &[&owner]).await.expect("lock at a pre-funded address");
    let escrow: Escrow = chain.anchor_account(escrow_address(&owner.pubkey()).0).await;
    assert_eq!((escrow.owner, escrow.amount), (owner.pubkey(), earned));
    let governance: Governance = chain.anchor_account(governance_address().0).await;
    assert_eq!(governance.total_locked, earned);
    let lock_again = client::lock(owner.pubkey(), OVPP, YEAR);
    assert_ovpp_err(chain.send(&[lock_again], &[&owner]).await, OvppError::LockExists);

    let proposal = proposal_address(0).0;
    chain.fund(&proposal, PLENTY).await;
    let change = GovernanceChange::EmissionCap { emission_cap_per_epoch: 5 * OVPP };
    chain.send(&[client::propose(owner.pubkey(), 0, change, [7; 32])], &[&owner]).await.expect("propose at a pre-funded address");
    chain.fund(&vote_address(&proposal, &owner.pubkey()).0, NEAR_RENT).await;
    chain.send(&[client::vote(owner.pubkey(), 0, true)], &[&owner]).await.expect("vote at a pre-funded address");
    let proposal: Proposal = chain.anchor_account(proposal).await;
    assert_eq!((proposal.id, proposal.locked_voted), (0, earned));
    assert!(proposal.power_for > 0);
}
