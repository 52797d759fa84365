//! One `ovpp-gateway` process (the release binary, as an operator runs it) holding 10,000
//! OCPP 1.6J charger connections, each charging and sending a MeterValues every 60 s, as
//! the scale target asks: the gateway's CPU share of one core and its memory per
//! connection, read from `/proc/<pid>` of the gateway alone.
//!
//! The chargers are websocket clients in this process (in the OCPP 1.6J frames the e2e
//! tests check against the Python `ocpp` library); the oracle is a stand-in in this
//! process that takes every batch as accepted and has no commands, so the gateway does all
//! its own work (parse, meter, commit each reading before answering, sign the batches and
//! the command queries, send, clear its buffer) and none of an oracle's.
//!
//! `cargo bench -p ovpp-gateway --bench ocpp_connections` (about 5 minutes);
//! `OVPP_BENCH_CHARGERS` and `OVPP_BENCH_WINDOW_SECS` change the size and the measured
//! window. Not criterion: the measure is a steady state over minutes, not a repeated call.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use axum::Json;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use ovpp_wire::dispatch::view::CommandsAnswer;
use ovpp_wire::http::{BatchResult, BatchStatus, TelemetryAnswer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "bench-password-0123";
const METER_SECS: u64 = 60;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The stand-in oracle: every batch accepted, no commands.
async fn oracle(batches: Arc<AtomicU64>) -> SocketAddr {
    let counted = batches.clone();
    let app = axum::Router::new()
        .route(
            "/v1/telemetry",
            post(move |body: Bytes| {
                let counted = counted.clone();
                async move {
                    let n = ovpp_wire::telemetry::decode_batches(&body).map(|b| b.len()).unwrap_or(0);
                    counted.fetch_add(n as u64, Ordering::Relaxed);
                    let result = BatchResult { status: BatchStatus::Accepted, reason: None, message: None };
                    Json(TelemetryAnswer { accepted: n, rejected: 0, results: vec![result; n] })
                }
            }),
        )
        .route("/v1/commands", post(|| async { Json(CommandsAnswer { now: ovpp_wire::clock::unix_now(), devices: Default::default() }) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// utime + stime of `pid`, in clock ticks, and its resident set, KiB.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
    (ticks, rss)
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Sends a CALL and waits for its CALLRESULT (the gateway makes no calls here).
async fn call(ws: &mut Ws, id: u64, action: &str, payload: Value) -> Result<Value, String> {
    let text = json!([2, id.to_string(), action, payload]).to_string();
    ws.send(Message::text(text)).await.map_err(|e| e.to_string())?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                return match v[0].as_u64() {
                    Some(3) => Ok(v[2].clone()),
                    _ => Err(format!("{action}: {t}")),
                };
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("{action}: connection ended: {other:?}")),
        }
    }
}

fn now_text() -> String {
    let now = chrono::DateTime::from_timestamp(ovpp_wire::clock::unix_now(), 0).unwrap_or_default();
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Counters {
    finished: std::sync::atomic::AtomicBool,
    connected: AtomicU64,
    meter_values: AtomicU64,
    failures: AtomicU64,
    /// Sum and maximum of the MeterValues round trips, microseconds.
    latency_sum_us: AtomicU64,
    latency_max_us: AtomicU64,
}

/// A charger connects, boots and starts a transaction.
async fn connect(port: u16, i: usize) -> Result<(Ws, i64), String> {
    let id = format!("CP-{i:05}");
    let mut request = format!("ws://127.0.0.1:{port}/ocpp/{id}").into_client_request().map_err(|e| e.to_string())?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{PASSWORD}"));
    request.headers_mut().insert("authorization", format!("Basic {token}").parse().unwrap());
    request.headers_mut().insert("sec-websocket-protocol", "ocpp1.6".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.map_err(|e| e.to_string())?;
    call(&mut ws, 1, "BootNotification", json!({"chargePointVendor": "bench", "chargePointModel": "bench"})).await?;
    call(&mut ws, 2, "StatusNotification", json!({"connectorId": 1, "errorCode": "NoError", "status": "Charging"})).await?;
    let start = json!({"connectorId": 1, "idTag": "BENCH", "meterStart": 1_000_000, "timestamp": now_text()});
    let started = call(&mut ws, 3, "StartTransaction", start).await?;
    Ok((ws, started["transactionId"].as_i64().ok_or("no transactionId")?))
}

/// Charging at 7.4 kW: a MeterValues every minute at the charger's own offset within it.
async fn meter(mut ws: Ws, transaction: i64, offset: Duration, counters: Arc<Counters>) -> Result<(), String> {
    let mut register = 1_000_000u64;
    tokio::time::sleep(offset).await;
    let mut ticker = tokio::time::interval(Duration::from_secs(METER_SECS));
    for message in 4u64.. {
        ticker.tick().await;
        register += 7400 * METER_SECS / 3600;
        let values = json!({"connectorId": 1, "transactionId": transaction, "meterValue": [{"timestamp": now_text(), "sampledValue": [
            {"value": register.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}]}]});
        let sent = Instant::now();
        call(&mut ws, message, "MeterValues", values).await?;
        let us = sent.elapsed().as_micros() as u64;
        counters.meter_values.fetch_add(1, Ordering::Relaxed);
        counters.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        counters.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }
    Ok(())
}

fn main() {
    let chargers = env_or("OVPP_BENCH_CHARGERS", 10_000) as usize;
    let window = Duration::from_secs(env_or("OVPP_BENCH_WINDOW_SECS", 180));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let batches = Arc::new(AtomicU64::new(0));
        let oracle = oracle(batches.clone()).await;
        let dir = std::env::temp_dir().join(format!("ovpp-gateway-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ocpp_port = free_port();
        let mut config = format!(
            "state_dir = {:?}\noracle_urls = [\"http://{oracle}\"]\nstatus_listen = \"127.0.0.1:{}\"\n\n[ocpp]\nlisten = \"127.0.0.1:{ocpp_port}\"\ninterval_secs = 60\nheartbeat_secs = 300\n",
            dir.join("state").display().to_string(),
            free_port()
        );
        for i in 0..chargers {
            config.push_str(&format!(
                "\n[[ocpp.chargers]]\nid = \"CP-{i:05}\"\npassword = \"{PASSWORD}\"\nregion = \"DE-BY\"\npower_w = 11000\n"
            ));
        }
        let config_path = dir.join("ovpp-gateway.toml");
        std::fs::File::create(&config_path).unwrap().write_all(config.as_bytes()).unwrap();

        let mut gateway = std::process::Command::new(env!("CARGO_BIN_EXE_ovpp-gateway"))
            .arg("--config")
            .arg(&config_path)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stderr(std::fs::File::create(dir.join("gateway.log")).unwrap())
            .spawn()
            .unwrap();
        let pid = gateway.id();
        // Up once its OCPP port answers (it makes 10,000 keys on a first start).
        let up = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", ocpp_port)).await.is_err() {
            assert!(up.elapsed() < Duration::from_secs(300), "the gateway did not start; see {}", dir.join("gateway.log").display());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, rss_idle) = usage(pid);
        println!("gateway started in {:.1} s (keys for {chargers} chargers made), {} MiB resident", up.elapsed().as_secs_f64(), rss_idle / 1024);

        let counters = Arc::new(Counters {
            finished: std::sync::atomic::AtomicBool::new(false),
            connected: AtomicU64::new(0),
            meter_values: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
        });
        let connecting = Instant::now();
        // At most 256 handshakes at a time, as a fleet reconnecting after an outage would be.
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        for i in 0..chargers {
            let (counters, gate) = (counters.clone(), gate.clone());
            let offset = Duration::from_millis(i as u64 * METER_SECS * 1000 / chargers as u64);
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.unwrap();
                let connected = connect(ocpp_port, i).await;
                drop(permit);
                let outcome = match connected {
                    Ok((ws, transaction)) => {
                        counters.connected.fetch_add(1, Ordering::Relaxed);
                        meter(ws, transaction, offset, counters.clone()).await
                    }
                    Err(e) => Err(e),
                };
                // The gateway stopped at the end of the measurement closes every charger.
                if let (Err(e), false) = (outcome, counters.finished.load(Ordering::Relaxed)) {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("charger {i}: {e}");
                }
            });
        }
        while (counters.connected.load(Ordering::Relaxed) as usize) < chargers {
            assert!(connecting.elapsed() < Duration::from_secs(600), "only {} chargers connected", counters.connected.load(Ordering::Relaxed));
            assert_eq!(counters.failures.load(Ordering::Relaxed), 0);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!("{chargers} chargers connected and charging in {:.1} s", connecting.elapsed().as_secs_f64());

        // One full round of meter values first (buffers and caches at their working size).
        tokio::time::sleep(Duration::from_secs(METER_SECS + 5)).await;
        let (ticks_before, rss_before) = usage(pid);
        let (meters_before, batches_before) = (counters.meter_values.load(Ordering::Relaxed), batches.load(Ordering::Relaxed));
        let (sum_before, measured) = (counters.latency_sum_us.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(window).await;
        let (ticks_after, rss_after) = usage(pid);
        let elapsed = measured.elapsed().as_secs_f64();
        let meters = counters.meter_values.load(Ordering::Relaxed) - meters_before;
        let delivered = batches.load(Ordering::Relaxed) - batches_before;
        let cpu = (ticks_after - ticks_before) as f64 / ticks_per_second() / elapsed;
        let mean_ms = (counters.latency_sum_us.load(Ordering::Relaxed) - sum_before) as f64 / meters.max(1) as f64 / 1000.0;
        println!("measured over {elapsed:.0} s:");
        println!("  meter values answered: {meters} ({:.0}/s), batches delivered to the oracle: {delivered}", meters as f64 / elapsed);
        println!(
            "  round trip of a MeterValues (reading committed before the answer): mean {mean_ms:.1} ms, max {:.1} ms (whole run)",
            counters.latency_max_us.load(Ordering::Relaxed) as f64 / 1000.0
        );
        println!("  gateway CPU: {:.1} % of one core", cpu * 100.0);
        println!(
            "  gateway memory: {} MiB resident ({} MiB before the chargers connected): {:.1} KiB per connection",
            rss_after / 1024,
            rss_idle / 1024,
            (rss_after.max(rss_before) - rss_idle) as f64 / chargers as f64
        );
        println!("  failures: {}", counters.failures.load(Ordering::Relaxed));
        counters.finished.store(true, Ordering::Relaxed);
        let _ = gateway.kill();
        let _ = gateway.wait();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
