//! The `ovpp` CLI driven as a user would (arguments in, output and exit code out) against
//! the program-test chain, and claiming with proofs from a running oracle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ovpp_chain::bank::BanksChain;
use ovpp_chain::Chain;
use ovpp_program_tests::TestChain;
use serde_json::Value;
use solana_sdk::signature::{Keypair, Signer};

use crate::epochs::network;

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Succeeded (any output).
    pub(crate) fn json_or_text(&self) {
        assert_eq!(self.code, 0, "stdout: {} stderr: {}", self.stdout, self.stderr);
    }

    fn fails_with(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "stdout: {} stderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.contains(text), "expected {text:?} in: {}", self.stderr);
    }
}

pub(crate) async fn ovpp(chain: &Arc<dyn Chain>, args: &[&str]) -> Run {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let args = std::iter::once("ovpp").chain(args.iter().copied());
    let code = ovpp_cli::main_with(args, Some(chain.clone()), &mut stdout, &mut stderr).await;
    Run { code, stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap() }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ovpp-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn keypair_file(dir: &Path, name: &str, key: &Keypair) -> String {
    let path = dir.join(name);
    solana_sdk::signature::write_keypair_file(key, &path).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn an_owner_manages_a_device_through_the_cli() {
    let mut test_chain = TestChain::initialized(1, 1).await;
    let chain: Arc<dyn Chain> = Arc::new(BanksChain::new(test_chain.ctx.banks_client.clone()));
    let dir = temp_dir("owner");
    let alice = test_chain.new_owner().await;
    let bob = test_chain.new_owner().await;
    let alice_file = keypair_file(&dir, "alice.json", &alice);
    let bob_file = keypair_file(&dir, "bob.json", &bob);
    let device_file = dir.join("battery.json").display().to_string();

    // keygen: a Solana keypair file, for the owner's eyes only.
    let key = ovpp(&chain, &["device", "keygen", "-o", &device_file, "--output", "json"]).await.json();
    let device = key["device_key"].as_str().unwrap().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&device_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(ovpp_cli::read_keypair(Path::new(&device_file)).unwrap().pubkey().to_string(), device);
    ovpp(&chain, &["device", "keygen", "-o", &device_file]).await.fails_with(1, "exists; pass --force");

    // Bad input is refused before anything is sent, with the reason.
    let register = |kind: &'static str, power: &'static str, capacity: &'static str| {
        vec![
            "-k",
            &alice_file,
            "device",
            "register",
            "--device-keypair",
            &device_file,
            "--kind",
            kind,
            "--power",
            power,
            "--capacity",
            capacity,
            "--region",
            "DE-BY",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let chain = chain.clone();
        async move { ovpp(&chain, &args.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    run(register("toaster", "5kW", "13.5kWh")).await.fails_with(2, "invalid value 'toaster'");
    run(register("home-battery", "-5", "13.5kWh")).await.fails_with(2, "power cannot be negative");
    // Limits with their numbers and units, and no unitless powers.
    run(register("home-battery", "5kW", "0"))
        .await
        .fails_with(1, "a home battery needs an energy capacity between 1 kWh and 100 kWh, not 0 Wh");
    run(register("home-battery", "50kW", "13.5kWh"))
        .await
        .fails_with(1, "a home battery needs a rated power between 500 W and 30 kW, not 50 kW");
    run(register("smart-meter", "5kW", "10kWh")).await.fails_with(1, "a smart meter needs no energy capacity");
    run(register("home-battery", "5", "13.5kWh")).await.fails_with(2, "power 5 needs a unit: 5W, 5kW or 5MW");
    let mut missing = register("home-battery", "5kW", "13.5kWh");
    missing[1] = "/nonexistent/id.json".into();
    run(missing).await.fails_with(1, "cannot read keypair /nonexistent/id.json");

    // Register, show, list.
    let mut args = register("home-battery", "5kW", "13.5kWh");
    args.extend(["--output".into(), "json".into()]);
    let registered = run(args).await.json();
    assert_eq!(registered["device_key"], device.as_str());
    let shown = ovpp(&chain, &["device", "show", &device, "--output", "json"]).await.json();
    assert_eq!(
        (shown["kind"].as_str(), shown["rated_power_w"].as_u64(), shown["energy_capacity_wh"].as_u64()),
        (Some("home_battery"), Some(5_000), Some(13_500))
    );
    assert_eq!(shown["owner"], alice.pubkey().to_string().as_str());
    let mine = ovpp(&chain, &["-k", &alice_file, "device", "list", "--owner", "me", "--output", "json"]).await.json();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let evs = ovpp(&chain, &["device", "list", "--kind", "ev", "--output", "json"]).await.json();
    assert_eq!(evs.as_array().unwrap().len(), 0);
    // Region codes in any case.
    let display = ovpp(&chain, &["device", "list", "--region", "de-by"]).await;
    assert!(display.stdout.contains(&device) && display.stdout.contains("1 device(s)"), "{}", display.stdout);

    // Someone else's device key: Bob cannot register Alice's device again.
    let mut again = register("home-battery", "5kW", "13.5kWh");
    again[1] = bob_file.clone();
    run(again).await.fails_with(1, "already registered");

    // Update, then transfer to Bob: Alice can no longer change it.
    ovpp(&chain, &["-k", &alice_file, "device", "update", &device, "--power", "6kW"]).await.json_or_display_ok();
    assert_eq!(ovpp(&chain, &["device", "show", &device, "--output", "json"]).await.json()["rated_power_w"], 6_000);
    // An update that changes nothing is not sent.
    ovpp(&chain, &["-k", &alice_file, "device", "update", &device, "--power", "6kW"]).await.fails_with(1, "nothing to change");
    // A transfer is confirmed, after the unclaimed OVPP is shown (here the oracle cannot be
    // asked, and the prompt says so); a transfer to the owner is refused here.
    let unreachable = ["--oracle-url", "http://127.0.0.1:9"];
    let transfer = |owner: String, yes: bool| {
        let mut args = vec!["-k".to_string(), alice_file.clone(), "device".into(), "transfer".into(), device.clone(), owner];
        args.extend(unreachable.iter().map(|a| a.to_string()));
        if yes {
            args.push("--yes".into());
        }
        args
    };
    let prompt = run(transfer(bob.pubkey().to_string(), false)).await;
    prompt.fails_with(1, "pass --yes");
    assert!(prompt.stderr.contains("Unclaimed OVPP of") && prompt.stderr.contains("127.0.0.1:9"), "{}", prompt.stderr);
    run(transfer(alice.pubkey().to_string(), true)).await.fails_with(1, "is already owned by");
    run(transfer(bob.pubkey().to_string(), true)).await.json_or_display_ok();
    ovpp(&chain, &["-k", &alice_file, "device", "update", &device, "--power", "4kW"]).await.fails_with(1, "is owned by");

    // Retire: final, so it must be confirmed; a retired device cannot claim.
    ovpp(&chain, &["-k", &bob_file, "device", "retire", &device, "--oracle-url", "http://127.0.0.1:9"]).await.fails_with(1, "pass --yes");
    ovpp(&chain, &["-k", &bob_file, "device", "retire", &device, "--yes"]).await.json_or_display_ok();
    assert_eq!(ovpp(&chain, &["device", "show", &device, "--output", "json"]).await.json()["status"], "retired");
    ovpp(&chain, &["-k", &bob_file, "rewards", "claim", &device]).await.fails_with(1, "is retired: it cannot claim");
    // A retired device has no dispatch preferences.
    ovpp(&chain, &["device", "preferences", "--device-keypair", &device_file]).await.fails_with(1, "is retired: it takes no dispatch");
    // Errors for scripts: the oracle's error shape on stderr, the exit code as always.
    let failed = ovpp(&chain, &["-k", &bob_file, "rewards", "claim", &device, "--output", "json"]).await;
    assert_eq!(failed.code, 1);
    let error: Value = serde_json::from_str(failed.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {}", failed.stderr));
    assert_eq!(error["error"]["code"], "invalid");
    assert!(error["error"]["message"].as_str().unwrap().contains("is retired"), "{error}");
    // ... also when the command line itself does not parse (clap's exit code, 2).
    for (args, named) in [
        (&["device", "lst", "--output", "json"][..], "lst"),
        (&["device", "list", "--kind", "toaster", "--output=json-compact"][..], "toaster"),
    ] {
        let failed = ovpp(&chain, args).await;
        assert_eq!(failed.code, 2, "{}", failed.stderr);
        let error: Value = serde_json::from_str(failed.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {}", failed.stderr));
        assert_eq!(error["error"]["code"], "usage");
        assert!(error["error"]["message"].as_str().unwrap().contains(named), "{error}");
    }
    ovpp(&chain, &["device", "lst"]).await.fails_with(2, "unrecognized subcommand");
    ovpp(&chain, &["-k", &bob_file, "device", "update", &device, "--power", "4kW"]).await.fails_with(1, "DeviceRetired");
    let _ = std::fs::remove_dir_all(&dir);
}

impl Run {
    fn json_or_display_ok(&self) {
        assert_eq!(self.code, 0, "stdout: {} stderr: {}", self.stdout, self.stderr);
        assert!(self.stdout.contains("Signature: "), "{}", self.stdout);
    }
}

#[tokio::test]
async fn owners_see_and_claim_their_rewards_with_the_oracles_proofs() {
    let mut net = network("cli-claim").await;
    let spec = net.spec(1).await;
    net.telemetry(spec.start_ts, spec.end_ts).await;
    let closed = net.close(1).await;
    net.cosign(1).await.unwrap();
    ovpp_oracle::relay::relay_pending(net.view.as_ref(), &net.primary.state.store, &net.chain.payer()).await.unwrap();
    let chain: Arc<dyn Chain> = net.view.clone();
    let dir = temp_dir("claim");
    let owner_file = keypair_file(&dir, "owner0.json", &net.owners[0]);
    let oracle = net.primary.base.clone();

    let earned: u64 = closed
        .lines
        .iter()
        .filter(|l| {
            let mut key = [0u8; 32];
            bs58::decode(&l.device_key).onto(&mut key).unwrap();
            net.owner_of[&key] == 0
        })
        .map(|l| l.amount)
        .sum();
    assert!(earned > 0);

    let shown = ovpp(&chain, &["-k", &owner_file, "--oracle-url", &oracle, "rewards", "show", "--output", "json"]).await.json();
    let claimable: u64 =
        shown["devices"].as_array().unwrap().iter().map(|r| ovpp_cli::units::parse_ovpp(r["claimable"].as_str().unwrap()).unwrap()).sum();
    assert_eq!(claimable, earned);
    assert_eq!(ovpp_cli::units::parse_ovpp(shown["total"]["claimable"].as_str().unwrap()).unwrap(), earned);
    let table = ovpp(&chain, &["-k", &owner_file, "--oracle-url", &oracle, "rewards", "show"]).await;
    assert!(table.stdout.contains("TOTAL ("), "{}", table.stdout);

    // Someone else pays for one of owner 0's devices: the tokens go to owner 0, and the
    // output says so.
    let payer_file = keypair_file(&dir, "payer.json", &net.owners[1]);
    let claimable_of = |row: &Value| ovpp_cli::units::parse_ovpp(row["claimable"].as_str().unwrap()).unwrap();
    let row = shown["devices"].as_array().unwrap().iter().find(|r| claimable_of(r) > 0).expect("a device with OVPP to claim");
    let (first, first_claimable) = (row["device_key"].as_str().unwrap().to_string(), claimable_of(row));
    // The proof says which epoch it is from, and the chain's latest (the same here).
    let rewards: Value = reqwest::get(format!("{oracle}/v1/rewards/{first}")).await.unwrap().json().await.unwrap();
    assert_eq!((rewards["epoch"].as_u64(), rewards["chain_last_epoch"].as_u64()), (Some(1), Some(1)), "{rewards}");
    let by_other = ovpp(&chain, &["-k", &payer_file, "--oracle-url", &oracle, "rewards", "claim", &first]).await;
    assert_eq!(by_other.code, 0, "{}", by_other.stderr);
    let owner0 = net.owners[0].pubkey().to_string();
    assert!(by_other.stdout.contains(&format!("paid to its owner {owner0}, not to you")), "{}", by_other.stdout);
    assert!(
        by_other.stdout.contains(&format!("Balance of {owner0}: {} OVPP", ovpp_cli::units::format_ovpp(first_claimable))),
        "{}",
        by_other.stdout
    );

    let claimed = ovpp(&chain, &["-k", &owner_file, "--oracle-url", &oracle, "rewards", "claim", "--all", "--output", "json"]).await.json();
    let claims = claimed["claims"].as_array().unwrap();
    assert!(!claims.is_empty());
    let signatures: std::collections::BTreeSet<&str> = claims.iter().map(|c| c["signature"].as_str().unwrap()).collect();
    assert!(signatures.len() < claims.len(), "several claims share a transaction: {claimed}");
    assert_eq!(net.chain.ovpp_balance(&net.owners[0].pubkey()).await, earned);
    assert_eq!(ovpp_cli::units::parse_ovpp(claimed["total"].as_str().unwrap()).unwrap(), earned - first_claimable);
    assert_eq!(claimed["balances"][0]["ovpp"], ovpp_cli::units::format_ovpp(earned).as_str());
    let balance = ovpp(&chain, &["balance", &owner0, "--output", "json"]).await.json();
    assert_eq!(balance["ovpp"], ovpp_cli::units::format_ovpp(earned).as_str());
    assert!(balance["lamports"].as_u64().unwrap() > 0);

    // Claiming again has nothing to do; the network commands read the chain.
    let again = ovpp(&chain, &["-k", &owner_file, "--oracle-url", &oracle, "rewards", "claim", "--all"]).await;
    assert_eq!((again.code, again.stdout.trim()), (0, "Nothing to claim"));
    let epochs = ovpp(&chain, &["epoch", "list", "--output", "json"]).await.json();
    assert_eq!(epochs[0]["epoch"], 1);
    assert_eq!(epochs[0]["root"], hex::encode(closed.root).as_str());
    let config = ovpp(&chain, &["config", "show", "--output", "json"]).await.json();
    assert_eq!(config["last_epoch"], 1);
    assert_eq!(config["threshold"], 2);
    ovpp(&chain, &["epoch", "show", "7"]).await.fails_with(1, "epoch 7 is not posted");

    // Epoch 2 is posted without the co-signer (the primary and the third oracle sign): its
    // proofs, still from epoch 1, say so.
    let second = net.spec(2).await;
    net.telemetry(second.start_ts, second.end_ts).await;
    let closed = net.close(2).await;
    let third = ed25519_dalek::SigningKey::from_bytes(net.chain.oracles[2].secret_bytes());
    net.primary.state.store.add_epoch_signature(2, &third.verifying_key().to_bytes(), &closed.sign(&third)).await.unwrap();
    ovpp_oracle::relay::relay_pending(net.view.as_ref(), &net.primary.state.store, &net.chain.payer()).await.unwrap();
    let behind = ovpp(&chain, &["-k", &owner_file, "--oracle-url", &net.cosigner.base, "rewards", "show"]).await;
    assert_eq!(behind.code, 0, "{}", behind.stderr);
    assert!(behind.stdout.contains("the oracle's latest proofs are from epoch 1; the chain has posted up to epoch 2"), "{}", behind.stdout);
    let current = ovpp(&chain, &["-k", &owner_file, "--oracle-url", &oracle, "rewards", "show"]).await;
    assert!(!current.stdout.contains("latest proofs are from"), "{}", current.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test path (the in-process bank), recording each transaction it sends.
struct Recording {
    inner: BanksChain,
    sent: tokio::sync::Mutex<Vec<Vec<u8>>>,
}

#[async_trait::async_trait]
impl Chain for Recording {
    async fn get_accounts(
        &self,
        keys: &[solana_sdk::pubkey::Pubkey],
    ) -> Result<Vec<Option<ovpp_chain::ChainAccount>>, ovpp_chain::ChainError> {
        self.inner.get_accounts(keys).await
    }
    async fn scan(
        &self,
        program: &solana_sdk::pubkey::Pubkey,
        filters: &[ovpp_chain::Filter],
    ) -> Result<Vec<(solana_sdk::pubkey::Pubkey, ovpp_chain::ChainAccount)>, ovpp_chain::ChainError> {
        self.inner.scan(program, filters).await
    }
    async fn latest_blockhash(&self) -> Result<solana_sdk::hash::Hash, ovpp_chain::ChainError> {
        self.inner.latest_blockhash().await
    }
    async fn send_transaction(&self, transaction: &solana_sdk::transaction::Transaction) -> Result<(), ovpp_chain::ChainError> {
        self.sent.lock().await.push(bincode::serialize(transaction).unwrap());
        self.inner.send_transaction(transaction).await
    }
}

/// The local chain (surfpool over LiteSVM, the program natively inside), initialized by its
/// upgrade authority over JSON-RPC, with `wallets` funded from its faucet.
async fn local_chain(authority: &Keypair, wallets: &[solana_sdk::pubkey::Pubkey]) -> (ovpp_localnet::chain::LocalChain, Arc<dyn Chain>) {
    let port = crate::free_port_pair();
    let setup = ovpp_localnet::chain::ChainSetup { rpc_port: port, upgrade_authority: authority.pubkey(), accounts: vec![] };
    let local = ovpp_localnet::chain::start(setup).await.unwrap();
    let rpc: Arc<dyn Chain> =
        Arc::new(ovpp_chain::RpcChain::with_commitment(local.rpc_url.clone(), solana_commitment_config::CommitmentConfig::confirmed()));
    for wallet in std::iter::once(&authority.pubkey()).chain(wallets) {
        rpc.request_airdrop(wallet, 10_000_000_000).await.unwrap();
    }
    let args = ovpp::instructions::InitializeArgs {
        oracles: vec![authority.pubkey()],
        threshold: 1,
        epoch_length_secs: 3600,
        emission_cap_per_epoch: 1_000_000_000,
        metadata_uri: String::new(),
    };
    let blockhash = rpc.latest_blockhash().await.unwrap();
    let tx = solana_sdk::transaction::Transaction::new_signed_with_payer(
        &[ovpp::client::initialize(authority.pubkey(), args)],
        Some(&authority.pubkey()),
        &[authority],
        blockhash,
    );
    rpc.send_transaction(&tx).await.unwrap();
    (local, rpc)
}

/// A confirmed transaction as the chain stored it (`getTransaction`, base64).
async fn stored_transaction(rpc_url: &str, signature: &str) -> Vec<u8> {
    let request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction",
        "params": [signature, {"encoding": "base64", "commitment": "confirmed"}]});
    let answer: Value = reqwest::Client::new().post(rpc_url).json(&request).send().await.unwrap().json().await.unwrap();
    let encoded = answer["result"]["transaction"][0].as_str().unwrap_or_else(|| panic!("getTransaction {signature}: {answer}"));
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap()
}

/// The CLI over real JSON-RPC (the local chain): the transactions it sends are byte for
/// byte those the test path builds, and reads work the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_rpc_path_sends_the_transactions_of_the_test_path() {
    let mut test_chain = TestChain::initialized(1, 1).await;
    let dir = temp_dir("rpc");
    let alice = test_chain.new_owner().await;
    let (local, _rpc) = local_chain(&test_chain.authority, &[alice.pubkey()]).await;
    let url = local.rpc_url.clone();
    let alice_file = keypair_file(&dir, "alice.json", &alice);
    let device = Keypair::new();
    let device_file = keypair_file(&dir, "device.json", &device);
    let recording = Arc::new(Recording { inner: BanksChain::new(test_chain.ctx.banks_client.clone()), sent: Default::default() });
    let test_path: Arc<dyn Chain> = recording.clone();

    let register = [
        "-k",
        &alice_file,
        "device",
        "register",
        "--device-keypair",
        &device_file,
        "--kind",
        "ev",
        "--power",
        "11kW",
        "--capacity",
        "77kWh",
        "--region",
        "DE-BW",
    ];
    let transfer_to = Keypair::new().pubkey().to_string();
    let transfer = ["-k", &alice_file, "device", "transfer", &device.pubkey().to_string(), &transfer_to, "--yes"];
    let mut rpc_sent = Vec::new();
    for command in [&register[..], &transfer[..]] {
        // The test path sends it to the bank (and records it) ...
        assert_eq!(ovpp(&test_path, command).await.code, 0);
        // ... and the JSON-RPC path to the local chain, which keeps what it got.
        let mut args = vec!["-u", &url, "--output", "json"];
        args.extend_from_slice(command);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = ovpp_cli::main_with(std::iter::once("ovpp").chain(args), None, &mut stdout, &mut stderr).await;
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&stderr));
        let sent: Value = serde_json::from_slice(&stdout).unwrap();
        rpc_sent.push(stored_transaction(&url, sent["signature"].as_str().unwrap()).await);
    }
    // Each path signed over its own chain's blockhash; everything else (instructions,
    // accounts, signers, order) is identical, and each transaction's signatures verify over
    // its own message.
    let normalized = |raw: &Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        raw.iter()
            .map(|bytes| {
                let tx: solana_sdk::transaction::Transaction = bincode::deserialize(bytes).unwrap();
                tx.verify().expect("signatures verify");
                let mut message = tx.message.clone();
                message.recent_blockhash = Default::default();
                message.serialize()
            })
            .collect()
    };

    let test_path_sent = recording.sent.lock().await.clone();
    assert_eq!(rpc_sent.len(), 2);
    assert_eq!(normalized(&test_path_sent), normalized(&rpc_sent), "the same transactions on both paths");

    // Reads over JSON-RPC: the device as registered and transferred, and listed by kind.
    let rpc = |args: Vec<String>| async move {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = ovpp_cli::main_with(std::iter::once("ovpp".to_string()).chain(args), None, &mut stdout, &mut stderr).await;
        Run { code, stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap() }
    };
    let shown =
        rpc(vec!["-u".into(), url.clone(), "device".into(), "show".into(), device.pubkey().to_string(), "--output".into(), "json".into()])
            .await
            .json();
    assert_eq!((shown["owner"].as_str(), shown["kind"].as_str()), (Some(transfer_to.as_str()), Some("ev")));
    let listed =
        rpc(vec!["-u".into(), url.clone(), "device".into(), "list".into(), "--kind".into(), "ev".into(), "--output".into(), "json".into()])
            .await
            .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // A program error over JSON-RPC is named as the program names it.
    let update = rpc(vec!["-u".into(), url.clone(), "-k".into(), alice_file.clone(), "admin".into(), "pause".into()]).await;
    update.fails_with(1, "NotAuthority");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An operator initializes the network and changes its parameters; others cannot.
#[tokio::test]
async fn an_operator_initializes_and_governs_through_the_cli() {
    let mut test_chain = TestChain::new(0).await;
    let chain: Arc<dyn Chain> = Arc::new(BanksChain::new(test_chain.ctx.banks_client.clone()));
    let dir = temp_dir("admin");
    let operator = keypair_file(&dir, "operator.json", &test_chain.authority);
    let (o1, o2, o3) = (Keypair::new().pubkey().to_string(), Keypair::new().pubkey().to_string(), Keypair::new().pubkey().to_string());
    let stranger = test_chain.new_owner().await;
    let stranger = keypair_file(&dir, "stranger.json", &stranger);

    // Parameters are checked locally with the program's rules.
    ovpp(&chain, &["-k", &operator, "admin", "init", "--oracle", &o1, "--threshold", "2", "--emission-cap", "1000"])
        .await
        .fails_with(1, "InvalidThreshold");
    ovpp(&chain, &["-k", &operator, "admin", "init", "--oracle", &o1, "--threshold", "1", "--emission-cap", "0"])
        .await
        .fails_with(1, "InvalidEmissionCap");
    // Only the upgrade authority initializes.
    ovpp(&chain, &["-k", &stranger, "admin", "init", "--oracle", &o1, "--threshold", "1", "--emission-cap", "1000"])
        .await
        .fails_with(1, "NotUpgradeAuthority");
    ovpp(
        &chain,
        &[
            "-k",
            &operator,
            "admin",
            "init",
            "--oracle",
            &o1,
            "--oracle",
            &o2,
            "--threshold",
            "2",
            "--epoch-length",
            "3600",
            "--emission-cap",
            "2500.5",
        ],
    )
    .await
    .json_or_display_ok();
    let config = ovpp(&chain, &["config", "show", "--output", "json"]).await.json();
    assert_eq!((config["threshold"].as_u64(), config["emission_cap_per_epoch"].as_str()), (Some(2), Some("2500.500000")));
    assert_eq!(config["authority"], test_chain.authority.pubkey().to_string().as_str());

    ovpp(&chain, &["-k", &operator, "admin", "set-oracles", "--oracle", &o1, "--oracle", &o2, "--oracle", &o3, "--threshold", "2"])
        .await
        .json_or_display_ok();
    ovpp(&chain, &["-k", &operator, "admin", "set-params", "--emission-cap", "10", "--epoch-length", "120"]).await.json_or_display_ok();
    ovpp(&chain, &["-k", &operator, "admin", "set-params"]).await.fails_with(1, "nothing to change");
    ovpp(&chain, &["-k", &stranger, "admin", "pause"]).await.fails_with(1, "NotAuthority");
    ovpp(&chain, &["-k", &operator, "admin", "pause"]).await.json_or_display_ok();
    let config = ovpp(&chain, &["config", "show", "--output", "json"]).await.json();
    assert_eq!((config["paused"].as_bool(), config["oracles"].as_array().map(Vec::len)), (Some(true), Some(3)));
    assert_eq!((config["epoch_length_secs"].as_u64(), config["emission_cap_per_epoch"].as_str()), (Some(120), Some("10.000000")));
    ovpp(&chain, &["-k", &operator, "admin", "unpause"]).await.json_or_display_ok();

    // Two-step hand-over: only the proposed key accepts.
    let successor = Keypair::new();
    test_chain.fund(&successor.pubkey(), 1_000_000_000).await;
    let successor_file = keypair_file(&dir, "successor.json", &successor);
    ovpp(&chain, &["-k", &operator, "admin", "propose-authority", &successor.pubkey().to_string()]).await.json_or_display_ok();
    ovpp(&chain, &["-k", &stranger, "admin", "accept-authority"]).await.fails_with(1, "NotPendingAuthority");
    ovpp(&chain, &["-k", &successor_file, "admin", "accept-authority"]).await.json_or_display_ok();
    let config = ovpp(&chain, &["config", "show", "--output", "json"]).await.json();
    assert_eq!(config["authority"], successor.pubkey().to_string().as_str());
    ovpp(&chain, &["-k", &operator, "admin", "pause"]).await.fails_with(1, "NotAuthority");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Governance through the CLI: the operator hands over, holders lock, propose, vote and
/// execute, and the chain's configuration changes; the usual mistakes are refused.
#[tokio::test]
async fn holders_govern_through_the_cli() {
    let mut test_chain = TestChain::initialized(1, 1).await;
    let chain: Arc<dyn Chain> = Arc::new(BanksChain::new(test_chain.ctx.banks_client.clone()));
    let dir = temp_dir("gov");
    let operator = keypair_file(&dir, "operator.json", &test_chain.authority.insecure_clone());
    let (alice, bob) = (test_chain.new_owner().await, test_chain.new_owner().await);
    test_chain.give_ovpp(&alice.pubkey(), 1_000_000_000);
    test_chain.give_ovpp(&bob.pubkey(), 500_000_000);
    let (alice_file, bob_file) = (keypair_file(&dir, "alice.json", &alice), keypair_file(&dir, "bob.json", &bob));

    let init =
        ["gov", "init", "--voting-period", "1d", "--timelock", "1d", "--quorum", "30", "--min-proposal-power", "100", "-k", &operator];
    // Out-of-bounds parameters are refused before anything is sent.
    ovpp(&chain, &["gov", "init", "--quorum", "0", "-k", &operator]).await.fails_with(1, "InvalidGovernanceParams");
    ovpp(&chain, &["gov", "init", "--approval", "40", "-k", &operator]).await.fails_with(1, "InvalidGovernanceParams");
    ovpp(&chain, &["gov", "init", "--quorum", "120", "-k", &operator]).await.fails_with(2, "percentage must be 0 to 100");
    ovpp(&chain, &init).await.json_or_text();
    ovpp(&chain, &["admin", "pause", "-k", &operator]).await.fails_with(1, "NotAuthority");

    ovpp(&chain, &["gov", "lock", "1000", "-k", &alice_file]).await.fails_with(1, "needs --for");
    ovpp(&chain, &["gov", "lock", "1000", "--for", "2y", "-k", &alice_file]).await.json_or_text();
    ovpp(&chain, &["gov", "lock", "500", "--for", "1y", "-k", &bob_file]).await.json_or_text();
    let me = ovpp(&chain, &["gov", "show", "-k", &alice_file, "--output", "json"]).await.json();
    assert_eq!(me["total_locked"], "1500.000000");
    assert_eq!(me["my_lock"]["amount"], "1000.000000");

    ovpp(&chain, &["gov", "propose", "emission-cap", "0", "-k", &alice_file]).await.fails_with(1, "InvalidEmissionCap");
    let proposed =
        ovpp(&chain, &["gov", "propose", "emission-cap", "5000", "--description", "halve", "-k", &alice_file, "--output", "json"])
            .await
            .json();
    assert_eq!(proposed["status"], "Proposal 0: emission cap 5000.000000 OVPP");
    ovpp(&chain, &["gov", "vote", "0", "--for", "-k", &alice_file]).await.json_or_text();
    ovpp(&chain, &["gov", "vote", "0", "--against", "-k", &bob_file]).await.json_or_text();
    ovpp(&chain, &["gov", "vote", "0", "--against", "-k", &alice_file]).await.fails_with(1, "AlreadyVoted");
    ovpp(&chain, &["gov", "execute", "0", "-k", &bob_file]).await.fails_with(1, "VotingNotEnded");
    ovpp(&chain, &["gov", "unlock", "-k", &bob_file]).await.fails_with(1, "the lock ends at");

    test_chain.advance_time(2 * 86_400 + 1).await;
    let list = ovpp(&chain, &["gov", "list", "--output", "json"]).await.json();
    assert_eq!(list[0]["status"], "executable", "{list}");
    ovpp(&chain, &["gov", "execute", "0", "-k", &bob_file]).await.json_or_text();
    let shown = ovpp(&chain, &["gov", "show", "0", "--output", "json"]).await.json();
    assert_eq!(shown["status"], "executed");
    assert_eq!(test_chain.config().await.emission_cap_per_epoch, 5_000_000_000);
}

/// A newcomer's first steps: a wallet from the CLI alone, its address and balance, what an
/// unfunded wallet is told, and an RPC endpoint that does not answer.
#[tokio::test]
async fn a_newcomer_makes_a_wallet_and_learns_what_it_needs() {
    let mut test_chain = TestChain::initialized(1, 1).await;
    let chain: Arc<dyn Chain> = Arc::new(BanksChain::new(test_chain.ctx.banks_client.clone()));
    let dir = temp_dir("newcomer");
    let wallet_file = dir.join("nested/id.json").display().to_string();
    let made = ovpp(&chain, &["wallet", "new", "-o", &wallet_file, "--output", "json"]).await.json();
    let wallet = made["wallet"].as_str().unwrap().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&wallet_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    ovpp(&chain, &["wallet", "new", "-o", &wallet_file]).await.fails_with(1, "exists; pass --force");
    let address = ovpp(&chain, &["-k", &wallet_file, "wallet", "address"]).await;
    assert_eq!((address.code, address.stdout.trim()), (0, wallet.as_str()));

    // Unfunded: the balance says so, and a transaction is refused with the fix.
    let empty = ovpp(&chain, &["-k", &wallet_file, "balance"]).await;
    assert!(empty.code == 0 && empty.stdout.contains("SOL:  0.000000000") && empty.stdout.contains("no SOL"), "{}", empty.stdout);
    let device_file = keypair_file(&dir, "device.json", &Keypair::new());
    let register = [
        "-k",
        &wallet_file,
        "device",
        "register",
        "--device-keypair",
        &device_file,
        "--kind",
        "home-battery",
        "--power",
        "5kW",
        "--capacity",
        "10kWh",
        "--region",
        "DE-BY",
    ];
    ovpp(&chain, &register).await.fails_with(1, &format!("wallet {wallet} has no SOL to pay the transaction fee"));
    test_chain.fund(&wallet.parse().unwrap(), 2_000_000_000).await;
    let funded = ovpp(&chain, &["balance", &wallet, "--output", "json"]).await.json();
    assert_eq!((funded["sol"].as_str(), funded["ovpp"].as_str()), (Some("2.000000000"), Some("0.000000")));
    ovpp(&chain, &register).await.json_or_display_ok();

    // No RPC endpoint there: the error names the URL (scheme optional, as with the Solana
    // CLI) and the flag that chooses it.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = ovpp_cli::main_with(["ovpp", "-u", "127.0.0.1:9", "config", "show"], None, &mut stdout, &mut stderr).await;
    let stderr = String::from_utf8(stderr).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:9") && stderr.contains("-u/--url"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ovpp airdrop` over JSON-RPC against the local chain's faucet: a new wallet gets SOL
/// without other tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_wallet_is_funded_by_airdrop_on_the_local_network() {
    let test_chain = TestChain::initialized(1, 1).await;
    let (local, _rpc) = local_chain(&Keypair::new(), &[]).await;
    let address = local.rpc_url.clone();
    let dir = temp_dir("airdrop");
    let wallet_file = dir.join("id.json").display().to_string();
    let over_rpc = |args: Vec<String>| async move {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = ovpp_cli::main_with(std::iter::once("ovpp".to_string()).chain(args), None, &mut stdout, &mut stderr).await;
        Run { code, stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap() }
    };
    let args =
        |rest: &[&str]| ["-u", address.as_str(), "-k", wallet_file.as_str()].iter().chain(rest).map(|s| s.to_string()).collect::<Vec<_>>();
    over_rpc(args(&["wallet", "new", "-o", &wallet_file])).await.json_or_text();
    let funded = over_rpc(args(&["airdrop", "1.5", "--output", "json"])).await.json();
    assert_eq!((funded["airdropped"].as_str(), funded["sol"].as_str()), (Some("1.500000000"), Some("1.500000000")));
    over_rpc(args(&["airdrop", "one"])).await.fails_with(1, "is not an amount of SOL");
    let balance = over_rpc(args(&["balance", "--output", "json"])).await.json();
    assert_eq!(balance["sol"], "1.500000000");
    // The in-process bank has no faucet, and says so.
    let chain: Arc<dyn Chain> = Arc::new(BanksChain::new(test_chain.ctx.banks_client.clone()));
    ovpp(&chain, &["-k", &wallet_file, "airdrop", "1"]).await.fails_with(1, "has no faucet");
    let _ = std::fs::remove_dir_all(&dir);
}
