//! `ovpp-chain`: the one door to the chain for every off-chain part (DESIGN.md §4). The
//! [`Chain`] interface with Solana JSON-RPC ([`RpcChain`]) for clusters and, behind the
//! `program-test` feature, the in-process bank ([`bank`]) for tests and the local network;
//! the program's accounts read with the program crate's own types ([`accounts`]); and what
//! every Solana tool shares: keypair files ([`keypair`]), `--url` monikers ([`cluster`]),
//! OVPP amounts ([`amount`]) and instructions packed into transactions ([`packing`]).

pub mod accounts;
pub mod amount;
#[cfg(feature = "program-test")]
pub mod bank;
pub mod cluster;
pub mod keypair;
pub mod packing;

use anchor_lang::prelude::Pubkey;
use async_trait::async_trait;
use solana_sdk::hash::Hash;
use solana_sdk::transaction::{Transaction, TransactionError};

/// The part of an account the oracle needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainAccount {
    pub owner: Pubkey,
    pub lamports: u64,
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
    /// An account of the program that does not decode as the type at its address.
    #[error("account {address} is not a valid {what}: {reason}")]
    BadAccount { address: Pubkey, what: &'static str, reason: String },
}

/// The program's error `code` as its IDL names it: `(name, message)`.
pub fn program_error(code: u32) -> Option<(String, String)> {
    // Parsed once: the local chain asks on every failed instruction.
    static ERRORS: std::sync::OnceLock<Vec<(u64, String, String)>> = std::sync::OnceLock::new();
    let errors = ERRORS.get_or_init(|| {
        let idl: serde_json::Value = serde_json::from_str(ovpp::IDL_JSON).unwrap_or_default();
        idl["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["code"].as_u64()?,
                    e["name"].as_str().unwrap_or_default().to_string(),
                    e["msg"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect()
    });
    errors.iter().find(|(c, ..)| *c == u64::from(code)).map(|(_, name, message)| (name.clone(), message.clone()))
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

    /// Asks the cluster's faucet for `lamports` to `to` and waits until they arrived (test
    /// clusters and the local network; mainnet has no faucet).
    async fn request_airdrop(&self, to: &Pubkey, lamports: u64) -> Result<(), ChainError> {
        let _ = (to, lamports);
        Err(ChainError::Request("this chain connection has no faucet".into()))
    }

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

    /// A request that got no usable answer, naming the endpoint it was sent to.
    fn unreachable(&self, e: impl std::fmt::Display) -> ChainError {
        ChainError::Request(format!("{}: {e}", self.client.url()))
    }
}

/// getMultipleAccounts takes at most 100 keys.
const MAX_MULTIPLE_ACCOUNTS: usize = 100;

#[async_trait]
impl Chain for RpcChain {
    async fn get_accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<ChainAccount>>, ChainError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_MULTIPLE_ACCOUNTS) {
            let accounts = self.client.get_multiple_accounts(chunk).await.map_err(|e| self.unreachable(e))?;
            out.extend(accounts.into_iter().map(|a| a.map(|a| ChainAccount { owner: a.owner, lamports: a.lamports, data: a.data })));
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
        let accounts = self.client.get_program_ui_accounts_with_config(program, config).await.map_err(|e| self.unreachable(e))?;
        accounts
            .into_iter()
            .map(|(key, ui)| {
                let owner = ui.owner.parse().map_err(|_| ChainError::Request(format!("bad owner in account {key}")))?;
                let data = ui.data.decode().ok_or_else(|| ChainError::Request(format!("undecodable data in account {key}")))?;
                Ok((key, ChainAccount { owner, lamports: ui.lamports, data }))
            })
            .collect()
    }

    async fn latest_blockhash(&self) -> Result<Hash, ChainError> {
        self.client.get_latest_blockhash().await.map_err(|e| self.unreachable(e))
    }

    async fn request_airdrop(&self, to: &Pubkey, lamports: u64) -> Result<(), ChainError> {
        let signature = self.client.request_airdrop(to, lamports).await.map_err(|e| self.unreachable(e))?;
        self.client.poll_for_signature(&signature).await.map_err(|e| self.unreachable(e))
    }

    async fn send_transaction(&self, transaction: &Transaction) -> Result<(), ChainError> {
        match self.client.send_and_confirm_transaction(transaction).await {
            Ok(_) => Ok(()),
            Err(e) => match e.get_transaction_error() {
                Some(failure) => Err(ChainError::Rejected(failure)),
                None => Err(self.unreachable(e)),
            },
        }
    }
}
