use ovpp::client;
use ovpp::ed25519::{build_instruction_data, SignatureOffsets, HEADER_LEN, OFFSETS_LEN};
use ovpp::errors::OvppError;
use ovpp::instructions::PostEpochArgs;
use ovpp::protocol::{config_address, epoch_message};
use ovpp_program_tests::*;
use solana_program_test::BanksClientError;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

fn args(epoch: u64, cumulative_total: u64) -> PostEpochArgs {
    PostEpochArgs { epoch, root: [epoch as u8 + 1; 32], cumulative_total, leaf_count: 2, report_hash: [9; 32] }
}

fn ed25519_ix(data: Vec<u8>) -> Instruction {
    Instruction { program_id: solana_sdk_ids::ed25519_program::ID, accounts: vec![], data }
}

fn sign(message: &[u8], signers: &[&Keypair]) -> Vec<([u8; 32], [u8; 64])> {
    signers.iter().map(|k| (k.pubkey().to_bytes(), <[u8; 64]>::from(k.sign_message(message)))).collect()
}

/// `post_epoch(args)` preceded by exactly the given Ed25519 instructions (the harness puts a
/// compute-budget instruction at index 0, so the first of these is at index 1).
async fn post_with(chain: &mut TestChain, args: PostEpochArgs, ed25519: Vec<Instruction>) -> Result<(), BanksClientError> {
    let post = client::post_epoch(chain.payer().pubkey(), args, &[([1; 32], [1; 64])]).unwrap().pop().unwrap();
    let mut ixs = ed25519;
    ixs.push(post);
    chain.send(&ixs, &[]).await
}

async fn chain_at_epoch_end(oracles: usize, threshold: u8) -> TestChain {
    let mut chain = TestChain::initialized(oracles, threshold).await;
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    chain
}

#[tokio::test]
async fn epochs_are_sequential_timed_and_never_rewritten() {
    let mut chain = TestChain::initialized(3, 2).await;
    assert_ovpp_err(chain.post_epoch(args(1, 100), 2).await, OvppError::EpochNotEnded);
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    assert_ovpp_err(chain.post_epoch(args(2, 100), 2).await, OvppError::EpochNotSequential);
    assert_ovpp_err(chain.post_epoch(args(0, 100), 2).await, OvppError::EpochNotSequential);
    chain.post_epoch(args(1, 100), 2).await.expect("epoch 1");
    // Replaying or rewriting epoch 1: its account exists already.
    let replay = chain.post_epoch(PostEpochArgs { root: [7; 32], ..args(1, 100) }, 2).await;
    assert_ovpp_err(replay, OvppError::EpochNotSequential);
    assert_eq!(chain.config().await.recent_roots[1].root, args(1, 100).root);
    // Epoch 2 has not ended yet.
    assert_ovpp_err(chain.post_epoch(args(2, 100), 2).await, OvppError::EpochNotEnded);
}

#[tokio::test]
async fn an_oracle_back_from_downtime_catches_up_but_not_ahead() {
    let mut chain = TestChain::initialized(1, 1).await;
    chain.advance_time(3 * i64::from(EPOCH_LENGTH_SECS)).await;
    for epoch in 1..=3 {
        chain.post_epoch(args(epoch, 100 * epoch), 1).await.expect("ended epoch");
    }
    assert_ovpp_err(chain.post_epoch(args(4, 400), 1).await, OvppError::EpochNotEnded);
}

#[tokio::test]
async fn cumulative_total_never_decreases_and_rises_at_most_by_the_cap() {
    let mut chain = chain_at_epoch_end(1, 1).await;
    assert_ovpp_err(chain.post_epoch(args(1, EMISSION_CAP + 1), 1).await, OvppError::EmissionCapExceeded);
    chain.post_epoch(args(1, EMISSION_CAP), 1).await.expect("exactly the cap");
    chain.advance_time(i64::from(EPOCH_LENGTH_SECS)).await;
    assert_ovpp_err(chain.post_epoch(args(2, EMISSION_CAP - 1), 1).await, OvppError::CumulativeTotalDecreased);
    assert_ovpp_err(chain.post_epoch(args(2, 2 * EMISSION_CAP + 1), 1).await, OvppError::EmissionCapExceeded);
    assert_ovpp_err(chain.post_epoch(PostEpochArgs { leaf_count: 0, ..args(2, EMISSION_CAP) }, 1).await, OvppError::EmptyEpoch);
    chain.post_epoch(args(2, EMISSION_CAP), 1).await.expect("no new emission is fine");
}

#[tokio::test]
async fn at_least_m_distinct_oracle_set_signatures() {
    let mut chain = chain_at_epoch_end(5, 3).await;
    let a = args(1, 100);
    let message = client::epoch_message_for(&a);
    let o = chain.oracles.iter().map(Keypair::insecure_clone).collect::<Vec<_>>();

    assert_ovpp_err(chain.post_epoch(a, 2).await, OvppError::InsufficientOracleSignatures);

    // The same oracle three times does not make three.
    let dup = sign(&message, &[&o[0], &o[1], &o[0]]);
    let ix = ed25519_ix(build_instruction_data(&dup, &message).unwrap());
    assert_ovpp_err(post_with(&mut chain, a, vec![ix]).await, OvppError::DuplicateOracleSignature);
    // ... nor across two instructions.
    let first = ed25519_ix(build_instruction_data(&sign(&message, &[&o[0], &o[1]]), &message).unwrap());
    let second = ed25519_ix(build_instruction_data(&sign(&message, &[&o[1]]), &message).unwrap());
    assert_ovpp_err(post_with(&mut chain, a, vec![first, second]).await, OvppError::DuplicateOracleSignature);

    // A valid signature by a key outside the set.
    let outsider = Keypair::new();
    let sigs = sign(&message, &[&o[0], &o[1], &outsider]);
    let ix = ed25519_ix(build_instruction_data(&sigs, &message).unwrap());
    assert_ovpp_err(post_with(&mut chain, a, vec![ix]).await, OvppError::UnknownOracleSigner);

    // No Ed25519 instruction at all.
    assert_ovpp_err(post_with(&mut chain, a, vec![]).await, OvppError::InsufficientOracleSignatures);

    // Three of five, split over two instructions, is accepted.
    let first = ed25519_ix(build_instruction_data(&sign(&message, &[&o[2], &o[4]]), &message).unwrap());
    let second = ed25519_ix(build_instruction_data(&sign(&message, &[&o[3]]), &message).unwrap());
    post_with(&mut chain, a, vec![first, second]).await.expect("3 of 5");
    assert_eq!(chain.config().await.last_epoch, 1);
}

#[tokio::test]
async fn signatures_over_another_program_config_or_epoch_are_refused() {
    let mut chain = chain_at_epoch_end(2, 2).await;
    let a = args(1, 100);
    let o = chain.oracles.iter().map(Keypair::insecure_clone).collect::<Vec<_>>();
    let config = config_address().0;
    let other = Pubkey::new_unique();
    let variants = [
        epoch_message(&other, &config, 1, &a.root, 100, 2, &a.report_hash),
        epoch_message(&ovpp::ID, &other, 1, &a.root, 100, 2, &a.report_hash),
        epoch_message(&ovpp::ID, &config, 2, &a.root, 100, 2, &a.report_hash),
        epoch_message(&ovpp::ID, &config, 1, &[0; 32], 100, 2, &a.report_hash),
        epoch_message(&ovpp::ID, &config, 1, &a.root, 101, 2, &a.report_hash),
        epoch_message(&ovpp::ID, &config, 1, &a.root, 100, 3, &a.report_hash),
        epoch_message(&ovpp::ID, &config, 1, &a.root, 100, 2, &[0; 32]),
    ];
    for message in variants {
        let ix = ed25519_ix(build_instruction_data(&sign(&message, &[&o[0], &o[1]]), &message).unwrap());
        assert_ovpp_err(post_with(&mut chain, a, vec![ix]).await, OvppError::EpochMessageMismatch);
    }
}

#[tokio::test]
async fn tampered_ed25519_offsets_and_indexes_are_refused() {
    let mut chain = chain_at_epoch_end(2, 1).await;
    let a = args(1, 100);
    let message = client::epoch_message_for(&a);
    let o = chain.oracles.iter().map(Keypair::insecure_clone).collect::<Vec<_>>();
    let valid = build_instruction_data(&sign(&message, &[&o[0]]), &message).unwrap();

    // A second Ed25519 instruction whose offsets point into the first one (index 1): the
    // precompile verifies it, but what it verified is not this instruction's own bytes.
    for field in 0..3 {
        let mut data = build_instruction_data(&sign(&message, &[&o[1]]), &message).unwrap();
        let mut offsets = SignatureOffsets::read(&data, 0).unwrap();
        let valid_offsets = SignatureOffsets::read(&valid, 0).unwrap();
        match field {
            0 => {
                offsets.signature_instruction_index = 1;
                offsets.signature_offset = valid_offsets.signature_offset;
                offsets.public_key_instruction_index = 1;
                offsets.public_key_offset = valid_offsets.public_key_offset;
            }
            1 => {
                offsets.public_key_instruction_index = 1;
                offsets.public_key_offset = valid_offsets.public_key_offset;
                offsets.signature_instruction_index = 1;
                offsets.signature_offset = valid_offsets.signature_offset;
                offsets.message_instruction_index = 1;
                offsets.message_data_offset = valid_offsets.message_data_offset;
            }
            _ => {
                offsets.message_instruction_index = 1;
                offsets.message_data_offset = valid_offsets.message_data_offset;
            }
        }
        let mut encoded = Vec::new();
        offsets.write(&mut encoded);
        data[HEADER_LEN..HEADER_LEN + OFFSETS_LEN].copy_from_slice(&encoded);
        let result = post_with(&mut chain, a, vec![ed25519_ix(valid.clone()), ed25519_ix(data)]).await;
        assert_ovpp_err(result, OvppError::Ed25519IndexMismatch);
    }

    // An oracle signature over a prefix of the message, with the size shortened to match.
    let prefix = &message[..message.len() - 32];
    let mut data = build_instruction_data(&sign(prefix, &[&o[0]]), &message).unwrap();
    let mut offsets = SignatureOffsets::read(&data, 0).unwrap();
    offsets.message_data_size = prefix.len() as u16;
    let mut encoded = Vec::new();
    offsets.write(&mut encoded);
    data[HEADER_LEN..HEADER_LEN + OFFSETS_LEN].copy_from_slice(&encoded);
    assert_ovpp_err(post_with(&mut chain, a, vec![ed25519_ix(data)]).await, OvppError::EpochMessageMismatch);

    // An Ed25519 instruction declaring zero signatures (the precompile lets it through).
    let result = post_with(&mut chain, a, vec![ed25519_ix(valid.clone()), ed25519_ix(vec![0, 0])]).await;
    assert_ovpp_err(result, OvppError::MalformedEd25519Instruction);

    // A forged signature never reaches the program: the precompile fails the transaction.
    let mut forged = valid.clone();
    let sig_at = usize::from(SignatureOffsets::read(&valid, 0).unwrap().signature_offset);
    forged[sig_at] ^= 1;
    assert!(post_with(&mut chain, a, vec![ed25519_ix(forged)]).await.is_err());
    assert_eq!(chain.config().await.last_epoch, 0);

    post_with(&mut chain, a, vec![ed25519_ix(valid)]).await.expect("the untampered instruction");
}

#[tokio::test]
async fn a_fake_instructions_sysvar_is_refused() {
    let mut chain = chain_at_epoch_end(1, 1).await;
    let a = args(1, 100);
    let fake = Pubkey::new_unique();
    // Looks like an instructions sysvar holding a valid-looking Ed25519 instruction that no
    // precompile ever checked.
    let message = client::epoch_message_for(&a);
    let unchecked = build_instruction_data(&[(chain.oracles[0].pubkey().to_bytes(), [0; 64])], &message).unwrap();
    let account = solana_sdk::account::Account {
        lamports: 1_000_000_000,
        data: unchecked,
        owner: solana_sdk_ids::sysvar::ID,
        executable: false,
        rent_epoch: 0,
    };
    chain.set_account(&fake, account);
    let signatures = TestChain::sign_epoch(&a, &[&chain.oracles[0].insecure_clone()]);
    let mut ixs = client::post_epoch(chain.payer().pubkey(), a, &signatures).unwrap();
    let post = ixs.pop().unwrap();
    let post = replace_account(post, 3, fake);
    assert_ovpp_err(chain.send(&[post], &[]).await, OvppError::InvalidInstructionsSysvar);
}
