use ed25519_dalek::SigningKey;
use ovpp::client;
use ovpp::state::DeviceKind;
use ovpp_program_tests::*;
use ovpp_wire::clock::unix_now;
use ovpp_wire::http::JsonBatch;
use ovpp_wire::telemetry::{GridResponse, Reading, SignedBatch, TelemetryBatch};
use serde_json::Value;
use solana_sdk::signature::{Keypair, Signer};

use crate::{start_oracle, Oracle};

fn signing_key(device: &Keypair) -> SigningKey {
    SigningKey::from_bytes(&device.to_bytes()[..32].try_into().unwrap())
}

/// `count` 5-minute battery readings ending now, signed with sequence `sequence`.
fn battery_batch(device: &Keypair, sequence: u64, count: i64) -> SignedBatch {
    let now = unix_now();
    let readings = (0..count)
        .map(|i| Reading {
            interval_start: now - (count - i) * 300,
            interval_secs: 300,
            energy_generated_wh: 0,
            energy_consumed_wh: 10,
            energy_imported_wh: 0,
            energy_exported_wh: 300,
            average_power_w: 3_600,
            state_of_charge_permille: Some(600 - i as u16 * 10),
            storage_available_wh: Some(13_000),
            flex_up_w: 1_000,
            flex_down_w: 5_000,
            grid_response: GridResponse::FollowingDispatch,
            online: true,
        })
        .collect();
    TelemetryBatch { device_key: device.pubkey().to_bytes(), sequence, readings }.sign(&signing_key(device))
}

impl Oracle {
    async fn post_json(&self, batches: &[SignedBatch]) -> (u16, Value) {
        let body: Vec<JsonBatch> = batches.iter().map(JsonBatch::from_signed).collect();
        let response = self.http.post(format!("{}/v1/telemetry", self.base)).json(&body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn post_binary(&self, batches: &[SignedBatch]) -> (u16, Value) {
        let body = ovpp_wire::telemetry::encode_batches(batches);
        let response = self
            .http
            .post(format!("{}/v1/telemetry", self.base))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn reasons(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap_or("accepted").to_string()).collect()
}

#[tokio::test]
async fn devices_registered_on_chain_are_accepted_and_retired_ones_rejected() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let battery = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await;
    let oracle = start_oracle(&chain, "registry").await;

    // Registered after the oracle started: found on first sight.
    let first = battery_batch(&battery, 1, 3);
    let (status, body) = oracle.post_json(std::slice::from_ref(&first)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reasons(&body), ["accepted"]);
    assert_eq!(oracle.state.store.reading_count().await.unwrap(), 3);

    // The device never saw the answer and retries the very same batch: already stored,
    // not stored twice, and not a replay held against it.
    let (status, body) = oracle.post_json(std::slice::from_ref(&first)).await;
    assert_eq!((status, body["results"][0]["status"].as_str()), (200, Some("already_stored")), "{body}");
    assert_eq!(oracle.state.store.reading_count().await.unwrap(), 3);

    // Unregistered key, replayed batch, tampered signature: one request, three verdicts.
    let stranger = Keypair::new();
    let mut tampered = battery_batch(&battery, 5, 1);
    tampered.batch.readings[0].energy_exported_wh += 1;
    let (_, body) = oracle.post_json(&[battery_batch(&stranger, 1, 1), battery_batch(&battery, 1, 1), tampered]).await;
    assert_eq!(reasons(&body), ["unknown_device", "replayed_sequence", "bad_signature"]);
    assert_eq!(body["accepted"], 0);

    // Binary body, next sequence, a 20 s reading starting where the last one ended (within
    // the allowed clock skew).
    let first_end = first.batch.readings[2].interval_start + 300;
    let mut next = battery_batch(&battery, 2, 1);
    next.batch.readings[0].interval_start = first_end;
    next.batch.readings[0].interval_secs = 20;
    next.batch.readings[0].energy_exported_wh = 20;
    let next = next.batch.sign(&signing_key(&battery));
    let (status, body) = oracle.post_binary(&[next]).await;
    assert_eq!((status, reasons(&body)), (200, vec!["accepted".to_string()]), "{body}");

    // The owner retires the device; after the next registry sync its telemetry is refused.
    let ix = client::retire_device(owner.pubkey(), &battery.pubkey());
    chain.send(&[ix], &[&owner]).await.unwrap();
    oracle.state.registry.refresh().await.unwrap();
    let refused_from = ovpp_wire::clock::unix_now();
    let refused = battery_batch(&battery, 3, 1);
    let (_, body) = oracle.post_json(std::slice::from_ref(&refused)).await;
    assert_eq!(reasons(&body), ["device_retired"]);
    // The same refused batch again, three times (anyone can replay it): counted once.
    for _ in 0..3 {
        assert_eq!(reasons(&oracle.post_json(std::slice::from_ref(&refused)).await.1), ["device_retired"]);
    }
    // It belongs to the epoch in which it was refused, to the second, also when the epoch
    // does not start on a whole minute.
    let refused_until = ovpp_wire::clock::unix_now() + 1;
    let rejected_in = |start: i64, end: i64| {
        let store = oracle.state.store.clone();
        let key = battery.pubkey().to_bytes();
        async move { store.epoch_inputs(start, end, [17, 19], None).await.unwrap().get(&key).map_or(0, |i| i.rejected_batches) }
    };
    assert_eq!(rejected_in(refused_from, refused_until).await, 1);
    assert_eq!(rejected_in(refused_until, refused_until + 59).await, 0);
    assert_eq!(rejected_in(refused_from - 59, refused_from).await, 0);

    // What counts against a device's data quality is what the device itself sent: a replay
    // or a forged signature can come from anyone and is only counted in the metrics.
    let counts = oracle.state.store.rejection_counts().await.unwrap();
    let count = |reason: &str| counts.iter().filter(|(_, r, _)| r == reason).map(|(_, _, n)| n).sum::<i64>();
    assert_eq!((count("replayed_sequence"), count("bad_signature"), count("device_retired"), count("unknown_device")), (0, 0, 1, 1));
    let (_, metrics) = oracle.get("/metrics").await;
    assert!(metrics.contains("ovpp_ingest_batches_rejected_total{reason=\"bad_signature\"} 1"), "{metrics}");
    assert!(metrics.contains("ovpp_ingest_batches_accepted_total 2"), "{metrics}");
    assert!(metrics.contains("ovpp_ingest_batches_already_stored_total 1"), "{metrics}");
    assert!(metrics.contains("ovpp_ingest_batches_rejected_total{reason=\"device_retired\"} 4"), "{metrics}");
}

#[tokio::test]
async fn fleet_and_device_views_reflect_accepted_telemetry() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let battery = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await;
    let solar = chain.register(&owner, DeviceKind::RooftopSolar, rooftop_solar()).await;
    let oracle = start_oracle(&chain, "fleet").await;
    let (_, body) = oracle.post_json(&[battery_batch(&battery, 1, 2)]).await;
    assert_eq!(reasons(&body), ["accepted"]);
    oracle.state.registry.refresh().await.unwrap();
    oracle.state.registry.resolve(&[solar.pubkey().to_bytes()]).await.unwrap();

    let (status, fleet) = oracle.get("/v1/fleet").await;
    assert_eq!(status, 200);
    let fleet: Value = serde_json::from_str(&fleet).unwrap();
    let totals = &fleet["totals"];
    assert_eq!(totals["devices"], 2);
    assert_eq!(totals["devices_online"], 1);
    assert_eq!(totals["rated_power_w"], 14_000);
    assert_eq!(totals["flex_up_w"], 1_000);
    // 13 kWh available at 59% SoC.
    assert_eq!(totals["stored_energy_wh"], 13_000 * 590 / 1000);
    assert_eq!(fleet["by_kind"]["home_battery"]["devices_online"], 1);
    assert_eq!(fleet["by_kind"]["rooftop_solar"]["devices_online"], 0);
    assert_eq!(fleet["by_region"]["DE-BY"]["devices"], 2);

    let (_, filtered) = oracle.get("/v1/fleet?kind=rooftop_solar").await;
    let filtered: Value = serde_json::from_str(&filtered).unwrap();
    assert_eq!(filtered["totals"]["devices"], 1);
    let (status, error) = oracle.get("/v1/fleet?kind=toaster").await;
    assert_eq!(status, 400);
    assert!(error.contains("\"code\":\"unknown_kind\""), "{error}");

    // The registry entry is public (it is on-chain); readings and presence only for the
    // owner's wallet, the device's own key, and grid operators.
    let path = format!("/v1/devices/{}", battery.pubkey());
    let (status, device) = oracle.get(&path).await;
    let device: Value = serde_json::from_str(&device).unwrap();
    assert_eq!((status, device["kind"].as_str(), device["readings_visible"].as_bool()), (200, Some("home_battery"), Some(false)));
    assert!(device.get("recent_readings").is_none() && device.get("online").is_none(), "{device}");
    let get_signed = |by: &Keypair, path: &str, at: i64| {
        let key = signing_key(by);
        let header = ovpp_wire::auth::authorization(&key, "GET", path, at, b"");
        oracle.http.get(format!("{}{path}", oracle.base)).header("authorization", header).send()
    };
    let stranger = Keypair::new();
    for (who, visible) in [(&owner, true), (&battery, true), (&stranger, false)] {
        let answer: Value = get_signed(who, &path, unix_now()).await.unwrap().json().await.unwrap();
        assert_eq!(answer["readings_visible"], visible, "{answer}");
        if visible {
            assert_eq!(answer["online"], true);
            assert_eq!(answer["recent_readings"].as_array().unwrap().len(), 2);
        }
    }
    // A stale signature, or one for another path, is refused, not taken as anonymous.
    for (signed_path, at) in [(path.clone(), unix_now() - 120), (format!("/v1/devices/{}", solar.pubkey()), unix_now())] {
        let key = signing_key(&owner);
        let header = ovpp_wire::auth::authorization(&key, "GET", &signed_path, at, b"");
        let answer = oracle.http.get(format!("{}{path}", oracle.base)).header("authorization", header).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 401);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request_signature", "{body}");
    }
    let (status, _) = oracle.get(&format!("/v1/devices/{}", Keypair::new().pubkey())).await;
    assert_eq!(status, 404);
    let (status, health) = oracle.get("/healthz").await;
    assert_eq!((status, health.as_str()), (200, r#"{"status":"ok","leader":true}"#));
}

#[tokio::test]
async fn malformed_bodies_get_stable_error_bodies() {
    let chain = TestChain::initialized(1, 1).await;
    let oracle = start_oracle(&chain, "errors").await;
    let post = |content_type: &'static str, body: &'static [u8]| {
        oracle.http.post(format!("{}/v1/telemetry", oracle.base)).header("content-type", content_type).body(body).send()
    };
    for (content_type, body, status, code) in [
        ("application/json", &b"{not json"[..], 400, "malformed_body"),
        ("application/json", &b"[]"[..], 400, "bad_batch_count"),
        ("application/octet-stream", &b"\x01\x00\x00\x00garbage"[..], 400, "malformed_body"),
        ("text/plain", &b"hello"[..], 415, "unsupported_media_type"),
    ] {
        let response = post(content_type, body).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{error}");
    }
}
