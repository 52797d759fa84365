//! The local network end to end, for a short bounded time with a small fleet: devices
//! registered on-chain by their owners, readings accepted, epochs posted, an owner's claim
//! through the CLI over JSON-RPC raising their balance by exactly the reports' amounts, and
//! a restart continuing from the saved state.

use std::collections::BTreeMap;
use std::time::Duration;

use ovpp_chain::{Chain, RpcChain};
use ovpp_localnet::{self as localnet, LocalnetArgs};
use serde_json::Value;
use solana_sdk::signature::{read_keypair_file, Signer};

use crate::free_port;

async fn cli(args: &[&str]) -> Value {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = ovpp_cli::main_with(std::iter::once("ovpp").chain(args.iter().copied()), None, &mut stdout, &mut stderr).await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&stderr));
    serde_json::from_slice(&stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_network_runs_pays_and_continues_after_a_restart() {
    let args = crate::test_localnet("localnet-test", 14, 2, 15, 30);
    let (dir, rpc_port, api_port) = (args.state_dir.clone(), args.rpc_port, args.api_port);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let network = tokio::spawn(localnet::run(args.clone(), async {
        let _ = stopped.await;
    }));
    let rpc = format!("http://127.0.0.1:{rpc_port}");
    let api = format!("http://127.0.0.1:{api_port}");

    // Wait for the two backfilled epochs to be posted.
    let chain = RpcChain::with_commitment(rpc.clone(), solana_commitment_config::CommitmentConfig::confirmed());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if ovpp_oracle::relay::read_config(&chain).await.is_ok_and(|c| c.last_epoch >= 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline && !network.is_finished(), "no epoch posted in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The fleet is on-chain, and its telemetry was accepted.
    let devices = cli(&["-u", &rpc, "device", "list", "--output", "json"]).await;
    assert_eq!(devices.as_array().unwrap().len(), 14);
    let metrics = reqwest::get(format!("{api}/metrics")).await.unwrap().text().await.unwrap();
    let readings: u64 =
        metrics.lines().find_map(|l| l.strip_prefix("ovpp_ingest_readings_accepted_total ")).and_then(|n| n.parse().ok()).unwrap();
    assert!(readings >= 14 * 12, "two epochs of readings: {readings}");
    // The live fleet runs through the gateway: every device registered, its readings stored.
    let gateway = format!("http://127.0.0.1:{}/v1/status", args.gateway_port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = reqwest::get(&gateway).await.unwrap().json().await.unwrap();
        let devices = status["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 14, "{status}");
        if devices.iter().all(|d| d["registered"] == true) && status["readings_stored"].as_u64().unwrap() >= 14 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the gateway's devices did not reach the oracle: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Owner 0 claims by hand; each device gets what the published reports say it earned
    // through the epoch its claim was for, and the balance is their sum.
    let owner_file = localnet::owner_keypair_path(&dir, 0).display().to_string();
    let owner = read_keypair_file(&owner_file).unwrap().pubkey();
    let claimed = cli(&["-u", &rpc, "-k", &owner_file, "--oracle-url", &api, "rewards", "claim", "--all", "--output", "json"]).await;
    let claims = claimed["claims"].as_array().unwrap();
    assert!(!claims.is_empty());
    let mut reports: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut total = 0u64;
    for claim in claims {
        let device = claim["device_key"].as_str().unwrap();
        let epoch = claim["epoch"].as_u64().unwrap();
        let mut earned = 0u64;
        for n in 1..=epoch {
            if let std::collections::btree_map::Entry::Vacant(slot) = reports.entry(n) {
                let text = reqwest::get(format!("{api}/v1/epochs/{n}/report")).await.unwrap().text().await.unwrap();
                slot.insert(text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect());
            }
            earned += reports[&n].iter().filter(|l| l["device_key"] == device).map(|l| l["amount"].as_u64().unwrap()).sum::<u64>();
        }
        let amount = ovpp_cli::units::parse_ovpp(claim["amount"].as_str().unwrap()).unwrap();
        assert_eq!(amount, earned, "device {device}: claimed what the reports say");
        total += amount;
    }
    let token_account = chain.get_account(&ovpp::client::owner_token_account(&owner)).await.unwrap().expect("owner's OVPP account");
    use anchor_spl::token_2022::spl_token_2022::extension::StateWithExtensions;
    use anchor_spl::token_2022::spl_token_2022::state::Account as TokenAccount;
    let balance = StateWithExtensions::<TokenAccount>::unpack(&token_account.data).unwrap().base.amount;
    assert_eq!(balance, total, "the balance is exactly the reports' amounts");

    // The demand-response event was dispatched to the fleet and measured.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let event = loop {
        let events: Value = reqwest::get(format!("{api}/v1/events")).await.unwrap().json().await.unwrap();
        let measured = events.as_array().unwrap().iter().find(|e| e["type"] == "DISPATCH_SETPOINT" && e.get("report").is_some()).cloned();
        if let Some(event) = measured {
            break event;
        }
        assert!(tokio::time::Instant::now() < deadline && !network.is_finished(), "the event was not measured in time: {events}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let id = event["id"].as_str().unwrap();
    // Who delivered what is for the grid operator (the local network's token).
    let token = std::fs::read_to_string(dir.join("grid-token")).unwrap();
    let report = format!("{api}/v1/events/{id}/report");
    let full: Value = reqwest::Client::new().get(&report).bearer_auth(token.trim()).send().await.unwrap().json().await.unwrap();
    let full = &full;
    assert!(full["commanded_wh"].as_u64().unwrap() > 0, "{full}");
    assert!(full["delivered_wh"].as_i64().unwrap() > 0, "{full}");
    assert!(full["devices"].as_array().unwrap().iter().all(|d| d["baseline"] != "NONE"), "{full}");
    // The same event through the OpenADR 3 VTN, as the local network's business-logic client.
    let secret = std::fs::read_to_string(dir.join("openadr-bl-secret")).unwrap();
    let http = reqwest::Client::new();
    let form = [("grant_type", "client_credentials"), ("client_id", "localnet-utility"), ("client_secret", secret.trim())];
    let token: Value = http.post(format!("{api}/openadr3/auth/token")).form(&form).send().await.unwrap().json().await.unwrap();
    let access = token["access_token"].as_str().expect("a token");
    let listed: Value = http.get(format!("{api}/openadr3/events/{id}")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["objectType"], "EVENT", "{listed}");
    let measured: Value =
        http.get(format!("{api}/openadr3/reports/mv-{id}")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(measured["eventID"].as_str(), Some(id), "{measured}");

    // Stop; the state is saved; a restart continues with the same chain.
    stop.send(()).unwrap();
    let report = network.await.unwrap().unwrap();
    assert_eq!(report.event_id.as_deref(), Some(id));
    assert!(report.event_report.is_some());
    assert!(report.price_commands > 0, "the cheap-price window scheduled storage");
    assert_eq!(report.devices_registered, 14);
    assert!(report.last_epoch >= 2);
    assert!(dir.join("chain-accounts.jsonl").exists());
    // A run whose saved chain is older than the oracle's database refuses to start, so
    // `run` returning Ok is part of the check.
    let again = localnet::run(
        // A port pair: the chain's PubSub listens on the port after its JSON-RPC.
        LocalnetArgs { rpc_port: crate::free_port_pair(), api_port: free_port(), gateway_port: free_port(), for_secs: Some(2), ..args },
        std::future::pending(),
    )
    .await
    .unwrap();
    // The same chain: epochs and claims as they were, not a new one re-initialized ...
    assert!(again.last_epoch >= report.last_epoch && again.total_claimed >= report.total_claimed, "{again:?}");
    // ... and the oracle goes on from it: its last closed epoch is the chain's (or the one
    // after, closed but not yet posted).
    let store = ovpp_oracle::store::Store::open(&format!("sqlite://{}", dir.join("oracle.db").display())).await.unwrap();
    let last = store.epochs(1).await.unwrap().remove(0).epoch;
    assert!(last == again.last_epoch || last == again.last_epoch + 1, "oracle at {last}, chain at {}", again.last_epoch);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
