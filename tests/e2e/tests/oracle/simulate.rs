use ovpp_program_tests::TestChain;
use ovpp_simulator::{self as simulate, Clock, Fleet, Sender};
use ovpp_wire::clock::unix_now;
use serde_json::Value;
use solana_sdk::signature::{Keypair, Signer};

use crate::start_oracle;

/// The simulator's fleet, registered on-chain by its owner, replays two hours into the
/// oracle and a co-signer through the HTTP API: every batch is accepted by both and the
/// fleet view sees it.
#[tokio::test]
async fn a_registered_simulated_fleet_is_accepted_end_to_end() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    // Two of every kind, across the simulator's three regions.
    let mut fleet = Fleet::new(20, 5, 48.1, 11.6);
    for device in &fleet.devices {
        let device_key = Keypair::new_from_array(device.key.to_bytes());
        let ix = ovpp::client::register_device(owner.pubkey(), device_key.pubkey(), device.profile.kind, device.params());
        chain.send(&[ix], &[&owner, &device_key]).await.expect("register_device");
    }
    let oracle = start_oracle(&chain, "simulate").await;
    // A co-signer gets the same telemetry (it recomputes epochs from its own copy).
    let cosigner = start_oracle(&chain, "simulate-cosigner").await;

    let start = (unix_now() - 2 * 3600) / 300 * 300;
    let clock = Clock { start, interval_secs: 300, speed: 1e9, end: Some(start + 2 * 3600) };
    let sender = Sender::to_all(&[oracle.base.clone(), cosigner.base.clone()]);
    let totals = simulate::run(&mut fleet, &sender, clock, 8, std::future::pending()).await.unwrap();
    assert_eq!((totals.accepted, totals.rejected), (20 * 24, 0), "{:?}", totals.reasons);
    assert_eq!(oracle.state.store.reading_count().await.unwrap(), 20 * 24);
    assert_eq!(cosigner.state.store.reading_count().await.unwrap(), 20 * 24);

    let fleet_view: Value = oracle.http.get(format!("{}/v1/fleet", oracle.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(fleet_view["totals"]["devices"], 20);
    assert_eq!(fleet_view["by_region"].as_object().unwrap().len(), 3);
    assert_eq!(fleet_view["by_kind"].as_object().unwrap().len(), 7);
    assert!(fleet_view["totals"]["devices_online"].as_u64().unwrap() >= 16, "{fleet_view}");
}
