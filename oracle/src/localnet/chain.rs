//! The local chain: the `ovpp` program running natively inside a `solana-program-test`
//! bank (the real Solana runtime, with the real SPL Token-2022 and Associated Token Account
//! programs as BPF). Tests use it directly; the local network serves it over JSON-RPC.
// solana-program-test 3.x marks its API "unstable" (deprecated) ahead of v4; it is the
// in-process chain of DESIGN.md §4, so the warnings carry no information here.
#![allow(deprecated)]

use anchor_lang::prelude::{AccountInfo, Pubkey};
use solana_program_test::{processor, ProgramTest, ProgramTestContext};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;

/// Anchor's `entry` ties the account slice and the accounts to one lifetime, which the
/// builtin function pointer type of `processor!` cannot express; the accounts outlive
/// the call, so widening the lifetime is sound. This is the only unsafe in the project.
fn ovpp_entry(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> anchor_lang::solana_program::entrypoint::ProgramResult {
    let accounts: &[AccountInfo] = unsafe { std::mem::transmute(accounts) };
    ovpp::entry(program_id, accounts, data)
}

/// Serialized `UpgradeableLoaderState::ProgramData` (bincode: u32 tag 3, slot, Option<Pubkey>)
/// so `initialize` can check the upgrade authority as it does on a real cluster.
fn program_data_account(upgrade_authority: &Pubkey) -> Account {
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
    let mut test = ProgramTest::new("ovpp", ovpp::ID, processor!(ovpp_entry));
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
