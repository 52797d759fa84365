//! A Solana JSON-RPC endpoint in front of the in-process bank (`solana-program-test`),
//! so that the standard clients (`solana-rpc-client`, this project's CLI and oracle with
//! `--url`) work against a local chain that hosts the program natively. It serves the
//! methods those clients use: getVersion, getHealth, getSlot, getLatestBlockhash,
//! isBlockhashValid, getAccountInfo, getMultipleAccounts, getBalance, getProgramAccounts
//! (over the accounts this endpoint has seen, see [`ovpp_chain::bank::BanksChain`]),
//! sendTransaction (executed at once, failures answered as preflight failures, like a
//! validator does) and getSignatureStatuses.

use std::collections::HashMap;
use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use solana_account_decoder_client_types::{UiAccount, UiAccountData, UiAccountEncoding};
use solana_rpc_client_api::config::RpcProgramAccountsConfig;
use solana_rpc_client_api::filter::RpcFilterType;
use solana_rpc_client_api::response::RpcSimulateTransactionResult;
use solana_sdk::signature::Signature;
use solana_sdk::transaction::{Transaction, TransactionError};
use solana_transaction_status_client_types::{TransactionConfirmationStatus, TransactionStatus};
use tokio::sync::Mutex;

use ovpp_chain::bank::BanksChain;
use ovpp_chain::{Chain, ChainError};

const STATUSES_KEPT: usize = 65_536;

#[derive(Default)]
struct Statuses {
    by_signature: HashMap<Signature, Result<(), TransactionError>>,
    order: std::collections::VecDeque<Signature>,
}

impl Statuses {
    fn insert(&mut self, signature: Signature, outcome: Result<(), TransactionError>) {
        if self.by_signature.insert(signature, outcome).is_none() {
            self.order.push_back(signature);
        }
        while self.order.len() > STATUSES_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.by_signature.remove(&oldest);
            }
        }
    }
}

/// The most bytes a transaction may have on the wire.
const PACKET_DATA_SIZE: usize = 1232;

#[allow(deprecated)]
pub struct Bridge {
    banks: solana_banks_client::BanksClient,
    chain: BanksChain,
    /// Outcomes of the latest transactions, for getSignatureStatuses (a validator too only
    /// remembers recent ones); the oldest are forgotten past `STATUSES_KEPT`.
    statuses: Mutex<Statuses>,
    /// Raw transactions as received, kept only when asked for ([`Bridge::recording`]): tests
    /// compare what clients build; a long-running local network must not grow with them.
    received: Option<Mutex<Vec<Vec<u8>>>>,
    /// Transactions run one at a time, as a leader's do for conflicting accounts (the bank
    /// behind would otherwise answer AccountInUse), and the local clock moves between them.
    serial: Mutex<()>,
    /// Pays `requestAirdrop`s, as a test validator's faucet does (`None`: not served).
    faucet: Option<solana_sdk::signature::Keypair>,
}

/// The most one `requestAirdrop` gives, as test validators limit it: 10 SOL.
pub const MAX_AIRDROP_LAMPORTS: u64 = 10_000_000_000;

#[allow(deprecated)]
impl Bridge {
    pub fn new(banks: solana_banks_client::BanksClient) -> Arc<Self> {
        Self::build(banks, None)
    }

    /// `new`, keeping every raw transaction received (see [`Bridge::received`]).
    pub fn recording(banks: solana_banks_client::BanksClient) -> Arc<Self> {
        Self::build(banks, Some(Mutex::default()))
    }

    /// `new`, serving `requestAirdrop` from `faucet`'s lamports.
    pub fn with_faucet(banks: solana_banks_client::BanksClient, faucet: solana_sdk::signature::Keypair) -> Arc<Self> {
        let mut bridge = Self::unshared(banks, None);
        bridge.faucet = Some(faucet);
        Arc::new(bridge)
    }

    fn build(banks: solana_banks_client::BanksClient, received: Option<Mutex<Vec<Vec<u8>>>>) -> Arc<Self> {
        Arc::new(Self::unshared(banks, received))
    }

    fn unshared(banks: solana_banks_client::BanksClient, received: Option<Mutex<Vec<Vec<u8>>>>) -> Self {
        Self { chain: BanksChain::new(banks.clone()), banks, statuses: Mutex::default(), received, serial: Mutex::default(), faucet: None }
    }

    /// The raw transactions received so far (empty unless built with [`Bridge::recording`]).
    pub async fn received(&self) -> Vec<Vec<u8>> {
        match &self.received {
            Some(received) => received.lock().await.clone(),
            None => vec![],
        }
    }

    /// Holds off transactions while the caller changes the bank (e.g. its clock).
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.serial.lock().await
    }

    /// Lets `getProgramAccounts` find accounts created before this endpoint existed.
    pub async fn see(&self, keys: &[Pubkey]) {
        let _ = self.chain.get_accounts(keys).await;
    }

    /// Every account this endpoint has seen (what the local network saves at shutdown).
    pub async fn seen(&self) -> Vec<Pubkey> {
        self.chain.seen()
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().route("/", post(handle)).with_state(self.clone())
    }
}

fn ok(id: &Value, result: Value) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn error(id: &Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Json<Value> {
    let mut error = json!({"code": code, "message": message.into()});
    if let Some(data) = data {
        error["data"] = data;
    }
    Json(json!({"jsonrpc": "2.0", "id": id, "error": error}))
}

fn context(slot: u64, value: Value) -> Value {
    json!({"context": {"slot": slot, "apiVersion": "3.1.0"}, "value": value})
}

fn ui_account(account: &solana_sdk::account::Account) -> UiAccount {
    UiAccount {
        lamports: account.lamports,
        data: UiAccountData::Binary(base64::engine::general_purpose::STANDARD.encode(&account.data), UiAccountEncoding::Base64),
        owner: account.owner.to_string(),
        executable: account.executable,
        rent_epoch: account.rent_epoch,
        space: Some(account.data.len() as u64),
    }
}

fn pubkey_param(params: &Value, index: usize) -> Result<Pubkey, String> {
    params
        .get(index)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("param {index} must be a base58 public key"))
}

#[allow(deprecated)]
async fn handle(State(bridge): State<Arc<Bridge>>, Json(request): Json<Value>) -> Json<Value> {
    let id = request["id"].clone();
    let params = request.get("params").cloned().unwrap_or(Value::Array(vec![]));
    let method = request["method"].as_str().unwrap_or_default().to_string();
    match dispatch(&bridge, &method, &params).await {
        Ok(result) => ok(&id, result),
        Err(Failure::Invalid(message)) => error(&id, -32602, message, None),
        Err(Failure::Unknown) => error(&id, -32601, format!("method {method} is not served by this local endpoint"), None),
        Err(Failure::Internal(message)) => error(&id, -32603, message, None),
        Err(Failure::Preflight(failure, logs)) => {
            let data = RpcSimulateTransactionResult {
                err: Some(failure.clone().into()),
                logs: Some(logs),
                accounts: None,
                units_consumed: None,
                loaded_accounts_data_size: None,
                return_data: None,
                inner_instructions: None,
                replacement_blockhash: None,
                fee: None,
                pre_balances: None,
                post_balances: None,
                pre_token_balances: None,
                post_token_balances: None,
                loaded_addresses: None,
            };
            error(&id, -32002, format!("Transaction simulation failed: {failure}"), Some(serde_json::to_value(data).unwrap_or_default()))
        }
    }
}

enum Failure {
    Invalid(String),
    Unknown,
    Internal(String),
    Preflight(TransactionError, Vec<String>),
}

impl From<ChainError> for Failure {
    fn from(e: ChainError) -> Self {
        Failure::Internal(e.to_string())
    }
}

#[allow(deprecated)]
async fn dispatch(bridge: &Bridge, method: &str, params: &Value) -> Result<Value, Failure> {
    let internal = |e: solana_banks_client::BanksClientError| Failure::Internal(e.to_string());
    let slot = bridge.banks.get_root_slot().await.map_err(internal)?;
    Ok(match method {
        "getVersion" => json!({"solana-core": "3.1.0", "feature-set": 0}),
        "getHealth" => json!("ok"),
        "getSlot" => json!(slot),
        "getLatestBlockhash" => {
            let (blockhash, height) =
                bridge.banks.get_latest_blockhash_with_commitment(Default::default()).await.map_err(internal)?.unwrap_or_default();
            context(slot, json!({"blockhash": blockhash.to_string(), "lastValidBlockHeight": height}))
        }
        "isBlockhashValid" => context(slot, json!(true)),
        "getBalance" => {
            let key = pubkey_param(params, 0).map_err(Failure::Invalid)?;
            context(slot, json!(bridge.banks.get_balance(key).await.map_err(internal)?))
        }
        "getAccountInfo" | "getMultipleAccounts" => {
            let keys: Vec<Pubkey> = if method == "getAccountInfo" {
                vec![pubkey_param(params, 0).map_err(Failure::Invalid)?]
            } else {
                let list =
                    params.get(0).and_then(Value::as_array).ok_or_else(|| Failure::Invalid("param 0 must be a list of keys".into()))?;
                list.iter()
                    .map(|k| k.as_str().and_then(|s| s.parse().ok()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| Failure::Invalid("bad key".into()))?
            };
            bridge.see(&keys).await;
            let mut values = Vec::with_capacity(keys.len());
            for key in &keys {
                let account = bridge.banks.get_account(*key).await.map_err(internal)?;
                values.push(account.map(|a| serde_json::to_value(ui_account(&a)).unwrap_or_default()).unwrap_or(Value::Null));
            }
            context(slot, if method == "getAccountInfo" { values.pop().unwrap_or(Value::Null) } else { Value::Array(values) })
        }
        "getProgramAccounts" => {
            let program = pubkey_param(params, 0).map_err(Failure::Invalid)?;
            let config: RpcProgramAccountsConfig = params
                .get(1)
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| Failure::Invalid(e.to_string()))?
                .unwrap_or_default();
            let all = bridge.chain.scan(&program, &[]).await?;
            let mut out = Vec::new();
            for (key, account) in all {
                let keep = config.filters.iter().flatten().all(|f| match f {
                    RpcFilterType::DataSize(size) => account.data.len() as u64 == *size,
                    RpcFilterType::Memcmp(m) => m.bytes_match(&account.data),
                    _ => true,
                });
                if keep {
                    let full = bridge.banks.get_account(key).await.map_err(internal)?.unwrap_or_default();
                    out.push(json!({"pubkey": key.to_string(), "account": ui_account(&full)}));
                }
            }
            if config.with_context == Some(true) {
                context(slot, Value::Array(out))
            } else {
                Value::Array(out)
            }
        }
        "sendTransaction" => {
            let encoded =
                params.get(0).and_then(Value::as_str).ok_or_else(|| Failure::Invalid("param 0 must be the encoded transaction".into()))?;
            // Solana's default encoding for sendTransaction is base58.
            let base58 = params.get(1).and_then(|c| c["encoding"].as_str()).is_none_or(|e| e == "base58");
            let bytes = if base58 {
                bs58::decode(encoded).into_vec().map_err(|e| Failure::Invalid(e.to_string()))?
            } else {
                base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| Failure::Invalid(e.to_string()))?
            };
            if let Some(received) = &bridge.received {
                received.lock().await.push(bytes.clone());
            }
            // What a validator checks before anything runs: size and signatures.
            if bytes.len() > PACKET_DATA_SIZE {
                return Err(Failure::Invalid(format!("transaction of {} bytes is above the {PACKET_DATA_SIZE}-byte limit", bytes.len())));
            }
            let transaction: Transaction = bincode_transaction(&bytes).map_err(Failure::Invalid)?;
            let signature = *transaction.signatures.first().ok_or_else(|| Failure::Invalid("unsigned transaction".into()))?;
            if transaction.verify().is_err() {
                return Err(Failure::Preflight(TransactionError::SignatureFailure, vec![]));
            }
            let _serial = bridge.serial.lock().await;
            let outcome = bridge.banks.process_transaction_with_metadata(transaction.clone()).await.map_err(internal)?;
            let logs = outcome.metadata.map(|m| m.log_messages).unwrap_or_default();
            bridge.see(&transaction.message.account_keys).await;
            match outcome.result {
                Ok(()) => {
                    bridge.statuses.lock().await.insert(signature, Ok(()));
                    json!(signature.to_string())
                }
                Err(failure) => return Err(Failure::Preflight(failure, logs)),
            }
        }
        "requestAirdrop" => {
            let Some(faucet) = &bridge.faucet else { return Err(Failure::Unknown) };
            let to = pubkey_param(params, 0).map_err(Failure::Invalid)?;
            let lamports = params.get(1).and_then(Value::as_u64).ok_or_else(|| Failure::Invalid("param 1 must be lamports".into()))?;
            if lamports == 0 || lamports > MAX_AIRDROP_LAMPORTS {
                return Err(Failure::Invalid(format!("an airdrop is 1 to {MAX_AIRDROP_LAMPORTS} lamports, not {lamports}")));
            }
            use solana_sdk::signature::Signer;
            let blockhash = bridge.banks.get_latest_blockhash().await.map_err(internal)?;
            let transfer = anchor_lang::solana_program::system_instruction::transfer(&faucet.pubkey(), &to, lamports);
            let transaction = Transaction::new_signed_with_payer(&[transfer], Some(&faucet.pubkey()), &[faucet], blockhash);
            let signature = transaction.signatures[0];
            let _serial = bridge.serial.lock().await;
            let outcome = bridge.banks.process_transaction_with_metadata(transaction.clone()).await.map_err(internal)?;
            bridge.see(&transaction.message.account_keys).await;
            match outcome.result {
                Ok(()) => {
                    bridge.statuses.lock().await.insert(signature, Ok(()));
                    json!(signature.to_string())
                }
                Err(failure) => return Err(Failure::Internal(format!("the faucet could not pay: {failure}"))),
            }
        }
        "getSignatureStatuses" => {
            let list =
                params.get(0).and_then(Value::as_array).ok_or_else(|| Failure::Invalid("param 0 must be a list of signatures".into()))?;
            let statuses = bridge.statuses.lock().await;
            let values: Vec<Value> = list
                .iter()
                .map(|s| {
                    let status = s.as_str().and_then(|s| s.parse::<Signature>().ok()).and_then(|s| statuses.by_signature.get(&s).cloned());
                    status.map_or(Value::Null, |status| {
                        let status = TransactionStatus {
                            slot,
                            confirmations: None,
                            err: status.clone().err(),
                            status,
                            confirmation_status: Some(TransactionConfirmationStatus::Finalized),
                        };
                        serde_json::to_value(status).unwrap_or_default()
                    })
                })
                .collect();
            context(slot, Value::Array(values))
        }
        _ => return Err(Failure::Unknown),
    })
}

/// A legacy transaction from its wire bytes (bincode, as every client sends it).
fn bincode_transaction(bytes: &[u8]) -> Result<Transaction, String> {
    let versioned: solana_sdk::transaction::VersionedTransaction =
        bincode::deserialize(bytes).map_err(|e| format!("not a transaction: {e}"))?;
    versioned.into_legacy_transaction().ok_or_else(|| "only legacy transactions are served here".to_string())
}
