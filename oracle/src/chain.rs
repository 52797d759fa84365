//! The oracle's one door to the chain (DESIGN.md §4): Solana JSON-RPC for real clusters,
//! the in-process `BanksClient` for tests and the local demo. Everything above it decodes
//! accounts with the program crate's own types.

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_sdk::hash::Hash;
use solana_sdk::transaction::{Transaction, TransactionError};

/// The part of an account the oracle needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainAccount {
    pub owner: Pubkey,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("chain request failed: {0}")]
    Request(String),
    /// The chain processed the transaction and it failed (e.g. a program error): sending
    /// the same again would fail the same way.
    #[error("transaction failed: {}", describe_failure(.0))]
    Rejected(TransactionError),
}

/// The program's error `code` as its IDL names it: `(name, message)`.
pub fn program_error(code: u32) -> Option<(String, String)> {
    let idl: serde_json::Value = serde_json::from_str(include_str!("../../programs/ovpp/idl/ovpp.json")).ok()?;
    idl["errors"]
        .as_array()?
        .iter()
        .find(|e| e["code"].as_u64() == Some(u64::from(code)))
        .map(|e| (e["name"].as_str().unwrap_or_default().to_string(), e["msg"].as_str().unwrap_or_default().to_string()))
}

/// A failed transaction, with the program's own error name where there is one.
pub fn describe_failure(failure: &TransactionError) -> String {
    if let TransactionError::InstructionError(index, solana_sdk::instruction::InstructionError::Custom(code)) = failure {
        if let Some((name, message)) = program_error(*code) {
            return format!("instruction {index}: {name} ({code}): {message}");
        }
    }
    failure.to_string()
}

/// A memcmp filter: `bytes` at `offset` of the account data.
pub type Filter = (usize, Vec<u8>);

#[async_trait]
pub trait Chain: Send + Sync {
    /// Accounts at `keys`, in order (`None` where there is no account).
    async fn get_accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<ChainAccount>>, ChainError>;

    /// Every account of `program` matching all `filters`.
    async fn scan(&self, program: &Pubkey, filters: &[Filter]) -> Result<Vec<(Pubkey, ChainAccount)>, ChainError>;

    /// A recent blockhash to sign a transaction with.
    async fn latest_blockhash(&self) -> Result<Hash, ChainError>;

    /// Submits a signed transaction and waits until it is confirmed (`Ok`) or has failed
    /// (`Rejected`). `Request` means the outcome is unknown: look at the chain's state.
    async fn send_transaction(&self, transaction: &Transaction) -> Result<(), ChainError>;

    /// The account at `key`, if any.
    async fn get_account(&self, key: &Pubkey) -> Result<Option<ChainAccount>, ChainError> {
        Ok(self.get_accounts(std::slice::from_ref(key)).await?.pop().flatten())
    }
}

/// Solana JSON-RPC (`--url`).
pub struct RpcChain {
    client: solana_rpc_client::nonblocking::rpc_client::RpcClient,
}

impl RpcChain {
    /// At the RPC client's default commitment (finalized).
    pub fn new(url: String) -> Self {
        Self { client: solana_rpc_client::nonblocking::rpc_client::RpcClient::new(url) }
    }

    /// At `commitment` (`processed`, `confirmed` or `finalized`, as `--commitment`).
    pub fn with_commitment(url: String, commitment: solana_commitment_config::CommitmentConfig) -> Self {
        Self { client: solana_rpc_client::nonblocking::rpc_client::RpcClient::new_with_commitment(url, commitment) }
    }
}

/// getMultipleAccounts takes at most 100 keys.
const MAX_MULTIPLE_ACCOUNTS: usize = 100;

#[async_trait]
impl Chain for RpcChain {
    async fn get_accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<ChainAccount>>, ChainError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_MULTIPLE_ACCOUNTS) {
            let accounts = self.client.get_multiple_accounts(chunk).await.map_err(|e| ChainError::Request(e.to_string()))?;
            out.extend(accounts.into_iter().map(|a| a.map(|a| ChainAccount { owner: a.owner, data: a.data })));
        }
        Ok(out)
    }

    async fn scan(&self, program: &Pubkey, filters: &[Filter]) -> Result<Vec<(Pubkey, ChainAccount)>, ChainError> {
        use solana_account_decoder_client_types::UiAccountEncoding;
        use solana_rpc_client_api::config::{RpcAccountInfoConfig, RpcProgramAccountsConfig};
        use solana_rpc_client_api::filter::{Memcmp, RpcFilterType};
        let config = RpcProgramAccountsConfig {
            filters: Some(
                filters.iter().map(|(offset, bytes)| RpcFilterType::Memcmp(Memcmp::new_raw_bytes(*offset, bytes.clone()))).collect(),
            ),
            account_config: RpcAccountInfoConfig { encoding: Some(UiAccountEncoding::Base64), ..Default::default() },
            ..Default::default()
        };
        let accounts =
            self.client.get_program_ui_accounts_with_config(program, config).await.map_err(|e| ChainError::Request(e.to_string()))?;
        accounts
            .into_iter()
            .map(|(key, ui)| {
                let owner = ui.owner.parse().map_err(|_| ChainError::Request(format!("bad owner in account {key}")))?;
                let data = ui.data.decode().ok_or_else(|| ChainError::Request(format!("undecodable data in account {key}")))?;
                Ok((key, ChainAccount { owner, data }))
            })
            .collect()
    }

    async fn latest_blockhash(&self) -> Result<Hash, ChainError> {
        self.client.get_latest_blockhash().await.map_err(|e| ChainError::Request(e.to_string()))
    }

    async fn send_transaction(&self, transaction: &Transaction) -> Result<(), ChainError> {
        match self.client.send_and_confirm_transaction(transaction).await {
            Ok(_) => Ok(()),
            Err(e) => match e.get_transaction_error() {
                Some(failure) => Err(ChainError::Rejected(failure)),
                None => Err(ChainError::Request(e.to_string())),
            },
        }
    }
}

/// The in-process test/demo bank. (solana-banks-client 3.x marks itself "unstable API"
/// ahead of v4; it is the in-process chain of DESIGN.md §4.) The bank cannot list program
/// accounts, so this connection scans the accounts it has seen: every account of every
/// transaction it sent and every account it was asked for (an indexer of its own traffic).
#[allow(deprecated)]
pub struct BanksChain {
    client: solana_banks_client::BanksClient,
    seen: std::sync::Mutex<std::collections::BTreeSet<Pubkey>>,
}

#[allow(deprecated)]
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

#[allow(deprecated)]
#[async_trait]
impl Chain for BanksChain {
    async fn get_accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<ChainAccount>>, ChainError> {
        self.see(keys);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let account = self.client.get_account(*key).await.map_err(|e| ChainError::Request(e.to_string()))?;
            out.push(account.map(|a| ChainAccount { owner: a.owner, data: a.data }));
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
        use solana_banks_client::BanksClientError;
        self.see(&transaction.message.account_keys);
        match self.client.process_transaction(transaction.clone()).await {
            Ok(()) => Ok(()),
            Err(BanksClientError::TransactionError(failure) | BanksClientError::SimulationError { err: failure, .. }) => {
                Err(ChainError::Rejected(failure))
            }
            Err(e) => Err(ChainError::Request(e.to_string())),
        }
    }
}
