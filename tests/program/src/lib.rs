//! Test support: the `ovpp` program running natively inside a `solana-program-test` bank,
// solana-program-test 3.x marks its API "unstable" (deprecated) ahead of v4; it is the
// harness we are told to use, so the warnings carry no information here.
#![allow(deprecated)]
//! next to the real SPL Token-2022 and Associated Token Account programs (BPF).

use anchor_lang::{AccountDeserialize, Discriminator};
use ovpp::client;
use ovpp::errors::OvppError;
use ovpp::instructions::{DeviceParams, InitializeArgs, PostEpochArgs};
use ovpp::protocol::{config_address, device_address, RewardLeaf};
use ovpp::state::{Config, Device, DeviceKind};
use solana_program_test::{BanksClientError, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

pub use ovpp;

/// The Anchor custom error code of an `OvppError`.
pub fn code(err: OvppError) -> u32 {
    anchor_lang::error::ERROR_CODE_OFFSET + err as u32
}

/// The custom error code a failed transaction ended with, if any.
pub fn custom_code(result: &Result<(), BanksClientError>) -> Option<u32> {
    match result {
        Err(BanksClientError::TransactionError(TransactionError::InstructionError(_, InstructionError::Custom(c))))
        | Err(BanksClientError::SimulationError { err: TransactionError::InstructionError(_, InstructionError::Custom(c)), .. }) => {
            Some(*c)
        }
        _ => None,
    }
}

/// Asserts the transaction failed with exactly this program error.
#[track_caller]
pub fn assert_ovpp_err(result: Result<(), BanksClientError>, expected: OvppError) {
    let name = format!("{expected:?}");
    assert_eq!(custom_code(&result), Some(code(expected)), "expected {name}, got {result:?}");
}

/// Asserts the transaction failed inside instruction `index` (of the transaction as sent,
/// i.e. counting the harness's compute-budget instruction at 0). Used where another program,
/// not this one, refuses: e.g. the token program a transfer of more than the wallet holds.
#[track_caller]
pub fn assert_failed_at(result: Result<(), BanksClientError>, index: u8) {
    match &result {
        Err(BanksClientError::TransactionError(TransactionError::InstructionError(i, _))) if *i == index => {}
        _ => panic!("expected a failure in instruction {index}, got {result:?}"),
    }
}

/// Asserts the transaction failed with this Anchor framework error (constraint checks).
#[track_caller]
pub fn assert_anchor_err(result: Result<(), BanksClientError>, expected: anchor_lang::error::ErrorCode) {
    let name = format!("{expected:?}");
    assert_eq!(custom_code(&result), Some(expected as u32), "expected {name}, got {result:?}");
}

pub const EPOCH_LENGTH_SECS: u32 = 3_600;
pub const EMISSION_CAP: u64 = 1_000_000_000_000; // 1 million OVPP

pub struct TestChain {
    pub ctx: ProgramTestContext,
    pub authority: Keypair,
    pub oracles: Vec<Keypair>,
    nonce: u32,
}

impl TestChain {
    /// A bank with the program deployed (upgrade authority = `authority`), not yet initialized.
    pub async fn new(oracle_count: usize) -> Self {
        Self::new_with_authority(oracle_count, Keypair::new()).await
    }

    /// `new` with a given upgrade authority (funded here).
    pub async fn new_with_authority(oracle_count: usize, authority: Keypair) -> Self {
        let ctx = ovpp_chain::bank::start(&authority.pubkey(), vec![]).await;
        let mut chain = Self { ctx, authority, oracles: (0..oracle_count).map(|_| Keypair::new()).collect(), nonce: 0 };
        let authority = chain.authority.pubkey();
        chain.fund(&authority, 10_000_000_000).await;
        chain
    }

    /// `new` plus `initialize` with the given threshold.
    pub async fn initialized(oracle_count: usize, threshold: u8) -> Self {
        let mut chain = Self::new(oracle_count).await;
        let args = chain.default_init_args(threshold);
        let ix = client::initialize(chain.authority.pubkey(), args);
        let authority = chain.authority.insecure_clone();
        chain.send(&[ix], &[&authority]).await.expect("initialize");
        chain
    }

    /// `initialized`, with the epoch schedule starting `secs_ago` seconds before the wall
    /// clock, the bank's clock then set to the wall clock: epochs 1, 2, ... are past, so
    /// tests can send their telemetry (ingest refuses readings from the future).
    pub async fn initialized_since(oracle_count: usize, threshold: u8, secs_ago: i64) -> Self {
        let mut chain = Self::new(oracle_count).await;
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        let now = chain.now().await;
        chain.advance_time(wall - secs_ago - now).await;
        let args = chain.default_init_args(threshold);
        let ix = client::initialize(chain.authority.pubkey(), args);
        let authority = chain.authority.insecure_clone();
        chain.send(&[ix], &[&authority]).await.expect("initialize");
        chain.advance_time(secs_ago).await;
        chain
    }

    pub fn default_init_args(&self, threshold: u8) -> InitializeArgs {
        InitializeArgs {
            oracles: self.oracles.iter().map(Signer::pubkey).collect(),
            threshold,
            epoch_length_secs: EPOCH_LENGTH_SECS,
            emission_cap_per_epoch: EMISSION_CAP,
            metadata_uri: "https://openvpp.org/token.json".into(),
        }
    }

    pub fn payer(&self) -> Keypair {
        self.ctx.payer.insecure_clone()
    }

    /// Sends `ixs` signed by the test payer (fee payer) and `signers`. Each transaction
    /// gets a distinct compute-limit instruction first so identical retries are new
    /// transactions (the bank would otherwise reject them as already processed).
    pub async fn send(&mut self, ixs: &[Instruction], signers: &[&Keypair]) -> Result<(), BanksClientError> {
        self.nonce += 1;
        let mut all = vec![solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(1_400_000 - self.nonce)];
        all.extend_from_slice(ixs);
        let payer = self.payer();
        let mut keys: Vec<&Keypair> = vec![&payer];
        keys.extend_from_slice(signers);
        let blockhash = self.ctx.banks_client.get_latest_blockhash().await?;
        let tx = Transaction::new_signed_with_payer(&all, Some(&payer.pubkey()), &keys, blockhash);
        self.ctx.banks_client.process_transaction(tx).await
    }

    pub async fn fund(&mut self, to: &Pubkey, lamports: u64) {
        let payer = self.payer();
        let ix = anchor_lang::solana_program::system_instruction::transfer(&payer.pubkey(), to, lamports);
        self.send(&[ix], &[]).await.expect("fund");
    }

    pub async fn account(&mut self, address: Pubkey) -> Option<Account> {
        self.ctx.banks_client.get_account(address).await.expect("banks client")
    }

    pub async fn anchor_account<T: AccountDeserialize + Discriminator>(&mut self, address: Pubkey) -> T {
        let account = self.account(address).await.unwrap_or_else(|| panic!("account {address} missing"));
        T::try_deserialize(&mut account.data.as_slice()).expect("deserialize")
    }

    pub async fn config(&mut self) -> Config {
        self.anchor_account(config_address().0).await
    }

    pub async fn device(&mut self, device_key: &Pubkey) -> Device {
        self.anchor_account(device_address(device_key).0).await
    }

    /// Writes an arbitrary account into the bank (forged state for attack tests).
    pub fn set_account(&mut self, address: &Pubkey, account: Account) {
        self.ctx.set_account(address, &account.into());
    }

    pub async fn now(&mut self) -> i64 {
        self.ctx.banks_client.get_sysvar::<Clock>().await.expect("clock").unix_timestamp
    }

    /// Moves the bank's clock forward by `secs`.
    pub async fn advance_time(&mut self, secs: i64) {
        let mut clock: Clock = self.ctx.banks_client.get_sysvar().await.expect("clock");
        clock.unix_timestamp += secs;
        self.ctx.set_sysvar(&clock);
    }

    /// Registers a device owned by `owner` (funded here) and returns the device key.
    pub async fn register(&mut self, owner: &Keypair, kind: DeviceKind, params: DeviceParams) -> Keypair {
        let device_key = Keypair::new();
        let ix = client::register_device(owner.pubkey(), device_key.pubkey(), kind, params);
        self.send(&[ix], &[owner, &device_key]).await.expect("register_device");
        device_key
    }

    pub async fn new_owner(&mut self) -> Keypair {
        let owner = Keypair::new();
        self.fund(&owner.pubkey(), 1_000_000_000).await;
        owner
    }

    /// Signatures of `signers` over the epoch message of `args`.
    pub fn sign_epoch(args: &PostEpochArgs, signers: &[&Keypair]) -> Vec<([u8; 32], [u8; 64])> {
        let message = client::epoch_message_for(args);
        signers.iter().map(|k| (k.pubkey().to_bytes(), <[u8; 64]>::from(k.sign_message(&message)))).collect()
    }

    /// Posts `args` signed by the first `threshold` oracles, after moving time to its end.
    pub async fn post_epoch(&mut self, args: PostEpochArgs, signer_count: usize) -> Result<(), BanksClientError> {
        let signers: Vec<&Keypair> = self.oracles.iter().take(signer_count).collect();
        let signatures = Self::sign_epoch(&args, &signers);
        let ixs = client::post_epoch(self.payer().pubkey(), args, &signatures).expect("signatures");
        self.send(&ixs, &[]).await
    }

    pub async fn claim(
        &mut self,
        device_key: &Pubkey,
        owner: Pubkey,
        leaf: RewardLeaf,
        proof: Vec<[u8; 32]>,
    ) -> Result<(), BanksClientError> {
        let ix = client::claim(self.payer().pubkey(), device_key, owner, leaf, proof);
        self.send(&[ix], &[]).await
    }

    /// Puts `amount` OVPP in `owner`'s associated token account by writing the account
    /// (governance tests need holders; minting through epochs and claims is tested
    /// elsewhere). The mint's supply is not adjusted: transfers do not look at it.
    pub fn give_ovpp(&mut self, owner: &Pubkey, amount: u64) {
        use anchor_lang::solana_program::program_pack::Pack;
        use anchor_spl::token_2022::spl_token_2022::state::{Account as TokenAccount, AccountState};
        let state = TokenAccount {
            mint: ovpp::protocol::mint_address().0,
            owner: *owner,
            amount,
            state: AccountState::Initialized,
            ..TokenAccount::default()
        };
        let mut data = vec![0u8; TokenAccount::LEN];
        TokenAccount::pack(state, &mut data).expect("pack token account");
        let account = Account { lamports: 10_000_000, data, owner: anchor_spl::token_2022::ID, executable: false, rent_epoch: 0 };
        self.set_account(&client::owner_token_account(owner), account);
    }

    /// OVPP balance (base units) of `owner`'s associated token account, 0 if it does not exist.
    pub async fn ovpp_balance(&mut self, owner: &Pubkey) -> u64 {
        use anchor_spl::token_2022::spl_token_2022::extension::StateWithExtensions;
        use anchor_spl::token_2022::spl_token_2022::state::Account as TokenAccount;
        match self.account(client::owner_token_account(owner)).await {
            None => 0,
            Some(account) => StateWithExtensions::<TokenAccount>::unpack(&account.data).expect("token account").base.amount,
        }
    }
}

/// The same instruction with `key` no longer marked as a signer: how an attacker would
/// send it without that key's signature.
pub fn without_signer(mut ix: Instruction, key: &Pubkey) -> Instruction {
    for meta in ix.accounts.iter_mut().filter(|m| m.pubkey == *key) {
        meta.is_signer = false;
    }
    ix
}

/// The same instruction with the account at `index` replaced by `with`.
pub fn replace_account(mut ix: Instruction, index: usize, with: Pubkey) -> Instruction {
    ix.accounts[index].pubkey = with;
    ix
}

/// Valid declared parameters for a home battery in Bavaria.
pub fn home_battery() -> DeviceParams {
    DeviceParams { rated_power_w: 5_000, energy_capacity_wh: 13_500, region: region("DE-BY"), location_cell: 0 }
}

/// Valid declared parameters for a 9 kW rooftop PV system in Bavaria.
pub fn rooftop_solar() -> DeviceParams {
    DeviceParams { rated_power_w: 9_000, energy_capacity_wh: 0, region: region("DE-BY"), location_cell: 0x08a1_f8d6_a5b2_7fff }
}

/// Zero-padded region bytes; panics on codes longer than 8 (test input only).
pub fn region(code: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..code.len()].copy_from_slice(code.as_bytes());
    out
}
