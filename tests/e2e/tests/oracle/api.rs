//! The oracle's HTTP API under hostile input, as an outside attacker or a fuzzing client
//! would send it: every error is the documented `{"error": {"code", "message"}}` body (also
//! the ones axum makes itself), times and amounts cannot be driven into overflow, random
//! requests at every route never crash it or get a 5xx, and slow or many clients are cut
//! off by the listener's limits.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use ovpp_oracle::server::listen::{self, Limits};
use ovpp_oracle::server::router;
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::command::{DeviceSigned, Preferences};
use ovpp_wire::dispatch::event::rfc3339;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use crate::dispatch::{event_json, oracle, registered_fleet};

/// Status and JSON body of one request sent straight to the router (the whole HTTP stack
/// but the socket). A body that is not JSON is returned as a string.
async fn send(app: &Router, method: Method, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

/// The error code of a refusal, checking its body: under `/openadr3` OpenADR's `problem`
/// (the token endpoint RFC 6749's error), elsewhere `{"error": {"code", "message"}}`.
fn error_code(status: u16, body: &Value, context: &str) -> String {
    if context.starts_with("POST /openadr3/auth/token") && matches!(status, 400 | 401) {
        let code = body["error"].as_str();
        assert!(code.is_some(), "{context}: {status} without RFC 6749's error body: {body}");
        return code.unwrap().to_string();
    }
    if context.contains(" /openadr3") {
        let code = body["type"].as_str().and_then(|t| t.strip_prefix("urn:ovpp:problem:"));
        assert!(
            code.is_some() && body["status"] == status && body["title"].is_string() && body["detail"].is_string(),
            "{context}: {status} without the problem body: {body}"
        );
        return code.unwrap().to_string();
    }
    let error = &body["error"];
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()) && error["message"].as_str().is_some(),
        "{context}: {status} without the JSON error body: {body}"
    );
    error["code"].as_str().unwrap().to_string()
}

const JSON: (&str, &str) = ("content-type", "application/json");
const AUTH: (&str, &str) = ("authorization", "Bearer grid-operator-secret");

#[tokio::test]
async fn every_error_answer_is_the_documented_json_body() {
    let (chain, fleet) = registered_fleet(2, 5).await;
    let oracle = oracle(&chain, "api-errors").await;
    let keys: Vec<_> = fleet.devices.iter().map(|d| d.device_key()).collect();
    oracle.state.registry.resolve(&keys).await.unwrap();
    let app = router(oracle.state.clone());
    assert_eq!(send(&app, Method::POST, "/openadr3/programs", &[JSON, AUTH], br#"{"programName":"p"}"#.to_vec()).await.0, 201);
    let now = unix_now();
    let region = fleet.devices[0].params().region;
    let region = String::from_utf8_lossy(&region).trim_end_matches('\0').to_string();
    let event_in =
        |start: i64, duration: &str| serde_json::to_vec(&event_json("p", &region, "DISPATCH_SETPOINT", start, duration, &[5.0])).unwrap();

    let device = &fleet.devices[0];
    let key = bs58::encode(device.device_key()).into_string();
    let signed = |prefs: Preferences| {
        let mut body = serde_json::to_value(&prefs).unwrap();
        body["signature"] = json!(bs58::encode(prefs.sign(&device.key)).into_string());
        serde_json::to_vec(&body).unwrap()
    };
    let base = Preferences { device_key: device.device_key(), sequence: 1, ..Preferences::default() };
    let preferences = format!("/v1/devices/{key}/preferences");

    // (method, path, headers, body, status, error code)
    type Case<'a> = (Method, String, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (Method::GET, "/nope".into(), vec![], vec![], 404, "not_found"),
        (Method::DELETE, "/v1/telemetry".into(), vec![], vec![], 405, "method_not_allowed"),
        (Method::GET, "/v1/epochs/-1".into(), vec![], vec![], 400, "bad_path"),
        (Method::GET, "/v1/epochs/99999999999999999999".into(), vec![], vec![], 400, "bad_path"),
        (Method::GET, "/v1/epochs?limit=x".into(), vec![], vec![], 400, "bad_query"),
        (Method::GET, "/v1/fleet?bogus=1".into(), vec![], vec![], 400, "bad_query"),
        // OpenADR: search parameters a search does not take are refused, not ignored.
        (Method::GET, "/openadr3/events?eventID=x".into(), vec![AUTH], vec![], 400, "bad_query"),
        (Method::GET, "/openadr3/events?targetType=REGION".into(), vec![AUTH], vec![], 400, "bad_query"),
        (Method::GET, "/openadr3/programs?limit=51".into(), vec![AUTH], vec![], 400, "bad_query"),
        (Method::GET, "/openadr3/reports?skip=-1".into(), vec![AUTH], vec![], 400, "bad_query"),
        (Method::GET, "/openadr3/reports".into(), vec![], vec![], 401, "unauthorized"),
        (Method::GET, "/openadr3/vens".into(), vec![("authorization", "Bearer forged")], vec![], 401, "invalid_token"),
        (Method::GET, "/openadr3/nope".into(), vec![AUTH], vec![], 404, "not_found"),
        (Method::PATCH, "/openadr3/programs".into(), vec![AUTH], vec![], 405, "method_not_allowed"),
        (Method::GET, "/openadr3/events/evt-0".into(), vec![AUTH], vec![], 404, "unknown_event"),
        (Method::POST, "/openadr3/programs".into(), vec![AUTH], br#"{"programName":"q"}"#.to_vec(), 415, "unsupported_media_type"),
        (Method::POST, "/openadr3/programs".into(), vec![JSON, AUTH], br#"{"programName":"a b"}"#.to_vec(), 400, "invalid_program"),
        (Method::POST, "/openadr3/vens".into(), vec![JSON, AUTH], br#"{"venName":""}"#.to_vec(), 400, "invalid_object"),
        (Method::POST, "/openadr3/vens".into(), vec![JSON, AUTH], br#"{"venName":7}"#.to_vec(), 400, "malformed_body"),
        (Method::POST, "/openadr3/auth/token".into(), vec![], b"grant_type=password".to_vec(), 400, "unsupported_grant_type"),
        (
            Method::POST,
            "/openadr3/auth/token".into(),
            vec![],
            b"grant_type=client_credentials&client_id=x&client_secret=0123456789abcdef".to_vec(),
            401,
            "invalid_client",
        ),
        (
            Method::POST,
            "/v1/epochs/1/signatures".into(),
            vec![("content-type", "text/plain")],
            b"{}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (Method::POST, "/v1/epochs/1/signatures".into(), vec![JSON], b"{}".to_vec(), 422, "malformed_body"),
        (Method::POST, "/v1/epochs/1/signatures".into(), vec![JSON], b"{".to_vec(), 400, "malformed_body"),
        (Method::POST, "/v1/telemetry".into(), vec![JSON], vec![b' '; ovpp_oracle::server::MAX_BODY_BYTES + 1], 413, "body_too_large"),
        // Times that would overflow or lie decades ahead.
        (Method::POST, "/openadr3/events".into(), vec![JSON, AUTH], event_in(now + 60, "PT9223372036854775807S"), 400, "invalid_event"),
        (Method::POST, "/openadr3/events".into(), vec![JSON, AUTH], event_in(now + 60, "P8D"), 400, "invalid_event"),
        (Method::POST, "/openadr3/events".into(), vec![JSON, AUTH], event_in(now + 2 * 366 * 86_400, "PT15M"), 400, "invalid_event"),
        (
            Method::PUT,
            preferences.clone(),
            vec![JSON],
            signed(Preferences { departure: Some(i64::MIN), ..base.clone() }),
            400,
            "invalid_preferences",
        ),
        (
            Method::PUT,
            preferences.clone(),
            vec![JSON],
            signed(Preferences { departure: Some(i64::MAX), ..base.clone() }),
            400,
            "invalid_preferences",
        ),
        (
            Method::PUT,
            preferences.clone(),
            vec![JSON],
            signed(Preferences { reserve_soc_permille: 1001, ..base.clone() }),
            400,
            "invalid_preferences",
        ),
        (
            Method::PUT,
            preferences.clone(),
            vec![JSON],
            signed(Preferences { opt_out_until: -1, ..base.clone() }),
            400,
            "invalid_preferences",
        ),
        (Method::PUT, preferences.clone(), vec![], signed(base.clone()), 415, "unsupported_media_type"),
    ];
    for (method, uri, headers, body, status, code) in cases {
        let context = format!("{method} {uri}");
        let (got, answer) = send(&app, method, &uri, &headers, body).await;
        assert_eq!(got, status, "{context}: {answer}");
        assert_eq!(error_code(got, &answer, &context), code, "{context}: {answer}");
    }
    // The dispatcher still works after all that (nothing panicked inside it), and a bounded
    // departure is taken.
    oracle.state.dispatch.tick(unix_now()).await.unwrap();
    let fine = signed(Preferences { departure: Some(now + 3600), departure_soc_permille: 800, ..base });
    assert_eq!(send(&app, Method::PUT, &preferences, &[JSON], fine).await.0, 200);
    // 405 keeps its `Allow` header.
    let response = app.clone().oneshot(Request::delete("/v1/fleet").body(Body::empty()).unwrap()).await.unwrap();
    assert!(response.headers().get("allow").is_some());
}

/// Random requests at every route: random methods, path segments, query strings, bodies and
/// content types. None may crash the oracle or get a 5xx; every 4xx is the JSON error body.
#[test]
fn random_requests_at_every_route_get_json_answers_never_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_chain, oracle, key) = runtime.block_on(async {
        let (chain, fleet) = registered_fleet(1, 9).await;
        let oracle = oracle(&chain, "api-fuzz").await;
        oracle.state.registry.resolve(&[fleet.devices[0].device_key()]).await.unwrap();
        (chain, oracle, bs58::encode(fleet.devices[0].device_key()).into_string())
    });
    let app = router(oracle.state.clone());
    let templates = [
        "/v1/telemetry",
        "/v1/fleet",
        "/v1/devices/{key}",
        "/v1/epochs",
        "/v1/epochs/{n}",
        "/v1/epochs/{n}/report",
        "/v1/epochs/{n}/signatures",
        "/v1/rewards/{key}",
        "/openadr3/auth/token",
        "/openadr3/programs",
        "/openadr3/programs/{n}",
        "/openadr3/events",
        "/openadr3/events/{n}",
        "/openadr3/reports",
        "/openadr3/reports/{n}",
        "/openadr3/subscriptions",
        "/openadr3/subscriptions/{n}",
        "/openadr3/vens",
        "/openadr3/vens/{n}",
        "/openadr3/vens/{n}/resources",
        "/openadr3/vens/{n}/resources/{n}",
        "/v1/events",
        "/v1/events/{n}/report",
        "/v1/events/records",
        "/v1/devices/{key}/commands",
        "/v1/commands",
        "/v1/devices/{key}/acks",
        "/v1/devices/{key}/preferences",
        "/metrics",
        "/healthz",
        "/{n}",
    ];
    let segment = prop_oneof![
        Just(key.clone()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        "[a-zA-Z0-9%._~-]{0,48}",
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just("?limit=0".to_string()),
        Just("?limit=-5".to_string()),
        Just("?eventID=x".to_string()),
        Just("?credited_from=-9223372036854775808&credited_to=9223372036854775807".to_string()),
        Just("?kind=home_battery&region=DE-BY".to_string()),
        "\\?[a-zA-Z_]{1,10}=[a-zA-Z0-9%-]{0,20}",
    ];
    let json_value = prop_oneof![
        Just(json!(null)),
        prop::sample::select(vec![
            json!({"programName": "fuzz"}),
            json!({"venName": "fuzz", "resources": [{"resourceName": "r"}, {"resourceName": "r"}]}),
            json!({"clientName": "c", "programID": "fuzz",
                "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/x"}]}),
            json!({"programID": "fuzz", "eventID": "e", "clientName": "c", "resources": []}),
        ]),
        Just(json!({"devices": [key.clone(), "x"]})),
        Just(json!({"command_id": "c", "accept": true, "signature": "1"})),
        Just(event_json("fuzz", "DE-BY", "PRICE", unix_now(), "PT1H", &[1e300])),
        Just(event_json("fuzz", "DE-BY", "DISPATCH_SETPOINT", i64::MAX / 1000, "P1W", &[1.0])),
        Just(json!([{"device_key": key.clone(), "sequence": u64::MAX, "readings": [], "signature": "2"}])),
        any::<i64>().prop_map(|n| json!({"device_key": key.clone(), "sequence": 1, "reserve_soc_permille": 0, "departure": n,
            "departure_soc_permille": 0, "opt_out_until": n, "signature": "3"})),
        any::<f64>().prop_map(|f| json!({"intervalPeriod": {"start": rfc3339(0), "duration": "PT1S"}, "value": f})),
    ];
    let body = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..512),
        json_value.prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ];
    let content_type =
        prop_oneof![Just(None), Just(Some("application/json")), Just(Some("application/octet-stream")), Just(Some("text/plain")),];
    let method = prop_oneof![Just(Method::GET), Just(Method::POST), Just(Method::PUT), Just(Method::DELETE), Just(Method::PATCH)];
    let request = (method, 0..templates.len(), segment, query, body, content_type, any::<bool>());
    let mut runner = TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
    runner
        .run(&request, |(method, template, segment, query, body, content_type, authorized)| {
            let uri = format!("{}{query}", templates[template].replace("{key}", &segment).replace("{n}", &segment));
            let mut headers = Vec::new();
            if let Some(ct) = content_type {
                headers.push(("content-type", ct));
            }
            if authorized {
                headers.push(AUTH);
            }
            let context = format!("{method} {uri} ({content_type:?}, {} body bytes)", body.len());
            let (status, answer) = runtime.block_on(send(&app, method, &uri, &headers, body));
            prop_assert!(status < 500, "{}: {} {}", context, status, answer);
            if status >= 400 {
                error_code(status, &answer, &context);
            }
            Ok(())
        })
        .unwrap();
    // Still serving.
    let (status, _) = runtime.block_on(send(&app, Method::GET, "/healthz", &[], vec![]));
    assert_eq!(status, 200);
}

/// A listener with tight limits, on a real socket: the address and the running server.
async fn serve_with(
    limits: Limits,
    tls: Option<listen::TlsAcceptor>,
) -> (std::net::SocketAddr, crate::Oracle, ovpp_program_tests::TestChain) {
    let (chain, _) = registered_fleet(1, 3).await;
    let oracle = oracle(&chain, &format!("api-listen-{}", limits.max_connections)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listen::serve(listener, router(oracle.state.clone()), limits, tls, std::future::pending()));
    (addr, oracle, chain)
}

/// Reads until the server closes the connection (or 10 s pass); what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await.expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_and_many_clients_are_cut_off() {
    let limits = Limits {
        max_connections: 1,
        header_timeout: Duration::from_millis(700),
        request_timeout: Duration::from_millis(700),
        drain_timeout: Duration::from_secs(1),
    };
    let (addr, _oracle, _chain) = serve_with(limits, None).await;

    // Headers that never end: the connection is closed.
    let mut slow_headers = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow_headers.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // Meanwhile a second client waits: only one connection is served at a time.
    let second = tokio::spawn(async move { reqwest::get(format!("http://{addr}/healthz")).await.map(|r| r.status().as_u16()) });
    read_until_closed(&mut slow_headers).await;
    assert_eq!(second.await.unwrap().unwrap(), 200, "served once the slow client was cut off");

    // A body that never arrives in full: 408 with the JSON error body.
    let mut slow_body = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow_body
        .write_all(b"POST /v1/telemetry HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n[{")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let dir = std::env::temp_dir().join(format!("ovpp-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl to make a test certificate");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    // Files that are not what they say are refused with the file named.
    let wrong = listen::tls_acceptor(&key, &cert).err().expect("key and certificate swapped").to_string();
    assert!(wrong.contains("cert.pem") || wrong.contains("key.pem"), "{wrong}");

    let acceptor = listen::tls_acceptor(&cert, &key).unwrap();
    let (addr, _oracle, _chain) = serve_with(Limits::default(), Some(acceptor)).await;
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
    let answer = client.get(format!("https://{addr}/healthz")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // Plain HTTP to the TLS port gets no answer.
    assert!(reqwest::get(format!("http://{addr}/healthz")).await.is_err());
}

/// Fault injection: a background task that panics (here one spawned beside the real ones,
/// through the same supervisor) turns the health check to 503 naming it, and its metric to 0;
/// the real tasks are listed as running.
#[tokio::test]
async fn a_stopped_background_task_fails_the_health_check() {
    let (chain, _) = registered_fleet(1, 4).await;
    let oracle = oracle(&chain, "api-tasks").await;
    let app = router(oracle.state.clone());
    assert_eq!(send(&app, Method::GET, "/healthz", &[], vec![]).await, (200, json!({"status": "ok", "leader": true})));
    oracle.state.tasks.spawn("injected_fault", async { panic!("injected fault") });
    while oracle.state.tasks.dead().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, health) = send(&app, Method::GET, "/healthz", &[], vec![]).await;
    assert_eq!((status, health["dead_tasks"].clone()), (503, json!(["injected_fault"])), "{health}");
    error_code(status, &health, "GET /healthz");
    let (_, metrics) = send(&app, Method::GET, "/metrics", &[], vec![]).await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("ovpp_task_up{task=\"injected_fault\"} 0"), "{metrics}");
    for task in ["ingest_writer", "registry_sync", "load_profiles", "dispatch"] {
        assert!(metrics.contains(&format!("ovpp_task_up{{task=\"{task}\"}} 1")), "{task}: {metrics}");
    }
}
