//! Two oracle services sharing one PostgreSQL database, as two `serve` processes behind a
//! load balancer (here in this test process, each with its own connections, tasks and
//! leader contest). Devices and the grid operator talk to either: an event created on the
//! follower is planned by the leader from telemetry the follower took, and its commands are
//! served by the follower; the leader alone closes and posts epochs; when it dies the other
//! takes over, closes and posts the next epoch from the shared data, and nothing is posted
//! twice.

use std::time::{Duration, Instant};

use ovpp_oracle::config::EpochRole;
use ovpp_oracle::dispatch::DispatchSettings;
use ovpp_oracle::epoch::{EpochSettings, EpochSpec};
use ovpp_oracle::epoch_job::EpochJob;
use ovpp_program_tests::{TestChain, EPOCH_LENGTH_SECS};
use ovpp_simulator::{Fleet, Sender};
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::command::CommandsRequest;
use ovpp_wire::score::ScoringRules;
use serde_json::{json, Value};
use solana_sdk::signature::{Keypair, Signer};

use crate::dispatch::{event_json, TOKEN};
use crate::{start_oracle_on, Oracle};

const EPOCH: i64 = EPOCH_LENGTH_SECS as i64;

/// One epoch step, only by the leader (what `EpochJob::run` does each poll).
async fn step_if_leader(job: &EpochJob, oracle: &Oracle) -> bool {
    if !oracle.state.leader.is_leader() {
        return false;
    }
    job.step().await.unwrap();
    true
}

async fn wait_for(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_oracles_on_one_database_dispatch_close_and_fail_over() {
    // One oracle key, threshold 1: the operator's processes post alone. The schedule started
    // three epochs ago, so epochs 1 and 2 are due.
    let mut chain = TestChain::initialized_since(1, 1, 3 * EPOCH).await;
    let owner = chain.new_owner().await;
    let mut fleet = Fleet::new(14, 21, 48.1, 11.6);
    for device in &fleet.devices {
        let device_key = Keypair::new_from_array(device.key.to_bytes());
        let ix = ovpp::client::register_device(owner.pubkey(), device_key.pubkey(), device.profile.kind, device.params());
        chain.send(&[ix], &[&owner, &device_key]).await.expect("register_device");
    }
    let url = ovpp_test_support::postgres::database("shared_oracles").await;
    let settings = DispatchSettings { grid_tokens: vec![TOKEN.into()], tick_secs: 1, ..DispatchSettings::default() };
    let oracles = [start_oracle_on(&chain, &url, settings.clone()).await, start_oracle_on(&chain, &url, settings).await];
    for oracle in &oracles {
        oracle.state.registry.refresh().await.unwrap();
    }
    wait_for("a leader", 15, async || oracles.iter().any(|o| o.state.leader.is_leader())).await;
    let leader = oracles.iter().position(|o| o.state.leader.is_leader()).unwrap();
    let follower = 1 - leader;
    assert!(!oracles[follower].state.leader.is_leader(), "one leader");

    // Epochs 1 and 2: half the devices report to each process (a load balancer's split).
    let config = chain.config().await;
    let spec = |epoch| EpochSpec::from_config(&config, epoch, 10_000_000_000).unwrap();
    let (one, two) = (spec(1), spec(2));
    let senders = [Sender::new(&oracles[0].base), Sender::new(&oracles[1].base)];
    let mut t = one.start_ts;
    while t < two.end_ts {
        let batches = fleet.tick(t, 300);
        for (sender, half) in senders.iter().zip(batches.chunks(7)) {
            let sent = sender.send(half).await.unwrap();
            assert_eq!((sent.accepted, sent.rejected), (7, 0), "{:?}", sent.reasons);
        }
        t += 300;
    }
    // The last minutes, to the follower only: the leader's fleet view learns them from the
    // database.
    let now = unix_now() / 60 * 60;
    for t in [now - 180, now - 120, now - 60] {
        let sent = senders[follower].send(&fleet.tick(t, 60)).await.unwrap();
        assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);
    }

    // The grid operator talks to the follower; the leader plans; the follower serves the
    // commands.
    let grid = |path: &str, body: Value| {
        let o = &oracles[follower];
        o.http.post(format!("{}{path}", o.base)).bearer_auth(TOKEN).json(&body).send()
    };
    assert_eq!(grid("/openadr3/programs", json!({"programName": "p"})).await.unwrap().status().as_u16(), 201);
    let event = grid("/openadr3/events", event_json("p", "DE-BY", "DISPATCH_SETPOINT", now + 30, "PT10M", &[20.0])).await.unwrap();
    assert_eq!(event.status().as_u16(), 201);
    let event: Value = event.json().await.unwrap();
    let id = event["id"].as_str().unwrap().to_string();
    let signing: Vec<&ed25519_dalek::SigningKey> = fleet.devices.iter().map(|d| &d.key).collect();
    let f = &oracles[follower];
    let mut commanded = 0;
    wait_for("commands planned by the leader, served by the follower", 30, async || {
        let request = CommandsRequest::signed(&signing, unix_now());
        let answer: Value = f.http.post(format!("{}/v1/commands", f.base)).json(&request).send().await.unwrap().json().await.unwrap();
        commanded = answer["devices"]
            .as_object()
            .unwrap()
            .values()
            .filter(|d| d["commands"].as_array().is_some_and(|c| c.iter().any(|c| c["event_id"] == id.as_str())))
            .count();
        commanded > 0
    })
    .await;
    assert!(oracles[leader].state.dispatch.plan(&id).await.is_some(), "the leader planned it");
    assert!(oracles[follower].state.dispatch.plan(&id).await.is_none(), "the follower does not plan");

    // Epochs: only the leader closes and posts.
    let dir = std::env::temp_dir().join(format!("ovpp-shared-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (payer, key) = (dir.join("payer.json"), dir.join("o0.json"));
    solana_sdk::signature::write_keypair_file(&chain.payer(), &payer).unwrap();
    solana_sdk::signature::write_keypair_file(&chain.oracles[0], &key).unwrap();
    let role = EpochRole {
        close: true,
        cosign_for: None,
        relay: true,
        keypair: payer,
        oracle_keypair: key,
        settings: EpochSettings { emission: 10_000_000_000, rules: ScoringRules::default(), close_grace_secs: 60 },
        poll: Duration::from_secs(1),
        auto_claim_owners: vec![],
    };
    let banks = || -> std::sync::Arc<dyn ovpp_chain::Chain> {
        std::sync::Arc::new(ovpp_chain::bank::BanksChain::new(chain.ctx.banks_client.clone()))
    };
    let jobs: Vec<EpochJob> = oracles.iter().map(|o| EpochJob::new(banks(), o.state.clone(), role.clone()).unwrap()).collect();
    assert!(!step_if_leader(&jobs[follower], &oracles[follower]).await);
    assert!(step_if_leader(&jobs[leader], &oracles[leader]).await);
    assert_eq!(chain.config().await.last_epoch, 1, "the leader closed and posted epoch 1");
    let store = &oracles[follower].state.store;
    let first = store.epoch(1).await.unwrap().expect("epoch 1 in the shared database");
    assert!(first.posted_at.is_some() && store.epoch(2).await.unwrap().is_none());

    // The leader dies (its tasks stop, its connections close): the other takes over.
    oracles[leader].state.tasks.stop().await;
    wait_for("the follower taking over", 20, async || oracles[follower].state.leader.is_leader()).await;
    assert!(step_if_leader(&jobs[follower], &oracles[follower]).await);
    assert_eq!(chain.config().await.last_epoch, 2, "the new leader closed and posted epoch 2");
    let epochs = store.epochs(10).await.unwrap();
    assert_eq!(epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), vec![2, 1]);
    assert!(epochs.iter().all(|e| e.posted_at.is_some()));
    assert_eq!(epochs[1].report_hash, first.report_hash, "epoch 1 untouched");
    assert_eq!(epochs[1].posted_signature, first.posted_signature, "epoch 1 posted once");
    // Epoch 2 was closed from the accumulators both processes kept, equal to the readings.
    let stress = ScoringRules::default().stress_hours_utc;
    assert!(store.accumulated_inputs(two.start_ts, two.end_ts, stress).await.unwrap().is_some());
    let inputs = store.epoch_inputs(two.start_ts, two.end_ts, stress, None).await.unwrap();
    assert_eq!(inputs, store.epoch_inputs_from_readings(two.start_ts, two.end_ts, stress, None).await.unwrap());
    assert_eq!(inputs.len(), 14);
    let _ = std::fs::remove_dir_all(&dir);
}
