//! The local chain: the `ovpp` program running natively inside a `solana-program-test`
//! bank (the real Solana runtime, with the real SPL Token-2022 and Associated Token Account
//! programs as BPF). Tests use it directly; the local network serves it over JSON-RPC.
// solana-program-test 3.x marks its API "unstable" (deprecated) ahead of v4; it is the
// in-process chain of DESIGN.md §4, so the warnings carry no information here.
#![allow(deprecated)]

use anchor_lang::prelude::{AccountInfo, Pubkey};
use async_trait::async_trait;
use solana_program_test::{processor, ProgramTest, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use solana_sdk::hash::Hash;
use solana_sdk::transaction::Transaction;

use crate::{Chain, ChainAccount, ChainError, Filter};

/// Anchor's `entry` ties the account slice and the accounts to one lifetime, which the
/// builtin function pointer type of `processor!` cannot express; the accounts outlive
/// the call, so widening the lifetime is sound. This is the only unsafe in the project.
fn ovpp_entry(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> anchor_lang::solana_program::entrypoint::ProgramResult {
    let accounts: &[AccountInfo] = unsafe { std::mem::transmute(accounts) };
    let result = ovpp::entry(program_id, accounts, data);
    // Natively, Anchor's own error lines go to stdout, not to the transaction's log; a
    // wallet's simulation shows the program's error by name only if it is logged here.
    if let Err(anchor_lang::solana_program::program_error::ProgramError::Custom(code)) = &result {
        if let Some((name, message)) = crate::program_error(*code) {
            solana_sysvar::program_stubs::sol_log(&format!(
                "AnchorError occurred. Error Code: {name}. Error Number: {code}. Error Message: {message}."
            ));
        }
    }
    result
}

/// The `ovpp` program as a native builtin (there is no SBF build of it here), for any
/// engine that takes `solana-program-runtime` builtins.
pub fn ovpp_builtin() -> solana_program_runtime::invoke_context::BuiltinFunctionWithContext {
    let entry: Option<solana_program_runtime::invoke_context::BuiltinFunctionWithContext> = processor!(ovpp_entry);
    entry.expect("processor! always gives the builtin")
}

/// Installs `solana-program-test`'s syscall stubs (how a native builtin logs and makes
/// cross-program invocations), once per process: they are private to that crate, and
/// starting one bank installs them.
pub async fn install_syscall_stubs() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        ProgramTest::default().start().await;
    })
    .await;
}

/// Serialized `UpgradeableLoaderState::ProgramData` (bincode: u32 tag 3, slot, Option<Pubkey>)
/// so `initialize` can check the upgrade authority as it does on a real cluster.
pub fn program_data_account(upgrade_authority: &Pubkey) -> Account {
    let mut data = Vec::with_capacity(45);
    data.extend_from_slice(&3u32.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    data.push(1);
    data.extend_from_slice(upgrade_authority.as_ref());
    Account {
        lamports: 1_000_000_000,
        data,
        owner: anchor_lang::solana_program::bpf_loader_upgradeable::ID,
        executable: false,
        rent_epoch: 0,
    }
}

/// A bank with the program deployed under `upgrade_authority`, holding `accounts` from the
/// start (a restarted local network's state).
pub async fn start(upgrade_authority: &Pubkey, accounts: Vec<(Pubkey, Account)>) -> ProgramTestContext {
    let mut test = ProgramTest::new("ovpp", ovpp::ID, Some(ovpp_builtin()));
    test.prefer_bpf(false);
    test.add_account(ovpp::client::program_data_address(), program_data_account(upgrade_authority));
    for (key, account) in accounts {
        test.add_account(key, account);
    }
    test.start_with_context().await
}

/// Sets the bank's clock to `unix_time`, forwards or back (a first start that backfills
/// starts its epoch schedule in the past).
pub async fn set_clock(ctx: &mut ProgramTestContext, unix_time: i64) {
    if let Ok(mut clock) = ctx.banks_client.get_sysvar::<Clock>().await {
        clock.unix_timestamp = unix_time;
        ctx.set_sysvar(&clock);
    }
}

/// Moves the bank's clock to `unix_time` if it is behind (the bank's clock only moves when
/// told; a validator's follows the wall clock).
pub async fn advance_clock_to(ctx: &mut ProgramTestContext, unix_time: i64) {
    if let Ok(mut clock) = ctx.banks_client.get_sysvar::<Clock>().await {
        if clock.unix_timestamp < unix_time {
            clock.unix_timestamp = unix_time;
            ctx.set_sysvar(&clock);
        }
    }
}

/// The in-process test/demo bank. (solana-banks-client 3.x marks itself "unstable API"
/// ahead of v4; it is the in-process chain of DESIGN.md §4.) The bank cannot list program
/// accounts, so this connection scans the accounts it has seen: every account of every
/// transaction it sent and every account it was asked for (an indexer of its own traffic).
pub struct BanksChain {
    client: solana_banks_client::BanksClient,
    seen: std::sync::Mutex<std::collections::BTreeSet<Pubkey>>,
}

impl BanksChain {
    pub fn new(client: solana_banks_client::BanksClient) -> Self {
        Self { client, seen: Default::default() }
    }

    /// The accounts this connection has seen.
    pub fn seen(&self) -> Vec<Pubkey> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().collect()
    }

    fn see(&self, keys: &[Pubkey]) {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(keys.iter().copied());
    }
}

#[async_trait]
impl Chain for BanksChain {
    async fn get_accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<ChainAccount>>, ChainError> {
        self.see(keys);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let account = self.client.get_account(*key).await.map_err(|e| ChainError::Request(e.to_string()))?;
            out.push(account.map(|a| ChainAccount { owner: a.owner, lamports: a.lamports, data: a.data }));
        }
        Ok(out)
    }

    async fn scan(&self, program: &Pubkey, filters: &[Filter]) -> Result<Vec<(Pubkey, ChainAccount)>, ChainError> {
        let seen: Vec<Pubkey> = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().collect();
        let accounts = self.get_accounts(&seen).await?;
        Ok(seen
            .into_iter()
            .zip(accounts)
            .filter_map(|(key, account)| Some((key, account?)))
            .filter(|(_, a)| {
                a.owner == *program && filters.iter().all(|(at, bytes)| a.data.get(*at..*at + bytes.len()) == Some(bytes.as_slice()))
            })
            .collect())
    }

    async fn latest_blockhash(&self) -> Result<Hash, ChainError> {
        self.client.get_latest_blockhash().await.map_err(|e| ChainError::Request(e.to_string()))
    }

    async fn send_transaction(&self, transaction: &Transaction) -> Result<(), ChainError> {
        self.see(&transaction.message.account_keys);
        // A validator's preflight: a transaction that fails is answered at once and never
        // lands (a committed failure would pay its fee and make the same command, sent
        // again with the same blockhash, "already processed"; `process_transaction` alone
        // would instead wait out the blockhash for one that can never land, e.g. one whose
        // fee payer has no SOL).
        let preflight = self.client.simulate_transaction(transaction.clone()).await.map_err(|e| ChainError::Request(e.to_string()))?;
        if let Some(Err(e)) = preflight.result {
            return Err(ChainError::Rejected(e));
        }
        let outcome =
            self.client.process_transaction_with_metadata(transaction.clone()).await.map_err(|e| ChainError::Request(e.to_string()))?;
        outcome.result.map_err(ChainError::Rejected)
    }
}
