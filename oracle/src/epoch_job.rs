//! The epoch work of a running oracle, one step per poll: close and sign (primary), or
//! recompute the primary's report and hand in a signature (co-signer); post what has
//! enough signatures (relayer); then crank claims for owners who opted in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anchor_lang::prelude::Pubkey;
use anyhow::{anyhow, Context};
use ed25519_dalek::SigningKey;
use ovpp::state::Config;
use solana_sdk::instruction::InstructionError;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, TransactionError};

use crate::config::EpochRole;
use crate::epoch::{self, EpochTree};
use crate::relay::{self, RelayError, Relayed};
use crate::server::AppState;
use ovpp_chain::{Chain, ChainError};
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::RegisteredDevice;
use ovpp_wire::http::{EpochSignature, EpochView};

pub struct EpochJob {
    chain: Arc<dyn Chain>,
    state: AppState,
    role: EpochRole,
    oracle: SigningKey,
    payer: Keypair,
    http: reqwest::Client,
    /// Latest epoch whose auto-claims were cranked.
    auto_claimed: AtomicU64,
    /// Whether this oracle's key was in the on-chain oracle set at the last step (so that a
    /// change is said once, not every poll).
    in_oracle_set: std::sync::atomic::AtomicBool,
}

impl EpochJob {
    pub fn new(chain: Arc<dyn Chain>, state: AppState, role: EpochRole) -> anyhow::Result<Self> {
        let payer = ovpp_chain::keypair::read_keypair(&role.keypair)?;
        let oracle = SigningKey::from_bytes(ovpp_chain::keypair::read_keypair(&role.oracle_keypair)?.secret_bytes());
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        Ok(Self { chain, state, role, oracle, payer, http, auto_claimed: AtomicU64::new(0), in_oracle_set: true.into() })
    }

    pub fn oracle_key(&self) -> Pubkey {
        Pubkey::new_from_array(self.oracle.verifying_key().to_bytes())
    }

    /// Runs `step` every poll period, forever; a failed step is logged and retried.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(self.role.poll);
        loop {
            ticker.tick().await;
            // Of the processes sharing a database, only the leader closes, signs and relays.
            if !self.state.leader.is_leader() {
                continue;
            }
            if let Err(e) = self.step().await {
                tracing::warn!(error = %format!("{e:#}"), "epoch step failed; retrying next poll");
            }
        }
    }

    pub async fn step(&self) -> anyhow::Result<()> {
        let config = relay::read_config(self.chain.as_ref()).await?;
        if self.role.close || self.role.cosign_for.is_some() {
            let member = config.oracles.contains(&self.oracle_key());
            if self.in_oracle_set.swap(member, Ordering::Relaxed) != member {
                match member {
                    false => tracing::warn!(
                        oracle = %self.oracle_key(),
                        "this oracle's key is not in the on-chain oracle set: its epoch signatures will not count until the authority or governance adds it (ovpp admin set-oracles / ovpp gov propose oracle-set)"
                    ),
                    true => {
                        tracing::info!(oracle = %self.oracle_key(), "this oracle's key is in the on-chain oracle set: its epoch signatures count")
                    }
                }
            }
        }
        let registry = self.state.registry.all().await;
        if self.role.close || self.role.cosign_for.is_some() {
            let governed = ovpp_chain::accounts::governed_rules_hash(self.chain.as_ref()).await?;
            relay::check_rules(governed, &self.role.settings.rules).map_err(|e| anyhow::anyhow!(e))?;
        }
        if let Some(primary) = &self.role.cosign_for {
            self.cosign_step(primary, &config, &registry).await?;
        } else if self.role.close {
            self.close_step(&config, &registry).await?;
        }
        if self.role.relay {
            match relay::relay_pending(self.chain.as_ref(), &self.state.store, &self.payer).await {
                Ok(done) => {
                    for (epoch, outcome) in done {
                        tracing::info!(epoch, ?outcome, "epoch on-chain");
                    }
                }
                Err(RelayError::NotEnoughSignatures { epoch, have, need }) => {
                    tracing::info!(epoch, have, need, "waiting for co-signatures");
                }
                Err(RelayError::Chain(ChainError::Rejected(TransactionError::InstructionError(_, InstructionError::Custom(code)))))
                    if code == u32::from(ovpp::errors::OvppError::EpochNotEnded) =>
                {
                    tracing::info!("the chain's clock has not reached the epoch's end yet; posting next poll");
                }
                Err(e) => return Err(e.into()),
            }
            if !self.role.auto_claim_owners.is_empty() {
                self.auto_claim(&registry).await?;
            }
        }
        Ok(())
    }

    async fn close_step(&self, config: &Config, registry: &[RegisteredDevice]) -> anyhow::Result<()> {
        let state = &self.state;
        let now = unix_now();
        self.sign_latest_if_missing().await?;
        if let Some(closed) = epoch::close_due(&state.store, &state.ingestor, config, &self.role.settings, registry, now).await? {
            let signature = closed.sign(&self.oracle);
            state.store.add_epoch_signature(closed.header.epoch, &self.oracle.verifying_key().to_bytes(), &signature).await?;
            tracing::info!(
                epoch = closed.header.epoch,
                leaves = closed.header.leaf_count,
                minted = closed.header.cumulative_total - closed.header.previous_cumulative_total,
                root = %hex::encode(closed.root),
                "epoch closed and signed"
            );
        }
        Ok(())
    }

    async fn cosign_step(&self, primary: &str, config: &Config, registry: &[RegisteredDevice]) -> anyhow::Result<()> {
        let primary = primary.trim_end_matches('/');
        let state = &self.state;
        self.sign_latest_if_missing().await?;
        // Hand in the signature of the latest co-signed epoch again if the primary lacks it
        // (it was down when we signed).
        if let Some(latest) = state.store.epochs(1).await?.into_iter().next() {
            self.hand_in(primary, latest.epoch).await?;
        }
        let next = match epoch::next_epoch(&state.store, config).await {
            Ok(next) => next,
            // Joining a running network (or after losing the database): start from the
            // latest posted epoch, as published by the primary and checked against the chain.
            Err(epoch::EpochError::PreviousNotClosed(_, last)) => {
                self.import_from(primary, last).await?;
                last + 1
            }
            Err(e) => return Err(e.into()),
        };
        if config.last_epoch >= next {
            // Posted without this oracle (before it joined the set, or while it was behind):
            // nothing to sign, and recomputing it from a partial copy of the telemetry would
            // differ for ever. Take the posted report, checked against the chain, and go on.
            return self.import_from(primary, next).await;
        }
        let spec = epoch::EpochSpec::from_config(config, next, self.role.settings.emission).ok_or(epoch::EpochError::NotScheduled(next))?;
        if unix_now() < spec.end_ts.saturating_add(self.role.settings.close_grace_secs) {
            return Ok(());
        }
        let response = self.http.get(format!("{primary}/v1/epochs/{next}/report")).send().await.context("fetching the primary's report")?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(()); // not closed there yet
        }
        let report = response.error_for_status().context("fetching the primary's report")?.bytes().await?;
        // Demand response credited in the epoch: re-measured here from the primary's events
        // and commands, with this oracle's own readings.
        // Signed with this oracle's key: the records name every device's commands.
        let path = format!("/v1/events/records?credited_from={}&credited_to={}", spec.start_ts, spec.end_ts);
        let signed = ovpp_wire::auth::authorization(&self.oracle, "GET", &path, unix_now(), b"");
        let records: Vec<crate::dispatch::EventRecord> = self
            .http
            .get(format!("{primary}{path}"))
            .header(reqwest::header::AUTHORIZATION, signed)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .context("fetching the primary's event records")?
            .json()
            .await
            .context("reading the primary's event records")?;
        for record in &records {
            state.dispatch.remeasure(record, unix_now()).await.with_context(|| format!("re-measuring event {}", record.event.id))?;
        }
        let mine = epoch::cosign(&state.store, &state.ingestor, &report, config, &self.role.settings, registry, unix_now())
            .await
            .with_context(|| format!("refusing to co-sign epoch {next}"))?;
        let signature = mine.sign(&self.oracle);
        state.store.add_epoch_signature(next, &self.oracle.verifying_key().to_bytes(), &signature).await?;
        tracing::info!(epoch = next, root = %hex::encode(mine.root), "recomputed the primary's report: identical; signed");
        self.hand_in(primary, next).await
    }

    /// Imports posted epoch `epoch` from the oracle at `base` (verified against the chain).
    pub async fn import_from(&self, base: &str, epoch: u64) -> anyhow::Result<()> {
        let on_chain = ovpp_chain::accounts::posted_epoch(self.chain.as_ref(), epoch)
            .await?
            .ok_or_else(|| anyhow!("epoch {epoch} is not posted on-chain"))?;
        let report = self
            .http
            .get(format!("{}/v1/epochs/{epoch}/report", base.trim_end_matches('/')))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        epoch::import_posted(&self.state.store, &report, &on_chain, unix_now()).await?;
        self.state.ingestor.close_until(on_chain_end(&relay::read_config(self.chain.as_ref()).await?, epoch)).await?;
        tracing::info!(epoch, "imported the posted epoch from {base} (checked against the chain)");
        Ok(())
    }

    /// An oracle that stopped between storing an epoch and signing it signs it now (the
    /// stored epoch is one it computed, or recomputed and found identical).
    async fn sign_latest_if_missing(&self) -> anyhow::Result<()> {
        let store = &self.state.store;
        // Only an epoch still to be posted needs signatures (an imported one is posted).
        let Some(latest) = store.epochs(1).await?.into_iter().next().filter(|e| e.posted_at.is_none()) else { return Ok(()) };
        let me = self.oracle.verifying_key().to_bytes();
        if !store.epoch_signatures(latest.epoch).await?.iter().any(|(signer, _)| *signer == me) {
            let message = ovpp::client::epoch_message_for(&epoch::record_args(&latest));
            let signature = ed25519_dalek::Signer::sign(&self.oracle, &message).to_bytes();
            store.add_epoch_signature(latest.epoch, &me, &signature).await?;
            tracing::info!(epoch = latest.epoch, "signed a stored epoch left unsigned by a restart");
        }
        Ok(())
    }

    /// Posts this oracle's signature for `epoch` to the primary unless it has it already.
    async fn hand_in(&self, primary: &str, epoch: u64) -> anyhow::Result<()> {
        let me = bs58::encode(self.oracle.verifying_key().to_bytes()).into_string();
        let Some((_, signature)) =
            self.state.store.epoch_signatures(epoch).await?.into_iter().find(|(s, _)| bs58::encode(s).into_string() == me)
        else {
            return Ok(());
        };
        let status: EpochView = self.http.get(format!("{primary}/v1/epochs/{epoch}")).send().await?.error_for_status()?.json().await?;
        let has = status.signatures.iter().flatten().any(|s| s.signer == me);
        if !has {
            let body = EpochSignature { signer: me, signature: bs58::encode(signature).into_string() };
            let answer = self.http.post(format!("{primary}/v1/epochs/{epoch}/signatures")).json(&body).send().await?;
            if !answer.status().is_success() {
                return Err(anyhow!("the primary refused our signature for epoch {epoch}: {}", answer.text().await.unwrap_or_default()));
            }
        }
        Ok(())
    }

    /// Claims for the opted-in owners' devices once per newly posted epoch.
    async fn auto_claim(&self, registry: &[RegisteredDevice]) -> anyhow::Result<()> {
        let store = &self.state.store;
        let Some(latest) = store.epochs(1000).await?.into_iter().find(|e| e.posted_at.is_some()) else { return Ok(()) };
        if self.auto_claimed.load(Ordering::Relaxed) >= latest.epoch {
            return Ok(());
        }
        let tree = EpochTree::new(latest.epoch, store.epoch_leaves(latest.epoch).await?);
        let theirs: Vec<RegisteredDevice> = registry.iter().filter(|d| self.role.auto_claim_owners.contains(&d.owner)).cloned().collect();
        let due = crate::claims::due(self.chain.as_ref(), &tree, &theirs, self.payer.pubkey()).await?;
        // Many at a time: each waits for its confirmation, and one by one a fleet's claims
        // would take longer than an epoch.
        let (mut claims, mut total) = (0u64, 0u64);
        for batch in due.chunks(AUTO_CLAIMS_IN_FLIGHT) {
            let blockhash = self.chain.latest_blockhash().await?;
            let mut sends = tokio::task::JoinSet::new();
            for claim in batch {
                let tx = Transaction::new_signed_with_payer(
                    std::slice::from_ref(&claim.instruction),
                    Some(&self.payer.pubkey()),
                    &[&self.payer],
                    blockhash,
                );
                let (chain, key, amount) = (self.chain.clone(), claim.device, claim.amount);
                sends.spawn(async move { (key, amount, chain.send_transaction(&tx).await) });
            }
            while let Some(sent) = sends.join_next().await {
                match sent? {
                    (key, amount, Ok(())) => {
                        tracing::debug!(device = %key, amount, "auto-claimed");
                        claims += 1;
                        total += amount;
                    }
                    (key, _, Err(e)) => tracing::warn!(device = %key, error = %e, "auto-claim failed"),
                }
            }
        }
        if claims > 0 {
            tracing::info!(epoch = latest.epoch, claims, ovpp = %ovpp_chain::amount::format_ovpp(total), "auto-claimed for the owners who opted in");
        }
        self.auto_claimed.store(latest.epoch, Ordering::Relaxed);
        Ok(())
    }
}

/// Claim transactions sent at once by the auto-claim crank.
const AUTO_CLAIMS_IN_FLIGHT: usize = 16;

/// The end of posted epoch `epoch` on the chain's schedule (for the ingest cut-off).
fn on_chain_end(config: &Config, epoch: u64) -> i64 {
    config.epoch_end_ts(epoch).unwrap_or(i64::MIN)
}

/// What a one-shot command reports.
pub fn describe(outcome: &Relayed) -> String {
    match outcome {
        Relayed::Posted { signature } => format!("posted ({signature})"),
        Relayed::Recovered => "found on-chain, recorded".into(),
        Relayed::AlreadyPosted => "already posted".into(),
    }
}
