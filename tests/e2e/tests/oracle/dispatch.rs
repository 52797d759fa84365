//! Dispatch end to end: grid events in over the OpenADR 3 shaped API, set points out to the
//! simulated fleet, signed acknowledgements back, and the measured delivery.

use ovpp_oracle::dispatch::plan::{capability, Direction};
use ovpp_oracle::dispatch::DispatchSettings;
use ovpp_program_tests::TestChain;
use ovpp_simulator::{Fleet, Sender};
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::command::{Ack, CommandsRequest, DeviceSigned, Preferences};
use ovpp_wire::dispatch::event::{rfc3339, WireEvent};
use ovpp_wire::telemetry::GridResponse;
use serde_json::{json, Value};
use solana_sdk::signature::{Keypair, Signer};

use crate::{start_oracle_with, Oracle};

pub const TOKEN: &str = "grid-operator-secret";

pub async fn registered_fleet(n: usize, seed: u64) -> (TestChain, Fleet) {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let fleet = Fleet::new(n, seed, 48.1, 11.6);
    for device in &fleet.devices {
        let device_key = Keypair::new_from_array(device.key.to_bytes());
        let ix = ovpp::client::register_device(owner.pubkey(), device_key.pubkey(), device.profile.kind, device.params());
        chain.send(&[ix], &[&owner, &device_key]).await.expect("register_device");
    }
    (chain, fleet)
}

pub async fn oracle(chain: &TestChain, name: &str) -> Oracle {
    let settings = DispatchSettings { grid_tokens: vec![TOKEN.into()], ..DispatchSettings::default() };
    let oracle = start_oracle_with(chain, name, settings).await;
    oracle.state.registry.refresh().await.unwrap();
    oracle
}

/// A fleet with a minute of telemetry, a program, and a 10-minute shed event in DE-BY starting
/// in 30 s, planned ahead: the chain (kept alive), the oracle, the fleet, the event's id and
/// its first plan.
async fn planned_event(name: &str, seed: u64) -> (TestChain, Oracle, Fleet, String, ovpp_wire::dispatch::view::Plan) {
    let (chain, mut fleet) = registered_fleet(30, seed).await;
    let oracle = oracle(&chain, name).await;
    let sender = Sender::new(&oracle.base);
    let now = unix_now() / 60 * 60;
    for t in [now - 180, now - 120, now - 60] {
        sender.send(&fleet.tick(t, 60)).await.unwrap();
    }
    assert_eq!(post(&oracle, "/openadr3/programs", Some(TOKEN), &json!({"programName": "p"})).await.0, 201);
    let (status, event) =
        post(&oracle, "/openadr3/events", Some(TOKEN), &event_json("p", "DE-BY", "DISPATCH_SETPOINT", now + 30, "PT10M", &[20.0])).await;
    assert_eq!(status, 201, "{event}");
    let id = event["id"].as_str().unwrap().to_string();
    oracle.state.dispatch.tick(unix_now()).await.unwrap();
    let plan = oracle.state.dispatch.plan(&id).await.expect("planned a minute ahead");
    (chain, oracle, fleet, id, plan)
}

/// The most recent 11:00 UTC at least three hours ago (ingest takes the past, not the future).
pub fn recent_11_utc() -> i64 {
    let latest = unix_now() - 3 * 3600;
    let t = latest.div_euclid(86_400) * 86_400 + 11 * 3600;
    if t > latest {
        t - 86_400
    } else {
        t
    }
}

async fn post(oracle: &Oracle, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = oracle.http.post(format!("{}{path}", oracle.base)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

pub fn event_json(program: &str, region: &str, kind: &str, start: i64, duration: &str, values: &[f64]) -> Value {
    let intervals: Vec<Value> =
        values.iter().enumerate().map(|(i, v)| json!({"id": i, "payloads": [{"type": kind, "values": [v]}]})).collect();
    json!({
        "programID": program,
        "eventName": "test",
        "targets": [{"type": "REGION", "values": [region]}],
        "intervalPeriod": {"start": rfc3339(start), "duration": duration},
        "intervals": intervals,
    })
}

/// A 30-minute shed event in one region, run in simulated time over the simulated fleet:
/// the devices follow their set points (their telemetry says so), and the measured delivery
/// is within 10 % of what was commanded (the target plus the 10 % reserve), so at least the
/// target. (Tolerance: devices follow exactly, but the meter-before baseline holds the
/// pre-event rate while the batteries' own self-consumption drifts with clouds and load.
/// Measured: 1.001 of commanded, at 70 % of the capability plus reserve.)
#[tokio::test]
async fn a_shed_event_is_dispatched_followed_and_measured() {
    let (chain, mut fleet) = registered_fleet(60, 11).await;
    let oracle = oracle(&chain, "dispatch-e2e").await;
    let sender = Sender::new(&oracle.base);
    // Midday: steady C&I storage.
    let start = recent_11_utc();
    for t in (start - 7200..start).step_by(300) {
        let sent = sender.send(&fleet.tick(t, 300)).await.unwrap();
        assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);
    }
    let (status, _) = post(&oracle, "/openadr3/programs", Some(TOKEN), &json!({"programName": "peak-relief"})).await;
    assert_eq!(status, 201);

    let target_kw = feasible_target_kw(&oracle, start).await;
    let wire: WireEvent =
        serde_json::from_value(event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", start, "PT5M", &[target_kw; 6])).unwrap();
    let event = oracle.state.dispatch.put_event(&wire, None, start - 120).await.unwrap();

    for t in (start..start + 2100).step_by(300) {
        dispatch_round(&oracle, &mut fleet, &sender, t).await;
        // A round late in the interval, with the devices' telemetry showing them following
        // (their flexibility now on top of their set points): the plan holds, no churn.
        if t < start + 1800 {
            oracle.state.dispatch.tick(t + 299).await.unwrap();
            let plan = oracle.state.dispatch.plan(&event.id).await.expect("planned");
            assert_eq!(plan.revision, (t - start) as u64 / 300 + 1, "one plan per interval");
        }
    }
    let plan_devices = oracle.state.store.event_commands(&event.id).await.unwrap();
    assert!(!plan_devices.is_empty());
    // Telemetry reflects it: every commanded device reported following dispatch in the event.
    let readings = oracle.state.store.readings_between(start, start + 1800).await.unwrap();
    for (command, _) in &plan_devices {
        let theirs: Vec<_> = readings
            .iter()
            .filter(|r| {
                r.device_key == command.device_key
                    && r.reading.interval_start >= command.valid_from
                    && r.reading.interval_start < command.valid_until
            })
            .collect();
        assert!(theirs.iter().all(|r| r.reading.grid_response == GridResponse::FollowingDispatch), "device did not follow");
    }
    // Not measured before the measurement delay, measured after.
    oracle.state.dispatch.tick(start + 1800 + 299).await.unwrap();
    assert!(oracle.state.dispatch.report(&event.id).await.unwrap().is_none());
    oracle.state.dispatch.tick(start + 1800 + 300).await.unwrap();
    let report = oracle.state.dispatch.report(&event.id).await.unwrap().expect("event measured");
    let target_wh = report.target_wh as f64;
    let delivered_wh = report.delivered_wh as f64;
    assert_eq!(target_wh, target_kw * 1000.0 * 0.5);
    let ratio = delivered_wh / target_wh;
    eprintln!("target {target_wh} Wh, commanded {} Wh, delivered {delivered_wh} Wh ({ratio:.3})", report.commanded_wh);
    // The plan asks for the target plus the 10 % reserve; the fleet delivers that within 10 %,
    // so at least the target.
    let commanded_wh = report.commanded_wh as f64;
    assert!((commanded_wh / target_wh - 1.1).abs() < 0.01);
    assert!((delivered_wh / commanded_wh - 1.0).abs() <= 0.1 && ratio >= 1.0, "delivered {delivered_wh} Wh of {target_wh} Wh: {report:#?}");
    for device in &report.devices {
        assert!(device.paid_wh <= device.commanded_wh + 1, "{device:?}");
    }
    // Scoring sees what the report pays.
    let paid: u64 = report.devices.iter().map(|d| d.paid_wh).sum();
    // Credited at the event's end plus the measurement delay (300 s).
    assert_eq!(report.credited_at, start + 1800 + 300);
    let inputs: u64 = oracle.state.store.responses_wh(start + 2100, start + 2101).await.unwrap().values().map(|r| r.demand).sum();
    assert_eq!(inputs, paid);
    assert!(paid > 0);
    // The report is served, and in OpenADR's reports collection as a report object whose
    // per-resource intervals add up to the same delivery.
    let oracle = &oracle;
    let operator_get = |path: String| async move {
        oracle.http.get(format!("{}{path}", oracle.base)).bearer_auth(TOKEN).send().await.unwrap().json::<Value>().await.unwrap()
    };
    let served = operator_get(format!("/v1/events/{}/report", event.id)).await;
    assert_eq!(served["delivered_wh"], report.delivered_wh);
    let reports = operator_get(format!("/openadr3/reports?eventID={}", event.id)).await;
    let [openadr] = reports.as_array().unwrap().as_slice() else { panic!("one report: {reports}") };
    assert_eq!((openadr["objectType"].as_str(), openadr["clientName"].as_str()), (Some("REPORT"), Some("ovpp-oracle")));
    let resources = openadr["resources"].as_array().unwrap();
    assert_eq!(resources.len(), report.devices.len() + 1, "one per device and the aggregate");
    let delta_kwh = |resource: &Value| -> f64 {
        resource["intervals"].as_array().unwrap().iter().map(|i| i["payloads"][2]["values"][0].as_f64().unwrap()).sum()
    };
    let aggregate = resources.iter().find(|r| r["resourceName"] == "AGGREGATED_REPORT").unwrap();
    let per_device: f64 = resources.iter().filter(|r| r["resourceName"] != "AGGREGATED_REPORT").map(delta_kwh).sum();
    assert!((delta_kwh(aggregate) - per_device).abs() < 1e-9);
    assert!((delta_kwh(aggregate) * 1000.0 - report.delivered_wh as f64).abs() <= report.devices.len() as f64, "{openadr}");
}

/// A shed target for a half-hour event in DE-BY starting at `start`: 70 % of what the
/// region's devices could give (with the reserve, most of each device: its flexibility while
/// following is less than its set point).
pub async fn feasible_target_kw(oracle: &Oracle, start: i64) -> f64 {
    let devices = oracle.state.registry.all().await;
    let mut capable = 0;
    for d in devices.iter().filter(|d| d.region == "DE-BY") {
        let latest = oracle.state.fleet.latest(&d.key).await.map(|l| l.reading);
        capable += capability(d, latest.as_ref(), &Preferences::default(), Direction::Up, start - 60, start + 1800, 0);
    }
    let target_kw = (capable as f64 * 0.7 / 1000.0).round();
    assert!(target_kw > 10.0, "the region can give {capable} W");
    target_kw
}

/// One 5-minute step of simulated time: a dispatch round at `t`, the devices take their
/// commands and send their telemetry of the step.
pub async fn dispatch_round(oracle: &Oracle, fleet: &mut Fleet, sender: &Sender, t: i64) {
    oracle.state.dispatch.tick(t).await.unwrap();
    for device in &mut fleet.devices {
        let commands = oracle.state.dispatch.commands_for(&device.device_key(), t).await;
        device.dispatch = commands.current.map(|c| (c.setpoint_w, c.valid_until));
    }
    let sent = sender.send(&fleet.tick(t, 300)).await.unwrap();
    assert_eq!(sent.rejected, 0, "{:?}", sent.reasons);
}

/// The grid API: authentication, the refusals an operator can cause, and the lifecycle.
#[tokio::test]
async fn grid_api_refuses_bad_events_and_runs_the_lifecycle() {
    let (chain, mut fleet) = registered_fleet(6, 12).await;
    let oracle = oracle(&chain, "dispatch-api").await;
    // Regions are known from the registry, which learns devices from their telemetry here.
    Sender::new(&oracle.base).send(&fleet.tick(unix_now() / 60 * 60 - 60, 60)).await.unwrap();
    let program = json!({"programName": "peak-relief"});
    assert_eq!(post(&oracle, "/openadr3/programs", None, &program).await.0, 401);
    assert_eq!(post(&oracle, "/openadr3/programs", Some("wrong"), &program).await.0, 401);
    assert_eq!(post(&oracle, "/openadr3/programs", Some(TOKEN), &program).await.0, 201);
    assert_eq!(post(&oracle, "/openadr3/programs", Some(TOKEN), &program).await.1["type"], "urn:ovpp:problem:program_exists");
    let bad_baseline = json!({"programName": "other", "baseline": "MADE_UP"});
    assert_eq!(post(&oracle, "/openadr3/programs", Some(TOKEN), &bad_baseline).await.1["type"], "urn:ovpp:problem:invalid_program");

    let soon = unix_now() + 3600;
    let refused = |body: Value, code: &'static str| {
        let oracle = &oracle;
        async move {
            let (status, answer) = post(oracle, "/openadr3/events", Some(TOKEN), &body).await;
            assert_eq!(answer["type"], format!("urn:ovpp:problem:{code}"), "{status} {answer}");
            assert!(answer["detail"].as_str().unwrap().len() > 10);
        }
    };
    refused(event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", soon, "PT0S", &[100.0]), "end_before_start").await;
    refused(event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", soon, "-PT15M", &[100.0]), "end_before_start").await;
    refused(event_json("peak-relief", "FR-IDF", "DISPATCH_SETPOINT", soon, "PT15M", &[100.0]), "unknown_region").await;
    refused(event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", soon, "PT15M", &[100.0, -5.0]), "negative_target").await;
    refused(event_json("no-such-program", "DE-BY", "DISPATCH_SETPOINT", soon, "PT15M", &[100.0]), "unknown_program").await;
    refused(event_json("peak-relief", "DE-BY", "SIMPLE", soon, "PT15M", &[1.0]), "unsupported_payload").await;
    refused(event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", unix_now() - 7200, "PT15M", &[100.0]), "event_in_past").await;
    let mut no_target = event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", soon, "PT15M", &[100.0]);
    no_target["targets"] = json!([]);
    refused(no_target, "missing_region").await;

    // A pending event; an overlapping shed in the same region conflicts, a price curve does not.
    let (status, created) = post(
        &oracle,
        "/openadr3/events",
        Some(TOKEN),
        &event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", soon, "PT15M", &[100.0, 120.0]),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["intervals"][1]["payloads"][0]["values"][0], 120.0);
    let id = created["id"].as_str().unwrap().to_string();
    let overlapping = event_json("peak-relief", "DE-BY", "ABSORB_SETPOINT", soon + 600, "PT15M", &[50.0]);
    refused(overlapping.clone(), "conflicting_event").await;
    let elsewhere = event_json("peak-relief", "DE-BW", "ABSORB_SETPOINT", soon + 600, "PT15M", &[50.0]);
    assert_eq!(post(&oracle, "/openadr3/events", Some(TOKEN), &elsewhere).await.0, 201);
    let prices = event_json("peak-relief", "DE-BY", "PRICE", soon, "PT1H", &[0.30, 0.10, 0.45]);
    assert_eq!(post(&oracle, "/openadr3/events", Some(TOKEN), &prices).await.0, 201);

    // Modify, then cancel; a cancelled event is final.
    let url = format!("{}/openadr3/events/{id}", oracle.base);
    let modified = event_json("peak-relief", "DE-BY", "DISPATCH_SETPOINT", soon, "PT15M", &[80.0]);
    let answer: Value = oracle.http.put(&url).bearer_auth(TOKEN).json(&modified).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["intervals"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(oracle.http.delete(&url).send().await.unwrap().status().as_u16(), 401);
    let cancelled: Value = oracle.http.delete(&url).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let again = oracle.http.put(&url).bearer_auth(TOKEN).json(&modified).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 409);
    // Now the overlapping absorb event is accepted: the cancelled one no longer conflicts.
    assert_eq!(post(&oracle, "/openadr3/events", Some(TOKEN), &overlapping).await.0, 201);
    let listed: Value =
        oracle.http.get(format!("{}/openadr3/events", oracle.base)).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 4);
}

/// Devices fetch their commands over HTTP, acknowledge them with their own key, and a
/// refusal or an owner's opt-out takes the device out of the next plan.
#[tokio::test]
async fn devices_acknowledge_commands_and_refusals_replan() {
    let (_chain, oracle, mut fleet, id, plan) = planned_event("dispatch-acks", 13).await;
    let id = id.as_str();
    assert!(plan.devices >= 2, "{plan:?}");

    // Commands for the planned devices, fetched one by one and in bulk, each request signed
    // by the devices' keys (a gateway holds them); nobody else learns the set points.
    let signing: Vec<&ed25519_dalek::SigningKey> = fleet.devices.iter().map(|d| &d.key).collect();
    let request = CommandsRequest::signed(&signing, unix_now());
    let keys = request.devices.clone();
    let bulk_url = format!("{}/v1/commands", oracle.base);
    let bulk: Value = oracle.http.post(&bulk_url).json(&request).send().await.unwrap().json().await.unwrap();
    let unsigned = oracle.http.post(&bulk_url).json(&json!({"devices": keys})).send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let mut swapped = request.clone();
    swapped.signatures.swap(0, 1);
    assert_eq!(oracle.http.post(&bulk_url).json(&swapped).send().await.unwrap().status().as_u16(), 401);
    let commands_of = |i: usize, signer: &ed25519_dalek::SigningKey| {
        let path = format!("/v1/devices/{}/commands", keys[i]);
        let header = ovpp_wire::auth::authorization(signer, "GET", &path, unix_now(), b"");
        oracle.http.get(format!("{}{path}", oracle.base)).header("authorization", header).send()
    };
    assert_eq!(oracle.http.get(format!("{}/v1/devices/{}/commands", oracle.base, keys[0])).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(commands_of(0, &fleet.devices[1].key).await.unwrap().status().as_u16(), 401, "another device's key");
    let mut commanded = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let one: Value = commands_of(i, &fleet.devices[i].key).await.unwrap().json().await.unwrap();
        assert_eq!(one["commands"], bulk["devices"][key]["commands"]);
        if let Some(c) = one["commands"].as_array().unwrap().first() {
            assert_eq!(c["event_id"], id);
            assert!(c["setpoint_w"].as_i64().unwrap() > 0);
            commanded.push((i, c["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(commanded.len(), plan.devices);
    let ack = |i: usize, command: &str, accept: bool, signer: usize| {
        let device = &fleet.devices[i];
        let message = Ack { device_key: device.device_key(), command_id: command.to_string(), accept };
        json!({"command_id": command, "accept": accept, "signature": bs58::encode(message.sign(&fleet.devices[signer].key)).into_string()})
    };
    let (first, first_command) = commanded[0].clone();
    let (second, second_command) = commanded[1].clone();
    let path = |i: usize| format!("/v1/devices/{}/acks", keys[i]);
    // Signed by another device's key: refused.
    let (status, answer) = post(&oracle, &path(first), None, &ack(first, &first_command, true, second)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("bad_signature")));
    assert_eq!(post(&oracle, &path(first), None, &ack(first, &first_command, true, first)).await.0, 200);
    // The same answer again (a restarted gateway) is taken; another answer is not.
    assert_eq!(post(&oracle, &path(first), None, &ack(first, &first_command, true, first)).await.0, 200);
    // Answered already.
    assert_eq!(post(&oracle, &path(first), None, &ack(first, &first_command, false, first)).await.1["error"]["code"], "unknown_command");
    // The second device refuses: the next round plans without it.
    assert_eq!(post(&oracle, &path(second), None, &ack(second, &second_command, false, second)).await.0, 200);
    oracle.state.dispatch.tick(unix_now()).await.unwrap();
    let replanned = oracle.state.dispatch.plan(id).await.unwrap();
    assert_eq!(replanned.revision, plan.revision + 1);
    assert!(!replanned.setpoints.contains_key(&fleet.devices[second].device_key()));

    // The first device's owner opts it out for an hour (signed with its key); a replayed
    // older preference is refused.
    let device = &mut fleet.devices[first];
    let prefs = Preferences { device_key: device.device_key(), sequence: 2, opt_out_until: unix_now() + 3600, ..Preferences::default() };
    let mut body = serde_json::to_value(&prefs).unwrap();
    body["signature"] = json!(bs58::encode(prefs.sign(&device.key)).into_string());
    let put = |body: Value| oracle.http.put(format!("{}/v1/devices/{}/preferences", oracle.base, keys[first])).json(&body).send();
    assert_eq!(put(body.clone()).await.unwrap().status().as_u16(), 200);
    assert_eq!(put(body.clone()).await.unwrap().status().as_u16(), 409);
    let mut forged = body.clone();
    forged["reserve_soc_permille"] = json!(900);
    assert_eq!(put(forged).await.unwrap().status().as_u16(), 400);
    // The opt-out shows on the next interval's plan: the device cannot hold a set point now.
    oracle.state.dispatch.tick(unix_now()).await.unwrap();
    let after = oracle.state.dispatch.plan(id).await.unwrap();
    assert!(!after.setpoints.contains_key(&fleet.devices[first].device_key()), "{after:?}");
}

/// An epochs network with telemetry through the first half hour of epoch 1 and a program
/// `program`: the network, the epoch, and the time half an hour in. The epoch follows the
/// wall clock; the fleet is put where that time is 11:00 solar time, so no device's own
/// schedule changes at an event's edge there (a C&I store that stops its evening discharge
/// at 21:00 measures as negative delivery against meter-before).
async fn epoch_with_program(name: &str, program: &str) -> (crate::epochs::Network, ovpp_oracle::epoch::EpochSpec, i64) {
    let mut net = crate::epochs::network(name).await;
    let spec = net.spec(1).await;
    let start = spec.start_ts + 1800;
    net.fleet.longitude = (11.0 - start.rem_euclid(86_400) as f64 / 3600.0) * 15.0;
    net.telemetry(spec.start_ts, start).await;
    let program = serde_json::from_value(json!({"programName": program})).unwrap();
    net.primary.state.dispatch.create_program(program, start - 600).await.unwrap();
    (net, spec, start)
}

/// The fleet follows the primary's commands in 5-minute rounds over `[from, to)`, then its own
/// behaviour until `until`; then the primary's round after the measurement delay.
async fn follow(net: &mut crate::epochs::Network, from: i64, to: i64, until: i64) {
    let primary = net.primary.state.clone();
    for t in (from..to).step_by(300) {
        primary.dispatch.tick(t).await.unwrap();
        for device in &mut net.fleet.devices {
            device.dispatch = primary.dispatch.commands_for(&device.device_key(), t).await.current.map(|c| (c.setpoint_w, c.valid_until));
        }
        net.telemetry(t, t + 300).await;
    }
    net.fleet.devices.iter_mut().for_each(|d| d.dispatch = None);
    net.telemetry(to, until).await;
    primary.dispatch.tick(to + 300).await.unwrap();
}

/// Demand response reaches the epoch report, and a co-signer agrees on it without trusting
/// the primary's numbers: it fetches the event's record (event, program, commands) and
/// re-measures it from its own telemetry. Without that it refuses the report.
#[tokio::test]
async fn a_cosigner_remeasures_the_primarys_events_and_signs_the_same_report() {
    let (mut net, spec, event_start) = epoch_with_program("dispatch-cosign", "peak-relief").await;
    let primary = net.primary.state.clone();
    let region = net.fleet.devices[0].region;
    let mut capable = 0;
    for d in primary.registry.all().await.iter().filter(|d| d.region == region) {
        let latest = primary.fleet.latest(&d.key).await.map(|l| l.reading);
        capable += capability(d, latest.as_ref(), &Preferences::default(), Direction::Up, event_start - 60, event_start + 900, 0);
    }
    let target_kw = (capable as f64 * 0.3 / 1000.0).round();
    let wire: WireEvent =
        serde_json::from_value(event_json("peak-relief", region, "DISPATCH_SETPOINT", event_start, "PT5M", &[target_kw; 3])).unwrap();
    let event = primary.dispatch.put_event(&wire, None, event_start - 120).await.unwrap();
    follow(&mut net, event_start, event_start + 900, spec.end_ts).await;
    let measured = primary.dispatch.report(&event.id).await.unwrap().expect("measured");
    assert!(measured.delivered_wh > 0, "{measured:#?}");

    let closed = net.close(1).await;
    let report = String::from_utf8(closed.report.clone()).unwrap();
    let paid: u64 =
        report.lines().skip(1).map(|l| serde_json::from_str::<Value>(l).unwrap()["inputs"]["demand_response_wh"].as_u64().unwrap()).sum();
    assert!(paid > 0, "the epoch report pays the event's delivery");

    // A co-signer that has not measured the event computes no demand response: it refuses.
    assert!(matches!(net.cosign(1).await, Err(ovpp_oracle::epoch::EpochError::ReportMismatch { .. })));
    // The records name every device's commands: only the oracle set (and grid operators) get them.
    let path = format!("/v1/events/records?credited_from={}&credited_to={}", spec.start_ts, spec.end_ts);
    let url = format!("{}{path}", net.primary.base);
    assert_eq!(net.primary.http.get(&url).send().await.unwrap().status().as_u16(), 401);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let signed_by = |key: &ed25519_dalek::SigningKey| ovpp_wire::auth::authorization(key, "GET", &path, unix_now(), b"");
    assert_eq!(net.primary.http.get(&url).header("authorization", signed_by(&stranger)).send().await.unwrap().status().as_u16(), 401);
    let oracle = ed25519_dalek::SigningKey::from_bytes(net.chain.oracles[1].secret_bytes());
    let records: Vec<ovpp_oracle::dispatch::EventRecord> =
        net.primary.http.get(&url).header("authorization", signed_by(&oracle)).send().await.unwrap().json().await.unwrap();
    // The public report has the totals, not who delivered what.
    let public: Value =
        net.primary.http.get(format!("{}/v1/events/{}/report", net.primary.base, event.id)).send().await.unwrap().json().await.unwrap();
    assert!(public["delivered_wh"].as_i64().unwrap() > 0 && public.get("devices").is_none(), "{public}");
    assert_eq!(records.len(), 1);
    net.cosigner.state.dispatch.remeasure(&records[0], unix_now()).await.unwrap();
    let mine = net.cosign(1).await.expect("identical after re-measuring");
    assert_eq!(mine.root, closed.root);
}

/// A price curve (cheap, dear, cheap, dear quarter... five minutes each) is scheduled for
/// the region's storage, followed, measured against each device's baseline, and paid in the
/// epoch report as price response under rules v2: the report recomputes with the Python
/// verifier, and a co-signer re-measures the schedule from its own telemetry and signs the
/// same report.
#[tokio::test]
async fn a_followed_price_schedule_is_paid_as_price_response() {
    let (mut net, spec, start) = epoch_with_program("price-response", "day-ahead").await;
    let primary = net.primary.state.clone();
    let region = net.fleet.devices[0].region;
    let wire: WireEvent =
        serde_json::from_value(event_json("day-ahead", region, "PRICE", start, "PT5M", &[0.05, 0.45, 0.05, 0.45])).unwrap();
    let event = primary.dispatch.put_event(&wire, None, start - 120).await.unwrap();
    primary.dispatch.tick(start - 60).await.unwrap();
    assert!(!primary.store.event_commands(&event.id).await.unwrap().is_empty(), "scheduled as soon as posted");
    follow(&mut net, start, start + 1200, spec.end_ts).await;
    let measured = primary.dispatch.report(&event.id).await.unwrap().expect("a price schedule is measured");
    let paid: u64 = measured.devices.iter().map(|d| d.paid_wh).sum();
    assert!(paid > 0, "{measured:#?}");
    for device in &measured.devices {
        assert!(device.paid_wh <= device.commanded_wh, "{device:?}");
        // Both directions were asked of storage: charge in the cheap slots, discharge in the dear.
        assert!(device.intervals.iter().all(|i| i.delivered_wh.abs() <= 2 * device.commanded_wh as i64), "{device:?}");
    }

    let closed = net.close(1).await;
    assert_eq!(closed.header.rules_version, "OVPP-SCORING-V2");
    let inputs = |report: &[u8], field: &str| -> u64 {
        let text = std::str::from_utf8(report).unwrap();
        text.lines().skip(1).map(|l| serde_json::from_str::<Value>(l).unwrap()["inputs"][field].as_u64().unwrap()).sum()
    };
    assert_eq!(inputs(&closed.report, "price_response_wh"), paid, "the report pays what the measurement paid");
    assert_eq!(inputs(&closed.report, "demand_response_wh"), 0, "price response is not demand response");
    assert!(closed.lines.iter().any(|l| l.score.price_response.is_some_and(|p| p > 0)));
    let path = std::env::temp_dir().join(format!("ovpp-price-response-{}.jsonl", std::process::id()));
    std::fs::write(&path, &closed.report).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../oracle/tools/verify_report.py");
    let out = std::process::Command::new("python3").arg(script).arg(&path).output().expect("python3");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The co-signer re-measures the schedule from its own readings, then agrees.
    assert!(matches!(net.cosign(1).await, Err(ovpp_oracle::epoch::EpochError::ReportMismatch { .. })));
    let records = primary.dispatch.records_credited(spec.start_ts, spec.end_ts).await.unwrap();
    assert_eq!(records.len(), 1);
    net.cosigner.state.dispatch.remeasure(&records[0], unix_now()).await.unwrap();
    assert_eq!(net.cosign(1).await.expect("identical after re-measuring").root, closed.root);
}

/// An owner opts a device out with the CLI (`ovpp device preferences`, signed with the
/// device key): the next plan leaves it out; an unregistered device is refused (the CLI
/// reads the device's status on-chain first).
#[tokio::test]
async fn an_owner_opts_a_device_out_with_the_cli() {
    let (chain, oracle, fleet, id, plan) = planned_event("dispatch-cli", 14).await;
    let banks: std::sync::Arc<dyn ovpp_chain::Chain> =
        std::sync::Arc::new(ovpp_chain::bank::BanksChain::new(chain.ctx.banks_client.clone()));
    let id = id.as_str();
    let device = fleet.devices.iter().find(|d| plan.setpoints.contains_key(&d.device_key())).expect("a planned device");
    let dir = std::env::temp_dir().join(format!("ovpp-dispatch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("device.json");
    std::fs::write(&file, serde_json::to_string(&device.key.to_keypair_bytes().to_vec()).unwrap()).unwrap();
    let run = |extra: Vec<String>| {
        let base = oracle.base.clone();
        let banks = banks.clone();
        async move {
            let args =
                ["ovpp", "--oracle-url", &base, "--output", "json", "device", "preferences"].into_iter().map(String::from).chain(extra);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = ovpp_cli::main_with(args, Some(banks), &mut out, &mut err).await;
            (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
        }
    };
    let path = file.display().to_string();
    let (code, out, err) = run(vec!["--device-keypair".into(), path.clone(), "--opt-out-hours".into(), "2".into()]).await;
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert!(answer["opt_out_until"].as_i64().unwrap() > unix_now() + 7000);
    // The device drops out: the next round re-plans without it.
    oracle.state.dispatch.tick(unix_now()).await.unwrap();
    let after = oracle.state.dispatch.plan(id).await.unwrap();
    assert!(after.revision > plan.revision && !after.setpoints.contains_key(&device.device_key()), "{after:?}");
    // A device key nobody registered: refused, exit code 1.
    let stranger = dir.join("stranger.json");
    std::fs::write(&stranger, serde_json::to_string(&Keypair::new().to_bytes().to_vec()).unwrap()).unwrap();
    let (code, _, err) = run(vec!["--device-keypair".into(), stranger.display().to_string()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not registered"), "{err}");
    let (code, _, err) = run(vec!["--device-keypair".into(), path, "--reserve-pct".into(), "120".into()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("0 to 100"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The flexibility forecast: storage from its state now, PV and EVs from the same time
/// yesterday. Region DE-BW of this fleet holds rooftop PV, an EV and a meter, no stationary
/// storage: an hour ahead (yesterday's noon readings exist) it counts yesterday's PV output
/// as curtailable; four hours ahead (yesterday sent nothing then) it forecasts nothing,
/// although every device is online now.
#[tokio::test]
async fn the_forecast_counts_yesterdays_rhythm_and_todays_storage() {
    let (chain, mut fleet) = registered_fleet(10, 15).await;
    let oracle = oracle(&chain, "dispatch-forecast").await;
    let sender = Sender::new(&oracle.base);
    // An hour later, yesterday, is midday.
    let now = recent_11_utc();
    let noon_yesterday = now + 3600 - 86_400;
    let pv = 1; // device 1: rooftop PV in DE-BW
    assert_eq!((fleet.devices[pv].region, fleet.devices[pv].profile.kind), ("DE-BW", ovpp::state::DeviceKind::RooftopSolar));
    let mut pv_w = 0;
    for t in (noon_yesterday - 600..noon_yesterday + 600).step_by(300) {
        let batches = fleet.tick(t, 300);
        if t == noon_yesterday {
            pv_w = batches[pv].batch.readings[0].average_power_w;
        }
        sender.send(&batches).await.unwrap();
    }
    assert!(pv_w > 100, "midday PV: {pv_w} W");
    // The fleet view's forecast is as of the wall clock; this one is as of `now`, with
    // readings of the last interval before it.
    sender.send(&fleet.tick(now - 300, 300)).await.unwrap();
    let forecast = oracle.state.dispatch.forecast(now, &[1, 4]).await.unwrap();
    let (one, four) = (&forecast["DE-BW"][0], &forecast["DE-BW"][1]);
    assert_eq!((one.hours, four.hours), (1, 4));
    assert!(one.flex_down_w >= u64::try_from(pv_w).unwrap(), "1 h: {one:?}, PV yesterday {pv_w} W");
    assert_eq!((four.flex_up_w, four.flex_down_w), (0, 0), "4 h: {four:?}");
    // Storage is held at its state now, so DE-BY (battery, C&I) offers something at 4 h.
    assert!(forecast["DE-BY"][1].flex_down_w > 0);
}

/// A retired device takes no dispatch: the oracle refuses its preferences (409
/// `device_not_active`), even correctly signed.
#[tokio::test]
async fn a_retired_device_has_no_preferences() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let fleet = Fleet::new(1, 5, 48.1, 11.6);
    let device = &fleet.devices[0];
    let device_key = Keypair::new_from_array(device.key.to_bytes());
    let ix = ovpp::client::register_device(owner.pubkey(), device_key.pubkey(), device.profile.kind, device.params());
    chain.send(&[ix], &[&owner, &device_key]).await.expect("register_device");
    chain.send(&[ovpp::client::retire_device(owner.pubkey(), &device_key.pubkey())], &[&owner]).await.expect("retire_device");
    let oracle = oracle(&chain, "retired-prefs").await;
    // The registry knows it (as after its first telemetry, or a scan on a real cluster).
    let known = oracle.state.registry.resolve(&[device.device_key()]).await.unwrap();
    assert_eq!(known.len(), 1);
    let prefs = Preferences { device_key: device.device_key(), sequence: 1, ..Preferences::default() };
    let mut body = serde_json::to_value(&prefs).unwrap();
    body["signature"] = json!(bs58::encode(prefs.sign(&device.key)).into_string());
    let url = format!("{}/v1/devices/{}/preferences", oracle.base, device_key.pubkey());
    let answer = oracle.http.put(url).json(&body).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 409);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["code"], "device_not_active", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("retired"), "{error}");
}
