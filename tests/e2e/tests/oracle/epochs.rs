//! Epochs end to end on the program-test chain: a simulated fleet's telemetry reaches two
//! oracles; the primary closes each epoch and signs; the co-signer recomputes the published
//! report from its own telemetry and signs only on equality; the relayer posts with 2 of
//! the 3 oracle keys; owners claim exactly what the reports say. Plus the relayer's crash
//! safety and the co-signer's refusal of tampered reports.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use ovpp_chain::bank::BanksChain;
use ovpp_chain::{Chain, ChainAccount, ChainError, Filter};
use ovpp_oracle::epoch::{self, ClosedEpoch, EpochError, EpochSettings, EpochSpec};
use ovpp_oracle::relay::{self, Relayed};
use ovpp_program_tests::{TestChain, EPOCH_LENGTH_SECS};
use ovpp_simulator::{Fleet, Sender};
use ovpp_wire::clock::unix_now;
use ovpp_wire::score::ScoringRules;
use serde_json::Value;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

use crate::{start_oracle, Oracle};

const EPOCH: i64 = EPOCH_LENGTH_SECS as i64;
const EMISSION: u64 = 10_000 * 1_000_000; // 10k OVPP per epoch

fn settings() -> EpochSettings {
    EpochSettings { emission: EMISSION, rules: ScoringRules::default(), close_grace_secs: 60 }
}

fn oracle_key(k: &Keypair) -> SigningKey {
    SigningKey::from_bytes(k.secret_bytes())
}

pub struct Network {
    pub chain: TestChain,
    pub fleet: Fleet,
    pub owners: Vec<Keypair>,
    /// Device key -> its owner's index.
    pub owner_of: HashMap<[u8; 32], usize>,
    pub primary: Oracle,
    pub cosigner: Oracle,
    /// A chain connection that has seen every device account (as an RPC node's index has).
    pub view: Arc<BanksChain>,
}

/// A chain whose epoch schedule started three epochs ago, 14 simulated devices (two of
/// every kind) registered by two owners, and two oracles.
pub async fn network(name: &str) -> Network {
    network_since(name, 3).await
}

/// `network`, its epoch schedule started `epochs_ago` epochs ago.
pub async fn network_since(name: &str, epochs_ago: i64) -> Network {
    let mut chain = TestChain::initialized_since(3, 2, epochs_ago * EPOCH).await;
    let owners = vec![chain.new_owner().await, chain.new_owner().await];
    let fleet = Fleet::new(14, 9, 48.1, 11.6);
    let mut owner_of = HashMap::new();
    for (i, device) in fleet.devices.iter().enumerate() {
        let device_key = Keypair::new_from_array(device.key.to_bytes());
        let owner = &owners[i % 2];
        let ix = ovpp::client::register_device(owner.pubkey(), device_key.pubkey(), device.profile.kind, device.params());
        chain.send(&[ix], &[owner, &device_key]).await.expect("register_device");
        owner_of.insert(device.device_key(), i % 2);
    }
    let primary = start_oracle(&chain, &format!("{name}-primary")).await;
    let cosigner = start_oracle(&chain, &format!("{name}-cosigner")).await;
    for oracle in [&primary, &cosigner] {
        let keys: Vec<_> = fleet.devices.iter().map(|d| d.device_key()).collect();
        oracle.state.registry.resolve(&keys).await.unwrap();
    }
    let view = Arc::new(BanksChain::new(chain.ctx.banks_client.clone()));
    let addresses: Vec<Pubkey> =
        fleet.devices.iter().map(|d| ovpp::protocol::device_address(&Pubkey::new_from_array(d.device_key())).0).collect();
    view.get_accounts(&addresses).await.unwrap();
    Network { chain, fleet, owners, owner_of, primary, cosigner, view }
}

impl Network {
    /// Sends the fleet's telemetry for `[from, to)` to both oracles, 5-minute intervals.
    pub async fn telemetry(&mut self, from: i64, to: i64) {
        let senders = [Sender::new(&self.primary.base), Sender::new(&self.cosigner.base)];
        let mut t = from;
        while t < to {
            let batches = self.fleet.tick(t, 300);
            for sender in &senders {
                let sent = sender.send(&batches).await.unwrap();
                assert_eq!((sent.accepted, sent.rejected), (batches.len() as u64, 0), "{:?}", sent.reasons);
            }
            t += 300;
        }
    }

    pub async fn spec(&mut self, epoch: u64) -> EpochSpec {
        EpochSpec::from_config(&self.chain.config().await, epoch, EMISSION).unwrap()
    }

    /// The primary closes `epoch` (the next one, due), stores it and signs with oracle key 0.
    pub async fn close(&mut self, epoch: u64) -> ClosedEpoch {
        let config = self.chain.config().await;
        let state = &self.primary.state;
        let closed = epoch::close_due(&state.store, &state.ingestor, &config, &settings(), &state.registry.all().await, unix_now())
            .await
            .unwrap()
            .expect("the epoch is due");
        assert_eq!(closed.header.epoch, epoch);
        let signer = oracle_key(&self.chain.oracles[0]);
        state.store.add_epoch_signature(epoch, &signer.verifying_key().to_bytes(), &closed.sign(&signer)).await.unwrap();
        closed
    }

    /// The co-signer fetches the published report, recomputes it from its own telemetry,
    /// and hands its signature (oracle key 1) to the primary.
    pub async fn cosign(&mut self, epoch: u64) -> Result<ClosedEpoch, EpochError> {
        let report = self.primary.http.get(format!("{}/v1/epochs/{epoch}/report", self.primary.base)).send().await.unwrap();
        assert_eq!(report.status(), 200);
        let report = report.bytes().await.unwrap();
        self.cosign_report(&report).await
    }

    pub async fn cosign_report(&mut self, report: &[u8]) -> Result<ClosedEpoch, EpochError> {
        let config = self.chain.config().await;
        let state = &self.cosigner.state;
        let registry = state.registry.all().await;
        let mine = epoch::cosign(&state.store, &state.ingestor, report, &config, &settings(), &registry, unix_now()).await?;
        let signer = oracle_key(&self.chain.oracles[1]);
        let body = serde_json::json!({
            "signer": bs58::encode(signer.verifying_key().to_bytes()).into_string(),
            "signature": bs58::encode(mine.sign(&signer)).into_string(),
        });
        let url = format!("{}/v1/epochs/{}/signatures", self.primary.base, mine.header.epoch);
        let answer = self.primary.http.post(url).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        Ok(mine)
    }

    /// The epoch job of `oracle` co-signing for the primary with oracle key `key` (its key
    /// files in a temporary directory, returned for removal).
    fn cosigner_job(&self, name: &str, key: usize, oracle: &Oracle) -> (ovpp_oracle::epoch_job::EpochJob, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ovpp-{name}-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join(format!("o{key}.json"));
        solana_sdk::signature::write_keypair_file(&self.chain.oracles[key], &key_file).unwrap();
        let payer_file = dir.join("payer.json");
        solana_sdk::signature::write_keypair_file(&self.chain.payer(), &payer_file).unwrap();
        let role = ovpp_oracle::config::EpochRole {
            close: false,
            cosign_for: Some(self.primary.base.clone()),
            relay: false,
            keypair: payer_file,
            oracle_keypair: key_file,
            settings: settings(),
            poll: std::time::Duration::from_secs(1),
            auto_claim_owners: vec![],
        };
        (ovpp_oracle::epoch_job::EpochJob::new(self.view.clone(), oracle.state.clone(), role).unwrap(), dir)
    }

    fn banks(&self) -> BanksChain {
        BanksChain::new(self.chain.ctx.banks_client.clone())
    }
}

#[tokio::test]
async fn two_epochs_closed_cosigned_relayed_and_claimed_exactly() {
    let mut net = network("e2e").await;
    let start = net.spec(1).await.start_ts;
    net.telemetry(start, start + 2 * EPOCH).await;

    let mut reports = Vec::new();
    for epoch in 1..=2 {
        let closed = net.close(epoch).await;
        let mine = net.cosign(epoch).await.expect("the co-signer agrees");
        assert_eq!((mine.report.clone(), mine.root), (closed.report.clone(), closed.root), "independent closes are identical");
        let relayed = relay::relay_pending(&net.banks(), &net.primary.state.store, &net.chain.payer()).await.unwrap();
        assert!(matches!(relayed.as_slice(), [(e, Relayed::Posted { .. })] if *e == epoch), "{relayed:?}");
        let on_chain = ovpp_chain::accounts::posted_epoch(&net.banks(), epoch).await.unwrap().expect("epoch account");
        assert_eq!((on_chain.root, on_chain.report_hash), (closed.root, closed.report_hash));
        assert_eq!(on_chain.signers.len(), 2, "2 of 3 oracle signatures");
        assert!(closed.header.cumulative_total - closed.header.previous_cumulative_total <= EMISSION);
        reports.push(closed);
    }
    let config = net.chain.config().await;
    assert_eq!((config.last_epoch, config.cumulative_total), (2, reports[1].header.cumulative_total));
    let metrics = net.primary.http.get(format!("{}/metrics", net.primary.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ovpp_epoch_last_closed 2\n") && metrics.contains("ovpp_epoch_last_posted 2\n"), "{metrics}");

    // What the reports say each owner's devices earned, epoch by epoch.
    let mut expected = [0u64; 2];
    for line in reports.iter().flat_map(|r| &r.lines) {
        let mut key = [0u8; 32];
        bs58::decode(&line.device_key).onto(&mut key).unwrap();
        expected[net.owner_of[&key]] += line.amount;
    }
    assert!(expected.iter().all(|&e| e > 0), "both owners earned: {expected:?}");

    // Each device claims once, with the proof the oracle serves for the latest epoch.
    let devices: Vec<[u8; 32]> = net.fleet.devices.iter().map(|d| d.device_key()).collect();
    for key in devices {
        let device = bs58::encode(key).into_string();
        let body: Value =
            net.primary.http.get(format!("{}/v1/rewards/{device}", net.primary.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["epoch"], 2, "{body}");
        let leaf: ovpp::protocol::RewardLeaf = serde_json::from_value(body["leaf"].clone()).unwrap();
        let proof: Vec<[u8; 32]> =
            body["proof"].as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect();
        if leaf.cumulative_amount == 0 {
            continue; // nothing to claim (e.g. a meter below the minimum quality)
        }
        let owner = net.owners[net.owner_of[&key]].pubkey();
        net.chain.claim(&Pubkey::new_from_array(key), owner, leaf, proof).await.expect("claim");
    }
    for (i, owner) in net.owners.iter().enumerate() {
        let owner = owner.pubkey();
        assert_eq!(net.chain.ovpp_balance(&owner).await, expected[i], "owner {i} holds exactly what the reports say");
    }
}

#[tokio::test]
async fn the_cosigner_refuses_any_tampered_report() {
    let mut net = network("tamper").await;
    let start = net.spec(1).await.start_ts;
    net.telemetry(start, start + EPOCH).await;
    let closed = net.close(1).await;
    // One flipped bit at a spread of positions: header, numbers, keys, hashes, newlines.
    let len = closed.report.len();
    for position in (0..len).step_by(len / 97 + 1).chain([len - 1]) {
        let mut tampered = closed.report.clone();
        tampered[position] ^= 0x01;
        match net.cosign_report(&tampered).await {
            Err(EpochError::ReportMismatch { .. } | EpochError::MalformedReport(_) | EpochError::SpecMismatch { .. }) => {}
            Err(EpochError::NotNextToClose { .. } | EpochError::NotScheduled(_)) => {}
            other => panic!("byte {position} changed, the co-signer answered {:?}", other.map(|c| c.root)),
        }
    }
    assert!(net.primary.state.store.epoch_signatures(1).await.unwrap().len() == 1, "no co-signature was handed in");
    // The untouched report is signed.
    net.cosign_report(&closed.report).await.expect("the true report");
}

/// A chain that sends transactions and then never answers: the relayer process "dies"
/// after its transaction reached the chain and before it could record it.
struct DiesAfterSending(BanksChain);

#[async_trait]
impl Chain for DiesAfterSending {
    async fn get_accounts(&self, keys: &[Pubkey]) -> Result<Vec<Option<ChainAccount>>, ChainError> {
        self.0.get_accounts(keys).await
    }
    async fn scan(&self, program: &Pubkey, filters: &[Filter]) -> Result<Vec<(Pubkey, ChainAccount)>, ChainError> {
        self.0.scan(program, filters).await
    }
    async fn latest_blockhash(&self) -> Result<Hash, ChainError> {
        self.0.latest_blockhash().await
    }
    async fn send_transaction(&self, transaction: &Transaction) -> Result<(), ChainError> {
        self.0.send_transaction(transaction).await?;
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_relayer_killed_at_any_step_resumes_to_exactly_one_posted_epoch() {
    let mut net = network("crash").await;
    let start = net.spec(1).await.start_ts;
    net.telemetry(start, start + 2 * EPOCH).await;

    // Killed between signing and posting: epoch 1 is closed and signed, nothing sent. The
    // restarted relayer posts it once.
    net.close(1).await;
    net.cosign(1).await.unwrap();
    let store = net.primary.state.store.clone();
    assert_eq!(store.epoch(1).await.unwrap().unwrap().posted_at, None);
    let relayed = relay::relay_pending(&net.banks(), &store, &net.chain.payer()).await.unwrap();
    assert!(matches!(relayed.as_slice(), [(1, Relayed::Posted { .. })]), "{relayed:?}");

    // Killed between posting and recording: epoch 2's transaction lands, the relayer never
    // hears back (its future is dropped, as a killed process would be).
    net.close(2).await;
    net.cosign(2).await.unwrap();
    let dying = DiesAfterSending(net.banks());
    let payer = net.chain.payer();
    let killed = tokio::time::timeout(std::time::Duration::from_secs(5), relay::relay_epoch(&dying, &store, &payer, 2)).await;
    assert!(killed.is_err(), "the relayer was cut off");
    assert_eq!(store.epoch(2).await.unwrap().unwrap().posted_at, None, "not recorded");
    assert_eq!(net.chain.config().await.last_epoch, 2, "but posted");

    // Restarted: it finds epoch 2 on-chain, records it, and posts nothing again.
    let relayed = relay::relay_pending(&net.banks(), &store, &payer).await.unwrap();
    assert!(matches!(relayed.as_slice(), [(2, Relayed::Recovered)]), "{relayed:?}");
    assert!(store.epoch(2).await.unwrap().unwrap().posted_at.is_some());
    assert_eq!(relay::relay_epoch(&net.banks(), &store, &payer, 2).await.unwrap(), Relayed::AlreadyPosted);
    assert_eq!(relay::relay_pending(&net.banks(), &store, &payer).await.unwrap(), vec![]);
    let config = net.chain.config().await;
    assert_eq!((config.last_epoch, config.cumulative_total), (2, store.epoch(2).await.unwrap().unwrap().cumulative_total));
}

#[tokio::test]
async fn closing_twice_gives_the_same_bytes_and_signature() {
    let mut net = network("determinism").await;
    let spec = net.spec(1).await;
    // The last ten minutes of the epoch arrive only after it was closed.
    net.telemetry(spec.start_ts, spec.end_ts - 600).await;
    let first = net.close(1).await;
    let state = &net.primary.state;
    let again = epoch::close(&state.store, &spec, &ScoringRules::default(), &state.registry.all().await, None).await.unwrap();
    let key = oracle_key(&net.chain.oracles[0]);
    assert_eq!((&first.report, first.root, first.report_hash), (&again.report, again.root, again.report_hash));
    assert_eq!(first.sign(&key), again.sign(&key));
    // Saving the same close again is a no-op; another result for a closed epoch is refused.
    state.store.save_epoch(&again, 1).await.unwrap();
    let other = EpochSpec { emission: EMISSION / 2, ..spec };
    let different = epoch::close(&state.store, &other, &ScoringRules::default(), &state.registry.all().await, None).await.unwrap();
    assert!(state.store.save_epoch(&different, 2).await.is_err());
    // Late telemetry for the closed epoch is refused, so the published report stays true.
    let late = net.fleet.tick(spec.end_ts - 600, 300);
    let sent = Sender::new(&net.primary.base).send(&late).await.unwrap();
    assert_eq!(sent.reasons.get("epoch_closed"), Some(&(late.len() as u64)), "{sent:?}");

    // An independent implementation of SCORING.md (Python, standard library only) recomputes
    // the report from the report alone and agrees to the byte; an amount moved by one base
    // unit is caught.
    let verify = |report: &[u8], name: &str| {
        let path = std::env::temp_dir().join(format!("ovpp-report-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&path, report).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../oracle/tools/verify_report.py");
        let out = std::process::Command::new("python3").arg(script).arg(&path).arg("--previous-total").arg("0").output().expect("python3");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(first.lines.iter().any(|l| l.amount > 0), "the epoch paid someone");
    let (ok, stdout, stderr) = verify(&first.report, "good");
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&hex::encode(first.report_hash)), "{stdout}");
    let text = String::from_utf8(first.report.clone()).unwrap();
    let paid = first.lines.iter().find(|l| l.amount > 0).unwrap();
    let tampered = text.replacen(&format!("\"amount\":{}", paid.amount), &format!("\"amount\":{}", paid.amount + 1), 1);
    let (ok, _, stderr) = verify(tampered.as_bytes(), "tampered");
    assert!(!ok && stderr.contains("amount"), "{stderr}");
}

/// The path `ovpp-oracle serve` runs: the primary's epoch job closes, signs and relays;
/// the co-signer's job recomputes the published report and hands its signature in; the
/// relayer posts and cranks the claims of the owner who opted in.
#[tokio::test]
async fn the_running_oracles_close_cosign_relay_and_auto_claim() {
    use ovpp_oracle::config::EpochRole;
    use ovpp_oracle::epoch_job::EpochJob;

    let mut net = network("job").await;
    let spec = net.spec(1).await;
    net.telemetry(spec.start_ts, spec.end_ts).await;
    let dir = std::env::temp_dir().join(format!("ovpp-job-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, key: &Keypair| {
        let path = dir.join(name);
        solana_sdk::signature::write_keypair_file(key, &path).unwrap();
        path
    };
    let payer = write("payer.json", &net.chain.payer());
    let role = |oracle: &str, key: &Keypair| EpochRole {
        close: false,
        cosign_for: None,
        relay: false,
        keypair: payer.clone(),
        oracle_keypair: write(oracle, key),
        settings: settings(),
        poll: std::time::Duration::from_secs(1),
        auto_claim_owners: vec![],
    };
    let banks = || -> Arc<dyn Chain> { Arc::new(BanksChain::new(net.chain.ctx.banks_client.clone())) };
    let primary_role =
        EpochRole { close: true, relay: true, auto_claim_owners: vec![net.owners[0].pubkey()], ..role("o0.json", &net.chain.oracles[0]) };
    let cosigner_role = EpochRole { cosign_for: Some(net.primary.base.clone()), ..role("o1.json", &net.chain.oracles[1]) };
    let primary = EpochJob::new(banks(), net.primary.state.clone(), primary_role).unwrap();
    let cosigner = EpochJob::new(banks(), net.cosigner.state.clone(), cosigner_role).unwrap();

    primary.step().await.unwrap(); // closes and signs; one signature of two: waits
    assert_eq!(net.chain.config().await.last_epoch, 0);
    cosigner.step().await.unwrap(); // recomputes, signs, hands in
    primary.step().await.unwrap(); // posts, then claims for owner 0
    assert_eq!(net.chain.config().await.last_epoch, 1);

    let report = net.primary.state.store.epoch_report(1).await.unwrap().unwrap();
    let mut earned = [0u64; 2];
    for line in report.lines().skip(1) {
        let line: ovpp_wire::report::ReportLine = serde_json::from_str(line).unwrap();
        let mut key = [0u8; 32];
        bs58::decode(&line.device_key).onto(&mut key).unwrap();
        earned[net.owner_of[&key]] += line.amount;
    }
    assert!(earned[0] > 0);
    assert_eq!(net.chain.ovpp_balance(&net.owners[0].pubkey()).await, earned[0], "owner 0 opted in: claimed for them");
    assert_eq!(net.chain.ovpp_balance(&net.owners[1].pubkey()).await, 0, "owner 1 did not opt in");
    // Another step changes nothing.
    primary.step().await.unwrap();
    assert_eq!(net.chain.ovpp_balance(&net.owners[0].pubkey()).await, earned[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report names the last batch it used per device: a co-signer that received a batch
/// after the primary closed still signs (it leaves that batch out too), but one that had
/// data in time which the report leaves out refuses.
#[tokio::test]
async fn a_cosigner_holds_the_primary_to_the_data_it_had_in_time() {
    let mut net = network("cutoff").await;
    let spec = net.spec(1).await;
    net.telemetry(spec.start_ts, spec.end_ts - 300).await;
    let closed = net.close(1).await;
    // The epoch's last interval reaches only the co-signer, after the primary closed.
    let late = net.fleet.tick(spec.end_ts - 300, 300);
    let sent = Sender::new(&net.cosigner.base).send(&late).await.unwrap();
    assert_eq!(sent.accepted, late.len() as u64);

    let config = net.chain.config().await;
    let state = &net.cosigner.state;
    let registry = state.registry.all().await;
    // Had the deadline been later (a long grace), that batch would have been in time, and
    // a report without it leaves out data: refused.
    let patient = EpochSettings { close_grace_secs: 100 * EPOCH, ..settings() };
    match epoch::cosign(&state.store, &state.ingestor, &closed.report, &config, &patient, &registry, unix_now()).await {
        Err(EpochError::OmitsTimelyData { .. }) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|c| c.root)),
    }
    // With the network's grace the batch came late: left out on both sides, same report.
    let mine = epoch::cosign(&state.store, &state.ingestor, &closed.report, &config, &settings(), &registry, unix_now()).await.unwrap();
    assert_eq!((mine.report, mine.root), (closed.report.clone(), closed.root));
}

/// An oracle that joins after epoch 1 was posted (or lost its database) starts from the
/// posted epoch, checked against the chain, and co-signs the next one; a report that is not
/// the posted one is refused.
#[tokio::test]
async fn a_late_oracle_joins_from_the_posted_epoch() {
    let mut net = network("late").await;
    let first = net.spec(1).await;
    net.telemetry(first.start_ts, first.end_ts).await;
    net.close(1).await;
    net.cosign(1).await.unwrap();
    relay::relay_pending(net.view.as_ref(), &net.primary.state.store, &net.chain.payer()).await.unwrap();

    // The newcomer: oracle key 2, an empty database, the fleet's telemetry from epoch 2 on.
    let late = crate::start_oracle(&net.chain, "late-newcomer").await;
    let keys: Vec<_> = net.fleet.devices.iter().map(|d| d.device_key()).collect();
    late.state.registry.resolve(&keys).await.unwrap();
    let second = net.spec(2).await;
    let mut t = second.start_ts;
    while t < second.end_ts {
        let batches = net.fleet.tick(t, 300);
        for base in [&net.primary.base, &net.cosigner.base, &late.base] {
            let sent = Sender::new(base).send(&batches).await.unwrap();
            assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);
        }
        t += 300;
    }
    let closed = net.close(2).await;

    // A report that is not the posted one is refused.
    let on_chain = ovpp_chain::accounts::posted_epoch(net.view.as_ref(), 1).await.unwrap().unwrap();
    let mut forged = net.primary.state.store.epoch_report(1).await.unwrap().unwrap().into_bytes();
    let at = forged.len() - 10;
    forged[at] ^= 1;
    match epoch::import_posted(&late.state.store, &forged, &on_chain, unix_now()).await {
        Err(EpochError::NotThePostedReport { epoch: 1 } | EpochError::MalformedReport(_)) => {}
        other => panic!("a forged report was taken: {:?}", other.map(|c| c.root)),
    }

    let (job, dir) = net.cosigner_job("late", 2, &late);
    job.step().await.unwrap();

    let imported = late.state.store.epoch(1).await.unwrap().expect("epoch 1 imported");
    assert!(imported.posted_at.is_some());
    assert_eq!(late.state.store.epoch(2).await.unwrap().expect("epoch 2 co-signed").root, closed.root);
    let signers = net.primary.state.store.epoch_signatures(2).await.unwrap();
    assert!(signers.iter().any(|(s, _)| *s == net.chain.oracles[2].pubkey().to_bytes()), "the newcomer's signature was handed in");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A co-signer that was down for part of an epoch which the others posted without it takes
/// the posted report (checked against the chain) instead of refusing its own partial
/// recomputation for ever, and co-signs the next epoch, which it saw whole.
#[tokio::test]
async fn a_cosigner_behind_the_chain_catches_up_and_cosigns_the_next_epoch() {
    let mut net = network_since("behind", 4).await;
    let first = net.spec(1).await;
    net.telemetry(first.start_ts, first.end_ts).await;
    net.close(1).await;
    net.cosign(1).await.unwrap();
    relay::relay_pending(net.view.as_ref(), &net.primary.state.store, &net.chain.payer()).await.unwrap();

    // Epoch 2: the co-signer is down for its first half; the third oracle signs with the primary.
    let second = net.spec(2).await;
    let middle = second.start_ts + (second.end_ts - second.start_ts) / 2 / 300 * 300;
    let mut t = second.start_ts;
    while t < second.end_ts {
        let batches = net.fleet.tick(t, 300);
        let to: &[&String] = if t < middle { &[&net.primary.base] } else { &[&net.primary.base, &net.cosigner.base] };
        for base in to {
            assert_eq!(Sender::new(base).send(&batches).await.unwrap().rejected, 0);
        }
        t += 300;
    }
    let closed = net.close(2).await;
    let third_oracle = oracle_key(&net.chain.oracles[2]);
    net.primary.state.store.add_epoch_signature(2, &third_oracle.verifying_key().to_bytes(), &closed.sign(&third_oracle)).await.unwrap();
    relay::relay_pending(net.view.as_ref(), &net.primary.state.store, &net.chain.payer()).await.unwrap();
    assert_eq!(net.chain.config().await.last_epoch, 2);
    assert!(net.cosign(2).await.is_err(), "its own recomputation of epoch 2 differs");

    // Epoch 3, whole on both.
    let third = net.spec(3).await;
    net.telemetry(third.start_ts, third.end_ts).await;
    let closed = net.close(3).await;

    let (job, dir) = net.cosigner_job("behind", 1, &net.cosigner);
    job.step().await.unwrap(); // takes the posted epoch 2
    let imported = net.cosigner.state.store.epoch(2).await.unwrap().expect("epoch 2 imported");
    assert!(imported.posted_at.is_some());
    job.step().await.unwrap(); // co-signs epoch 3
    assert_eq!(net.cosigner.state.store.epoch(3).await.unwrap().expect("epoch 3 co-signed").root, closed.root);
    let signers = net.primary.state.store.epoch_signatures(3).await.unwrap();
    assert!(signers.iter().any(|(s, _)| *s == net.chain.oracles[1].pubkey().to_bytes()), "its signature was handed in");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Holders vote a scoring-rules hash; an oracle running other rules refuses to close or
/// co-sign, one running the voted rules goes on. Here the network still governs with rules
/// v1: the new default (v2) is refused until a vote moves it, the shipped v1 file goes on.
#[tokio::test]
async fn oracles_follow_the_scoring_rules_governance_chose() {
    use ovpp::state::{GovernanceChange, GovernanceParams};
    let mut chain = TestChain::initialized(1, 1).await;
    let banks = BanksChain::new(chain.ctx.banks_client.clone());
    assert_eq!(ovpp_chain::accounts::governed_rules_hash(&banks).await.unwrap(), None, "no governance: the oracle's own rules");
    let authority = chain.authority.insecure_clone();
    let params =
        GovernanceParams { voting_period_secs: 3600, timelock_secs: 0, quorum_bps: 1_000, approval_bps: 5_000, min_proposal_power: 1 };
    chain.send(&[ovpp::client::init_governance(authority.pubkey(), params, None)], &[&authority]).await.unwrap();
    let holder = chain.new_owner().await;
    chain.give_ovpp(&holder.pubkey(), 1_000_000);
    chain.send(&[ovpp::client::lock(holder.pubkey(), 1_000_000, 30 * 86_400)], &[&holder]).await.unwrap();
    let v1_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../oracle/scoring-rules-v1.toml");
    let v1 = ovpp_oracle::config::load_rules(Some(std::path::Path::new(v1_file))).unwrap();
    assert_eq!(v1, ScoringRules::v1(), "the shipped v1 file is rules v1");
    let change = GovernanceChange::ScoringRulesHash { hash: v1.hash() };
    chain.send(&[ovpp::client::propose(holder.pubkey(), 0, change, [0; 32])], &[&holder]).await.unwrap();
    chain.send(&[ovpp::client::vote(holder.pubkey(), 0, true)], &[&holder]).await.unwrap();
    chain.advance_time(3601).await;
    chain.send(&[ovpp::client::execute(holder.pubkey(), 0, None)], &[&holder]).await.unwrap();
    let governed = ovpp_chain::accounts::governed_rules_hash(&banks).await.unwrap();
    assert_eq!(governed, Some(v1.hash()));
    let refused = relay::check_rules(governed, &ScoringRules::default()).unwrap_err();
    assert!(refused.contains("governance requires scoring rules"), "{refused}");
    relay::check_rules(governed, &v1).expect("the voted rules");
}
