//! The local chain: surfpool (LiteSVM, which runs transactions with agave's own SVM
//! crates, behind surfpool's Solana JSON-RPC and PubSub servers), offline, with the `ovpp`
//! program as a native builtin next to the real SPL Token, Token-2022 and Associated Token
//! Account programs. Every client reaches it as it would a cluster; this module only
//! starts it, moves its clock, and reads its accounts for the state directory.

use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use anyhow::{anyhow, bail};
use solana_sdk::account::Account;
use solana_sdk::clock::Clock;
use surfpool_core::surfnet::locker::SurfnetSvmLocker;
use surfpool_core::surfnet::svm::{SurfnetSvm, SurfnetSvmConfig};
use surfpool_types::{BlockProductionMode, RpcConfig, SimnetCommand, SimnetConfig, SimnetEvent, SurfpoolConfig};

/// Slot time, as on mainnet: a transaction is confirmed within one.
const SLOT_MS: u64 = 400;

/// What to start the chain with.
pub struct ChainSetup {
    /// JSON-RPC on 127.0.0.1:`rpc_port`, PubSub on the port after it (as
    /// `solana-test-validator` does).
    pub rpc_port: u16,
    /// The program's upgrade authority (who may `initialize` it).
    pub upgrade_authority: Pubkey,
    /// Accounts the chain holds from the start (a restarted local network's state).
    pub accounts: Vec<(Pubkey, Account)>,
}

/// A running local chain; stopped when dropped.
pub struct LocalChain {
    locker: SurfnetSvmLocker,
    commands: crossbeam_channel::Sender<SimnetCommand>,
    pub rpc_url: String,
    pub ws_url: String,
}

/// Owners whose accounts are the network's state; everything else (programs, sysvars,
/// feature gates) the next start provides itself.
const STATE_OWNERS: [Pubkey; 4] =
    [anchor_lang::solana_program::system_program::ID, ovpp::ID, anchor_spl::token::ID, anchor_spl::token_2022::ID];

pub async fn start(setup: ChainSetup) -> anyhow::Result<LocalChain> {
    ovpp_chain::bank::install_syscall_stubs().await;
    let ws_port = setup.rpc_port.checked_add(1).ok_or_else(|| anyhow!("--rpc-port must leave room for the PubSub port after it"))?;
    let svm_config = SurfnetSvmConfig { slot_time: SLOT_MS, instruction_profiling_enabled: false, ..SurfnetSvmConfig::default() };
    let (mut svm, events, geyser_events) = SurfnetSvm::new(svm_config).map_err(|e| anyhow!("starting the local chain: {e}"))?;
    svm.inner.svm.add_builtin(ovpp::ID, ovpp_chain::bank::ovpp_builtin());
    let program_data = ovpp::client::program_data_address();
    let accounts = std::iter::once((program_data, ovpp_chain::bank::program_data_account(&setup.upgrade_authority))).chain(setup.accounts);
    for (key, account) in accounts {
        svm.set_account(&key, account).map_err(|e| anyhow!("loading account {key} into the local chain: {e}"))?;
    }
    let locker = SurfnetSvmLocker::new(svm);

    let config = SurfpoolConfig {
        simnets: vec![SimnetConfig {
            offline_mode: true,
            remote_rpc_url: None,
            slot_time: SLOT_MS,
            block_production_mode: BlockProductionMode::Clock,
            instruction_profiling_enabled: false,
            ..SimnetConfig::default()
        }],
        rpc: RpcConfig { bind_host: "127.0.0.1".into(), bind_port: setup.rpc_port, ws_port, ..RpcConfig::default() },
        ..SurfpoolConfig::default()
    };
    let (commands, commands_rx) = crossbeam_channel::unbounded();
    // Ready, or why not: from the event stream, or from the run loop ending early.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let ready = std::sync::Arc::new(std::sync::Mutex::new(Some(ready_tx)));
    let answer = move |ready: &std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Result<(), String>>>>, outcome| {
        if let Some(ready) = ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = ready.send(outcome);
        }
    };
    {
        let (locker, commands, ready) = (locker.clone(), commands.clone(), ready.clone());
        std::thread::Builder::new().name("local-chain".into()).spawn(move || {
            let outcome =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(|e| e.to_string()).and_then(
                    |runtime| {
                        runtime
                            .block_on(surfpool_core::runloops::start_local_surfnet_runloop(
                                locker,
                                config,
                                commands,
                                commands_rx,
                                geyser_events,
                            ))
                            .map_err(|e| e.to_string())
                    },
                );
            answer(&ready, outcome.and_then(|()| Err("stopped".to_string())));
        })?;
    }
    // Surfpool reports through a bounded channel: it must be drained for the chain to run.
    std::thread::Builder::new().name("local-chain-events".into()).spawn(move || {
        for event in events {
            match event {
                SimnetEvent::Ready(_) => answer(&ready, Ok(())),
                SimnetEvent::Aborted(why) => {
                    tracing::error!("the local chain stopped: {why}");
                    answer(&ready, Err(why));
                }
                SimnetEvent::ErrorLog(_, message) => tracing::error!(target: "local_chain", "{message}"),
                SimnetEvent::WarnLog(_, message) => tracing::warn!(target: "local_chain", "{message}"),
                _ => {}
            }
        }
    })?;
    let chain = LocalChain {
        locker,
        commands,
        rpc_url: format!("http://127.0.0.1:{}", setup.rpc_port),
        ws_url: format!("ws://127.0.0.1:{ws_port}"),
    };
    let (rpc, ws) = (setup.rpc_port, ws_port);
    match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(chain),
        // (Surfpool's own advice names the flags of its CLI, not ours.)
        Ok(Ok(Err(why))) => bail!(
            "the local chain did not start on 127.0.0.1:{rpc} (PubSub {ws}): {} (is another local network running? choose other ports with --rpc-port)",
            why.replace(" Try --port or --ws-port to use a different port.", "")
        ),
        Ok(Err(_)) => bail!("the local chain stopped while starting"),
        Err(_) => bail!("the local chain did not get ready within 60 s"),
    }
}

impl LocalChain {
    /// Sets the chain's clock to `unix_time`, forwards or back (a first start that
    /// backfills starts its epoch schedule in the past). Blocks go on from there, one
    /// slot time each.
    pub fn set_clock(&self, unix_time: i64) {
        self.locker.with_svm_writer(|svm| {
            let mut clock: Clock = svm.inner.get_sysvar();
            clock.unix_timestamp = unix_time;
            svm.inner.set_sysvar(&clock);
            svm.updated_at = u64::try_from(unix_time).unwrap_or(0).saturating_mul(1000);
        });
    }

    /// Moves the clock to `unix_time` if it is behind: the chain's clock advances one slot
    /// time per block, which falls behind the wall clock when blocks are late.
    pub fn advance_clock_to(&self, unix_time: i64) {
        let now: Clock = self.locker.with_svm_reader(|svm| svm.inner.get_sysvar());
        if now.unix_timestamp < unix_time {
            self.set_clock(unix_time);
        }
    }

    /// The network's state, one moment's: wallets, the program's accounts and token
    /// accounts (not the programs, sysvars or feature gates the next start provides, nor
    /// the chain's own airdrop wallet).
    pub fn state(&self) -> anyhow::Result<Vec<(Pubkey, Account)>> {
        self.locker.with_svm_reader(|svm| {
            let faucet = svm.inner.airdrop_pubkey();
            let accounts = svm.inner.get_all_accounts().map_err(|e| anyhow!("reading the local chain's accounts: {e}"))?;
            Ok(accounts
                .into_iter()
                .map(|(key, account)| (key, Account::from(account)))
                .filter(|(key, account)| {
                    STATE_OWNERS.contains(&account.owner) && !account.executable && account.lamports > 0 && *key != faucet
                })
                .collect())
        })
    }
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        // Stops block production and closes the RPC and PubSub servers (their ports too).
        let _ = self.commands.send(SimnetCommand::Terminate(None));
    }
}
