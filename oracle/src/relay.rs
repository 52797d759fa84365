//! The relayer: posts closed epochs with the oracle signatures collected for them. The
//! chain is the ledger of what was posted: before every attempt the relayer looks for the
//! epoch's account, so a relayer that crashed after sending (or lost the confirmation)
//! records the epoch instead of posting it twice, and one that crashed before sending
//! simply posts. Epochs go out strictly in order, as the program requires.

use std::time::Duration;

use ovpp::state::{Config, MAX_THRESHOLD};
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

use crate::epoch::db::EpochRecord;
use crate::store::{Store, StoreError};
use ovpp_chain::{Chain, ChainError};
use ovpp_wire::clock::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("the program is not initialized on this cluster (no config account)")]
    NoConfig,
    #[error("epoch {0} is not closed here")]
    NotClosed(u64),
    #[error("epoch {epoch} is not next: the chain's last posted epoch is {last_posted}")]
    NotNext { epoch: u64, last_posted: u64 },
    #[error("epoch {epoch} has {have} valid oracle signatures here, the chain needs {need}")]
    NotEnoughSignatures { epoch: u64, have: usize, need: usize },
    #[error("epoch {0} is on-chain with another root or report hash than closed here: investigate before anything else")]
    OnChainConflict(u64),
    #[error("gave up on epoch {epoch} after {attempts} attempts: {last}")]
    GaveUp { epoch: u64, attempts: u32, last: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Posted now, by this transaction.
    Posted { signature: String },
    /// Found on-chain (an earlier attempt landed) and recorded.
    Recovered,
    /// Recorded as posted before.
    AlreadyPosted,
}

const ATTEMPTS: u32 = 5;

/// The program's configuration; `NoConfig` where the program is not initialized.
pub async fn read_config(chain: &dyn Chain) -> Result<Config, RelayError> {
    ovpp_chain::accounts::config(chain).await?.ok_or(RelayError::NoConfig)
}

/// An oracle closes or co-signs epochs only with the scoring rules governance set (when it
/// set any): a report under other rules would be refused by the holders' decision.
pub fn check_rules(governed: Option<[u8; 32]>, rules: &ovpp_wire::score::ScoringRules) -> Result<(), String> {
    match governed {
        Some(hash) if hash != rules.hash() => Err(format!(
            "governance requires scoring rules {} but this oracle runs {} (--scoring-rules)",
            hex::encode(hash),
            hex::encode(rules.hash())
        )),
        _ => Ok(()),
    }
}

/// If `record`'s epoch is on-chain, records it (checking it is the same epoch).
async fn recover(chain: &dyn Chain, store: &Store, record: &EpochRecord) -> Result<bool, RelayError> {
    let Some(on_chain) = ovpp_chain::accounts::posted_epoch(chain, record.epoch).await? else { return Ok(false) };
    if on_chain.root != record.root || on_chain.report_hash != record.report_hash || on_chain.cumulative_total != record.cumulative_total {
        return Err(RelayError::OnChainConflict(record.epoch));
    }
    store.mark_epoch_posted(record.epoch, None, on_chain.posted_at).await?;
    Ok(true)
}

/// Posts epoch `epoch` (closed in `store`, with enough signatures collected), paid by `payer`.
pub async fn relay_epoch(chain: &dyn Chain, store: &Store, payer: &Keypair, epoch: u64) -> Result<Relayed, RelayError> {
    let record = store.epoch(epoch).await?.ok_or(RelayError::NotClosed(epoch))?;
    if record.posted_at.is_some() {
        return Ok(Relayed::AlreadyPosted);
    }
    let mut backoff = Duration::from_millis(200);
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        if recover(chain, store, &record).await? {
            return Ok(Relayed::Recovered);
        }
        let config = read_config(chain).await?;
        if config.last_epoch.checked_add(1) != Some(epoch) {
            return Err(RelayError::NotNext { epoch, last_posted: config.last_epoch });
        }
        let args = crate::epoch::record_args(&record);
        let message = ovpp::client::epoch_message_for(&args);
        // Valid signatures by current oracle-set members, as many as the threshold needs
        // (each one more costs transaction bytes).
        let need = usize::from(config.threshold);
        let signatures: Vec<([u8; 32], [u8; 64])> = store
            .epoch_signatures(epoch)
            .await?
            .into_iter()
            .filter(|(signer, signature)| {
                config.oracles.iter().any(|o| o.to_bytes() == *signer) && crate::epoch::signature_valid(&message, signer, signature)
            })
            .take(need.max(1).min(usize::from(MAX_THRESHOLD)))
            .collect();
        if signatures.len() < need {
            return Err(RelayError::NotEnoughSignatures { epoch, have: signatures.len(), need });
        }
        let instructions = ovpp::client::post_epoch(payer.pubkey(), args, &signatures).ok_or(RelayError::NotEnoughSignatures {
            epoch,
            have: signatures.len(),
            need,
        })?;
        let blockhash = chain.latest_blockhash().await?;
        let transaction = Transaction::new_signed_with_payer(&instructions, Some(&payer.pubkey()), &[payer], blockhash);
        let signature = transaction.signatures[0].to_string();
        tracing::info!(epoch, %signature, "posting epoch");
        match chain.send_transaction(&transaction).await {
            Ok(()) => {
                // The chain's time of posting (the `Epoch` account's clock), not this host's;
                // this host's only if the account cannot be read back yet.
                let at = ovpp_chain::accounts::posted_epoch(chain, epoch).await.ok().flatten().map_or_else(unix_now, |e| e.posted_at);
                store.mark_epoch_posted(epoch, Some(&signature), at).await?;
                return Ok(Relayed::Posted { signature });
            }
            // It may still have landed (e.g. a resend of an attempt that did): look again.
            Err(ChainError::Rejected(failure)) => {
                if recover(chain, store, &record).await? {
                    return Ok(Relayed::Recovered);
                }
                return Err(RelayError::Chain(ChainError::Rejected(failure)));
            }
            Err(e) => {
                tracing::warn!(epoch, error = %e, "posting did not confirm; checking the chain and retrying with a fresh blockhash");
                last = e.to_string();
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    Err(RelayError::GaveUp { epoch, attempts: ATTEMPTS, last })
}

/// Brings the chain up to date with the store: every closed epoch not recorded as posted
/// is either found on-chain and recorded (an earlier run posted it and died), or posted,
/// in order. Stops at the first epoch that cannot go out yet (e.g. missing signatures).
pub async fn relay_pending(chain: &dyn Chain, store: &Store, payer: &Keypair) -> Result<Vec<(u64, Relayed)>, RelayError> {
    let last_posted = read_config(chain).await?.last_epoch;
    let mut done = Vec::new();
    for epoch in store.unposted_epochs().await? {
        if epoch <= last_posted {
            let record = store.epoch(epoch).await?.ok_or(RelayError::NotClosed(epoch))?;
            if !recover(chain, store, &record).await? {
                return Err(RelayError::OnChainConflict(epoch));
            }
            done.push((epoch, Relayed::Recovered));
        } else {
            done.push((epoch, relay_epoch(chain, store, payer, epoch).await?));
        }
    }
    Ok(done)
}
