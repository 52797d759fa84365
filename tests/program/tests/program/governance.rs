//! Governance by OVPP holders on the program-test chain, the clock warped: the whole
//! lifecycle of a proposal that changes the oracle set (the next epoch is then posted by
//! the new set only), and every attack the program must refuse.

use anchor_lang::solana_program::instruction::Instruction;
use ovpp::client;
use ovpp::errors::OvppError;
use ovpp::instructions::PostEpochArgs;
use ovpp::limits::{voting_power, MAX_LOCK_SECS};
use ovpp::protocol::{escrow_address, governance_address, proposal_address};
use ovpp::state::{Escrow, Governance, GovernanceChange, GovernanceParams, Proposal};
use ovpp_program_tests::{assert_failed_at, assert_ovpp_err, TestChain, EPOCH_LENGTH_SECS};
use solana_sdk::signature::{Keypair, Signer};

const DAY: i64 = 24 * 3600;
pub const YEAR: i64 = 365 * DAY;
pub const OVPP: u64 = 1_000_000;

pub fn params() -> GovernanceParams {
    GovernanceParams {
        voting_period_secs: 3 * DAY as u32,
        timelock_secs: 2 * DAY as u32,
        quorum_bps: 4_000,
        approval_bps: 5_000,
        min_proposal_power: 100 * OVPP,
    }
}

struct Gov {
    chain: TestChain,
    operator: Keypair,
}

impl Gov {
    /// A chain whose operator handed `Config` to governance, keeping the emergency pause.
    async fn new() -> Self {
        let mut chain = TestChain::initialized(3, 2).await;
        let operator = chain.authority.insecure_clone();
        let ix = client::init_governance(operator.pubkey(), params(), Some(operator.pubkey()));
        chain.send(&[ix], &[&operator]).await.expect("init_governance");
        Self { chain, operator }
    }

    /// A funded wallet holding `ovpp` OVPP, locked for `lock_secs` (unless 0).
    async fn holder(&mut self, ovpp: u64, lock_secs: i64) -> Keypair {
        let wallet = self.chain.new_owner().await;
        self.chain.give_ovpp(&wallet.pubkey(), ovpp * OVPP);
        if lock_secs > 0 {
            self.send(client::lock(wallet.pubkey(), ovpp * OVPP, lock_secs), &wallet).await.expect("lock");
        }
        wallet
    }

    async fn send(&mut self, ix: Instruction, signer: &Keypair) -> Result<(), solana_program_test::BanksClientError> {
        self.chain.send(&[ix], &[signer]).await
    }

    async fn governance(&mut self) -> Governance {
        self.chain.anchor_account(governance_address().0).await
    }

    async fn proposal(&mut self, id: u64) -> Proposal {
        self.chain.anchor_account(proposal_address(id).0).await
    }

    /// `proposer` proposes `change`; returns its id.
    async fn propose(&mut self, proposer: &Keypair, change: GovernanceChange) -> Result<u64, solana_program_test::BanksClientError> {
        let id = self.governance().await.proposal_count;
        self.send(client::propose(proposer.pubkey(), id, change, [7; 32]), proposer).await.map(|()| id)
    }
}

fn epoch_args(epoch: u64, cumulative_total: u64) -> PostEpochArgs {
    PostEpochArgs { epoch, root: [epoch as u8; 32], cumulative_total, leaf_count: 1, report_hash: [3; 32] }
}

async fn post_with(chain: &mut TestChain, args: PostEpochArgs, signers: &[&Keypair]) -> Result<(), solana_program_test::BanksClientError> {
    let signatures = TestChain::sign_epoch(&args, signers);
    let ixs = client::post_epoch(chain.payer().pubkey(), args, &signatures).expect("signatures");
    chain.send(&ixs, &[]).await
}

#[tokio::test]
async fn holders_replace_the_oracle_set_and_the_next_epoch_is_posted_by_the_new_set() {
    let mut gov = Gov::new().await;
    assert_eq!(gov.chain.config().await.authority, governance_address().0);
    // The operator's key no longer changes parameters.
    let operator = gov.operator.insecure_clone();
    assert_ovpp_err(gov.send(client::set_paused(operator.pubkey(), true), &operator).await, OvppError::NotAuthority);

    // Three holders lock for different lengths: power grows with the lock.
    let alice = gov.holder(1_000, MAX_LOCK_SECS).await;
    let bob = gov.holder(1_500, YEAR).await;
    let carol = gov.holder(400, 2 * YEAR).await;
    assert_eq!(gov.governance().await.total_locked, 2_900 * OVPP);
    let now = gov.chain.now().await;
    let escrow: Escrow = gov.chain.anchor_account(escrow_address(&bob.pubkey()).0).await;
    assert_eq!(voting_power(escrow.amount, escrow.lock_end, now), 1_500 * OVPP as u128 * 7 / 4, "one year of four: 1 + 3/4");
    assert_eq!(gov.chain.ovpp_balance(&alice.pubkey()).await, 0, "locked tokens are in the vault");

    // Epoch 1 by the current set.
    gov.chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    gov.chain.post_epoch(epoch_args(1, 100), 2).await.expect("epoch 1, old set");

    let new_set: Vec<Keypair> = (0..2).map(|_| Keypair::new()).collect();
    let change = GovernanceChange::OracleSet { oracles: new_set.iter().map(Signer::pubkey).collect(), threshold: 2 };
    let id = gov.propose(&alice, change).await.expect("propose");
    gov.send(client::vote(alice.pubkey(), id, true), &alice).await.expect("alice for");
    gov.send(client::vote(bob.pubkey(), id, false), &bob).await.expect("bob against");
    gov.send(client::vote(carol.pubkey(), id, true), &carol).await.expect("carol for");
    let p = gov.proposal(id).await;
    assert_eq!(p.locked_voted, 2_900 * OVPP);
    assert!(p.power_for > p.power_against, "4000 + 700 (about) for, 2625 against: {} vs {}", p.power_for, p.power_against);

    // Not before the vote ends, nor before the timelock.
    let anyone = gov.chain.new_owner().await;
    assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), id, None), &anyone).await, OvppError::VotingNotEnded);
    gov.chain.advance_time(3 * DAY).await;
    assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), id, None), &anyone).await, OvppError::TimelockNotElapsed);
    gov.chain.advance_time(2 * DAY).await;
    gov.send(client::execute(anyone.pubkey(), id, None), &anyone).await.expect("anyone executes a passed proposal");
    assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), id, None), &anyone).await, OvppError::ProposalAlreadyExecuted);
    let config = gov.chain.config().await;
    assert_eq!(config.oracles, new_set.iter().map(Signer::pubkey).collect::<Vec<_>>());
    assert_eq!(config.threshold, 2);

    // The next epoch: the old set is refused, the new set posts it.
    let old: Vec<Keypair> = gov.chain.oracles.iter().map(Keypair::insecure_clone).collect();
    assert_ovpp_err(post_with(&mut gov.chain, epoch_args(2, 200), &[&old[0], &old[1]]).await, OvppError::UnknownOracleSigner);
    post_with(&mut gov.chain, epoch_args(2, 200), &[&new_set[0], &new_set[1]]).await.expect("epoch 2, new set");
    assert_eq!(gov.chain.config().await.last_epoch, 2);
}

#[tokio::test]
async fn the_same_tokens_never_vote_twice_and_locked_tokens_stay_locked_during_a_vote() {
    let mut gov = Gov::new().await;
    let alice = gov.holder(1_000, 30 * DAY).await;
    let id = gov.propose(&alice, GovernanceChange::EmissionCap { emission_cap_per_epoch: 5 * OVPP }).await.unwrap();
    gov.send(client::vote(alice.pubkey(), id, true), &alice).await.expect("first vote");
    // Again, for or against: her vote record exists.
    assert_ovpp_err(gov.send(client::vote(alice.pubkey(), id, false), &alice).await, OvppError::AlreadyVoted);
    // Someone pre-funding Bob's vote address cannot stop him from voting.
    let bob = gov.holder(200, 30 * DAY).await;
    let proposal = proposal_address(id).0;
    let bob_vote = ovpp::protocol::vote_address(&proposal, &bob.pubkey()).0;
    gov.chain.fund(&bob_vote, 1_000_000).await;
    gov.send(client::vote(bob.pubkey(), id, false), &bob).await.expect("vote at a pre-funded address");
    assert_ovpp_err(gov.send(client::vote(bob.pubkey(), id, true), &bob).await, OvppError::AlreadyVoted);
    // Her tokens cannot leave to vote from another wallet: the lock outlasts the vote.
    assert_ovpp_err(gov.send(client::withdraw(alice.pubkey()), &alice).await, OvppError::LockNotEnded);
    // Adding more to the escrow does not add to her cast vote.
    gov.chain.give_ovpp(&alice.pubkey(), 500 * OVPP);
    gov.send(client::add_to_lock(alice.pubkey(), 500 * OVPP, None), &alice).await.expect("add");
    assert_eq!(gov.proposal(id).await.locked_voted, 1_200 * OVPP, "her 1,000 and Bob's 200");
    // A lock that ends before the vote does cannot vote (its tokens could leave and vote again).
    let short = gov.holder(500, 8 * DAY).await;
    gov.chain.advance_time(6 * DAY).await;
    let id2 = gov.propose(&alice, GovernanceChange::EmissionCap { emission_cap_per_epoch: 6 * OVPP }).await.unwrap();
    assert_ovpp_err(gov.send(client::vote(short.pubkey(), id2, true), &short).await, OvppError::LockEndsBeforeVote);
    // After the vote, once the lock ends, the tokens come back.
    gov.chain.advance_time(30 * DAY).await;
    assert_ovpp_err(gov.send(client::vote(alice.pubkey(), id2, true), &alice).await, OvppError::VotingClosed);
    gov.send(client::withdraw(alice.pubkey()), &alice).await.expect("withdraw after the lock");
    assert_eq!(gov.chain.ovpp_balance(&alice.pubkey()).await, 1_500 * OVPP);
    // Only now can her tokens move to another wallet, and by now their vote is over.
    let dave = gov.chain.new_owner().await;
    gov.chain.give_ovpp(&dave.pubkey(), 0);
    let transfer = anchor_spl::token_2022::spl_token_2022::instruction::transfer_checked(
        &anchor_spl::token_2022::ID,
        &client::owner_token_account(&alice.pubkey()),
        &ovpp::protocol::mint_address().0,
        &client::owner_token_account(&dave.pubkey()),
        &alice.pubkey(),
        &[],
        1_500 * OVPP,
        6,
    )
    .unwrap();
    gov.send(transfer, &alice).await.expect("transfer to another wallet");
    gov.send(client::lock(dave.pubkey(), 1_500 * OVPP, 30 * DAY), &dave).await.expect("dave locks them");
    assert_ovpp_err(gov.send(client::vote(dave.pubkey(), id, true), &dave).await, OvppError::VotingClosed);
    assert_eq!(gov.governance().await.total_locked, 2_200 * OVPP, "Bob's 200, the short lock's 500, Dave's 1,500");
    assert!(gov.chain.account(escrow_address(&alice.pubkey()).0).await.is_none(), "escrow closed");
}

#[tokio::test]
async fn proposals_that_fail_cannot_be_executed() {
    let mut gov = Gov::new().await;
    let alice = gov.holder(1_000, YEAR).await;
    let bob = gov.holder(3_000, YEAR).await;
    let small = gov.holder(10, YEAR).await;
    let anyone = gov.chain.new_owner().await;
    // Too little power to propose; out-of-bounds changes refused when proposed.
    assert_ovpp_err(gov.propose(&small, GovernanceChange::Paused { paused: true }).await.map(|_| ()), OvppError::InsufficientProposalPower);
    assert_ovpp_err(
        gov.propose(&alice, GovernanceChange::EmissionCap { emission_cap_per_epoch: 0 }).await.map(|_| ()),
        OvppError::InvalidEmissionCap,
    );
    let bad_set = GovernanceChange::OracleSet { oracles: vec![Keypair::new().pubkey()], threshold: 2 };
    assert_ovpp_err(gov.propose(&alice, bad_set).await.map(|_| ()), OvppError::InvalidThreshold);
    assert_ovpp_err(
        gov.propose(&alice, GovernanceChange::EpochLength { epoch_length_secs: 1 }).await.map(|_| ()),
        OvppError::InvalidEpochLength,
    );
    let bad_params = GovernanceChange::Params { params: GovernanceParams { approval_bps: 4_000, ..params() } };
    assert_ovpp_err(gov.propose(&alice, bad_params).await.map(|_| ()), OvppError::InvalidGovernanceParams);

    // No quorum: only 1,000 of 4,010 locked OVPP vote (40 % needed).
    let lonely = gov.propose(&alice, GovernanceChange::Paused { paused: true }).await.unwrap();
    gov.send(client::vote(alice.pubkey(), lonely, true), &alice).await.unwrap();
    // Rejected: Bob's larger power votes against.
    let rejected = gov.propose(&alice, GovernanceChange::EmissionCap { emission_cap_per_epoch: 7 * OVPP }).await.unwrap();
    gov.send(client::vote(alice.pubkey(), rejected, true), &alice).await.unwrap();
    gov.send(client::vote(bob.pubkey(), rejected, false), &bob).await.unwrap();
    // Passed, but executed too late.
    let late = gov.propose(&alice, GovernanceChange::EmissionCap { emission_cap_per_epoch: 8 * OVPP }).await.unwrap();
    gov.send(client::vote(bob.pubkey(), late, true), &bob).await.unwrap();
    gov.chain.advance_time(5 * DAY).await;
    assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), lonely, None), &anyone).await, OvppError::QuorumNotReached);
    assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), rejected, None), &anyone).await, OvppError::ProposalRejected);
    gov.chain.advance_time(15 * DAY).await;
    assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), late, None), &anyone).await, OvppError::ProposalExpired);
    assert!(!gov.chain.config().await.paused);
}

#[tokio::test]
async fn the_operator_keeps_an_emergency_pause_that_governance_can_revoke() {
    let mut gov = Gov::new().await;
    let operator = gov.operator.insecure_clone();
    let alice = gov.holder(1_000, YEAR).await;
    let stranger = gov.chain.new_owner().await;
    assert_ovpp_err(gov.send(client::emergency_pause(stranger.pubkey()), &stranger).await, OvppError::NotEmergencyPauser);
    gov.send(client::emergency_pause(operator.pubkey()), &operator).await.expect("emergency pause");
    assert!(gov.chain.config().await.paused);
    // Only governance unpauses, and it revokes the operator's pause in the same way.
    for change in [GovernanceChange::Paused { paused: false }, GovernanceChange::EmergencyPauser { pauser: None }] {
        let id = gov.propose(&alice, change).await.unwrap();
        gov.send(client::vote(alice.pubkey(), id, true), &alice).await.unwrap();
        gov.chain.advance_time(5 * DAY).await;
        gov.send(client::execute(stranger.pubkey(), id, None), &stranger).await.expect("execute");
    }
    assert!(!gov.chain.config().await.paused);
    assert_eq!(gov.governance().await.emergency_pauser, None);
    assert_ovpp_err(gov.send(client::emergency_pause(operator.pubkey()), &operator).await, OvppError::NotEmergencyPauser);
    // Governance hands authority on with the two-step transfer: the new key must accept.
    let successor = gov.chain.new_owner().await;
    let id = gov.propose(&alice, GovernanceChange::Authority { new_authority: successor.pubkey() }).await.unwrap();
    gov.send(client::vote(alice.pubkey(), id, true), &alice).await.unwrap();
    gov.chain.advance_time(5 * DAY).await;
    gov.send(client::execute(stranger.pubkey(), id, None), &stranger).await.unwrap();
    gov.send(client::accept_authority(successor.pubkey()), &successor).await.expect("accept");
    assert_eq!(gov.chain.config().await.authority, successor.pubkey());
}

#[tokio::test]
async fn locks_are_bounded_and_only_the_authority_starts_governance() {
    let mut chain = TestChain::initialized(1, 1).await;
    let outsider = chain.new_owner().await;
    let ix = client::init_governance(outsider.pubkey(), params(), None);
    assert_ovpp_err(chain.send(&[ix], &[&outsider]).await, OvppError::NotAuthority);
    let authority = chain.authority.insecure_clone();
    let bad = client::init_governance(authority.pubkey(), GovernanceParams { quorum_bps: 0, ..params() }, None);
    assert_ovpp_err(chain.send(&[bad], &[&authority]).await, OvppError::InvalidGovernanceParams);
    chain.send(&[client::init_governance(authority.pubkey(), params(), None)], &[&authority]).await.expect("init");
    let holder = chain.new_owner().await;
    chain.give_ovpp(&holder.pubkey(), 100 * OVPP);
    for (amount, secs, error) in [
        (0, YEAR, OvppError::ZeroAmount),
        (OVPP, DAY, OvppError::InvalidLockDuration),
        (OVPP, MAX_LOCK_SECS + 1, OvppError::InvalidLockDuration),
    ] {
        assert_ovpp_err(chain.send(&[client::lock(holder.pubkey(), amount, secs)], &[&holder]).await, error);
    }
    // More than the wallet holds: the token program refuses the transfer.
    assert_failed_at(chain.send(&[client::lock(holder.pubkey(), 101 * OVPP, YEAR)], &[&holder]).await, 1);
    chain.send(&[client::lock(holder.pubkey(), 100 * OVPP, YEAR)], &[&holder]).await.expect("lock");
    // Someone else cannot withdraw it.
    let thief = chain.new_owner().await;
    chain.give_ovpp(&thief.pubkey(), 0);
    let mut steal = client::withdraw(thief.pubkey());
    let thiefs_escrow = escrow_address(&thief.pubkey()).0;
    steal.accounts.iter_mut().filter(|m| m.pubkey == thiefs_escrow).for_each(|m| m.pubkey = escrow_address(&holder.pubkey()).0);
    ovpp_program_tests::assert_anchor_err(chain.send(&[steal], &[&thief]).await, anchor_lang::error::ErrorCode::ConstraintSeeds);
}

#[tokio::test]
async fn governance_suspends_and_reinstates_a_device() {
    let mut gov = Gov::new().await;
    let alice = gov.holder(1_000, YEAR).await;
    let owner = gov.chain.new_owner().await;
    let device = gov.chain.register(&owner, ovpp::state::DeviceKind::HomeBattery, ovpp_program_tests::home_battery()).await.pubkey();
    let other = gov.chain.register(&owner, ovpp::state::DeviceKind::HomeBattery, ovpp_program_tests::home_battery()).await.pubkey();
    // The operator's key no longer suspends devices.
    let operator = gov.operator.insecure_clone();
    assert_ovpp_err(gov.send(client::suspend_device(operator.pubkey(), &device, 7), &operator).await, OvppError::NotAuthority);
    for suspend in [true, false] {
        let id = gov.propose(&alice, GovernanceChange::DeviceStatus { device_key: device, suspend, reason: 7 }).await.unwrap();
        gov.send(client::vote(alice.pubkey(), id, true), &alice).await.unwrap();
        gov.chain.advance_time(5 * DAY).await;
        let anyone = gov.chain.new_owner().await;
        assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), id, None), &anyone).await, OvppError::MissingDeviceAccount);
        assert_ovpp_err(gov.send(client::execute(anyone.pubkey(), id, Some(&other)), &anyone).await, OvppError::MissingDeviceAccount);
        gov.send(client::execute(anyone.pubkey(), id, Some(&device)), &anyone).await.expect("execute with the device");
        let expected = if suspend { ovpp::state::DeviceStatus::Suspended } else { ovpp::state::DeviceStatus::Active };
        assert_eq!(gov.chain.device(&device).await.status, expected);
    }
    assert_eq!(gov.chain.device(&other).await.status, ovpp::state::DeviceStatus::Active);
}
