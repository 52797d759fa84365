//! Real devices through the gateway, against an implementation no one here wrote: charge
//! points built on the Python `ocpp` library (OCPP 1.6J and 2.0.1; it also checks every
//! message the gateway sends against the OCPP JSON schemas), talking to `ovpp-gateway`,
//! which signs and buffers their readings for a real oracle and turns its set points into
//! charging profiles. The library is installed from `tests/gateway/requirements.txt` into
//! a venv outside the clone.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ovpp_gateway::config::{ChargerConfig, Config, EvConfig, OcppConfig, RateUnit};
use ovpp_gateway::Gateway;
use ovpp_oracle::dispatch::DispatchSettings;
use ovpp_program_tests::TestChain;
use ovpp_wire::clock::unix_now;
use ovpp_wire::telemetry::GridResponse;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::dispatch::{event_json, TOKEN};
use crate::{free_port, repo};

const PASSWORD: &str = "correct-horse-battery";

/// The venv with the pinned `ocpp` library and the meter and Modbus libraries, made once per
/// machine (about 10 s).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| crate::python_venv("ovpp-python-ocpp", "tests/gateway/requirements.txt", Path::new("python3"))).clone()
}

/// A charge point process; its JSON event lines collected as they come.
struct ChargePoint {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    name: String,
}

impl ChargePoint {
    async fn start(name: &str, args: &[String]) -> Self {
        Self::script("charge_point.py", name, args).await
    }

    /// Any of the test devices in `tests/gateway` that print JSON event lines.
    async fn script(script: &str, name: &str, args: &[String]) -> Self {
        let python = tokio::task::spawn_blocking(python).await.unwrap();
        let mut child = Command::new(python)
            .arg(repo().join("tests/gateway").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let collected = events.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    collected.lock().unwrap().push(v);
                }
            }
        });
        let text = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                text.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Self { stdin: child.stdin.take(), child, events, stderr, name: name.to_string() }
    }

    /// The first event named `event` that `matches`, waiting up to `limit`.
    async fn wait_for(&mut self, event: &str, matches: impl Fn(&Value) -> bool, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = self.events.lock().unwrap().iter().find(|v| v["event"] == event && matches(v)) {
                return v.clone();
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && tokio::time::Instant::now() < deadline,
                "charge point {}: no {event} event in {limit:?} (exit {exited:?}); events {:?}\nstderr:\n{}",
                self.name,
                self.events.lock().unwrap(),
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ends the transaction; returns the `stopped` event (meter start and stop).
    async fn stop(&mut self) -> Value {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        self.wait_for("stopped", |_| true, Duration::from_secs(20)).await
    }
}

impl Drop for ChargePoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn charger(id: &str, power_w: u64) -> ChargerConfig {
    ChargerConfig { id: id.into(), password: PASSWORD.into(), region: "DE-BY".into(), power_w, rate_unit: RateUnit::W, phases: 3, ev: None }
}

fn gateway_config(dir: &Path, oracle: &str, chargers: Vec<ChargerConfig>, tls: Option<(PathBuf, PathBuf)>) -> Config {
    Config {
        state_dir: dir.to_path_buf(),
        oracle_urls: vec![oracle.to_string()],
        status_listen: ([127, 0, 0, 1], free_port()).into(),
        send_secs: 1,
        command_poll_secs: 1,
        ocpp: Some(OcppConfig {
            listen: ([127, 0, 0, 1], free_port()).into(),
            tls_cert: tls.as_ref().map(|t| t.0.clone()),
            tls_key: tls.map(|t| t.1),
            heartbeat_secs: 60,
            interval_secs: 10,
            call_timeout_secs: 10,
            chargers,
        }),
        simulator: None,
        meters: Vec::new(),
        sunspec: Vec::new(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ovpp-gateway-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The owner registers every device of the gateway's config on-chain exactly as the README
/// says: `ovpp-gateway keys export`, then each printed `ovpp device register` command run
/// through the CLI. Returns each device's name and key.
async fn register(chain: &mut TestChain, config: &Config) -> Vec<(String, [u8; 32])> {
    let gateway = Gateway::open(config.clone(), ovpp_gateway::adapters(config).unwrap()).await.unwrap();
    let export = config.state_dir.join("../export");
    let rows = gateway.export_keys(Some(&export)).unwrap();
    drop(gateway);
    let owner = chain.new_owner().await;
    let owner_file = crate::cli::keypair_file(&export, "owner.json", &owner);
    let cli_chain: Arc<dyn ovpp_chain::Chain> = Arc::new(ovpp_chain::bank::BanksChain::new(chain.ctx.banks_client.clone()));
    let mut out = Vec::new();
    for row in rows {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(row.keypair.as_ref().unwrap()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}: the exported device key is the owner's only", row.name);
        }
        let command = row.register.unwrap().replace("<owner keypair>", &owner_file);
        let args: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(args[0], "ovpp", "{command}");
        crate::cli::ovpp(&cli_chain, &args[1..]).await.json_or_text();
        let key: [u8; 32] = bs58::decode(&row.device_key).into_vec().unwrap().try_into().unwrap();
        out.push((row.name, key));
    }
    out
}

/// Logs of the gateway and oracle under `RUST_LOG` (e.g. `ovpp_gateway=debug`), in the test's output.
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

fn start_gateway(gateway: Arc<Gateway>) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
    logs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(gateway.run(async {
        let _ = stopped.await;
    }));
    (stop, run)
}

fn cp_args(id: &str, url: &str, version: &str, power_w: u32, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--url", url, "--id", id, "--password", PASSWORD, "--version", version, "--power-w", &power_w.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A self-signed certificate for `localhost` (OCPP security profile 2).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (cert, key)
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, limit: Duration, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Two chargers (1.6J and 2.0.1, over TLS with Basic auth) and a third that refuses
/// charging profiles: their meter values reach the oracle as signed readings, a
/// demand-response event in their region makes the gateway send SetChargingProfile, the
/// chargers lower their power, their telemetry says they follow, the refusal is acked as
/// one, and the event's measurement credits both chargers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocpp_chargers_of_both_versions_follow_a_demand_response_event_and_are_credited() {
    let dir = temp_dir("dr");
    let tls = certificate(&dir);
    let mut chain = TestChain::initialized(1, 1).await;
    let mut chargers = vec![charger("CP-16", 11_000), charger("CP-201", 11_000), charger("CP-NO", 11_000)];
    chargers[1].rate_unit = RateUnit::A;
    chargers[1].ev = Some(EvConfig { capacity_wh: 60_000, power_w: None });
    let mut config = gateway_config(&dir.join("gateway"), "http://placeholder", chargers, Some(tls.clone()));
    let devices = register(&mut chain, &config).await;
    let key = |name: &str| devices.iter().find(|(n, _)| n == name).unwrap().1;

    let settings =
        DispatchSettings { grid_tokens: vec![TOKEN.into()], tick_secs: 1, measure_delay_secs: 12, ..DispatchSettings::default() };
    let oracle = crate::start_oracle_with(&chain, "gateway-dr", settings).await;
    oracle.state.registry.refresh().await.unwrap();
    config.oracle_urls = vec![oracle.base.clone()];
    let ocpp = config.ocpp.as_ref().unwrap().listen;
    let gateway = Gateway::open(config.clone(), ovpp_gateway::adapters(&config).unwrap()).await.unwrap();
    let (_stop, _run) = start_gateway(gateway.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let url = |id: &str| format!("wss://localhost:{}/ocpp/{id}", ocpp.port());
    let cafile = tls.0.display().to_string();
    let tls_args = ["--cafile", cafile.as_str(), "--meter-secs", "2"];
    let mut cp16 = ChargePoint::start("CP-16", &cp_args("CP-16", &url("CP-16"), "1.6", 7400, &tls_args)).await;
    let mut cp201 = ChargePoint::start("CP-201", &cp_args("CP-201", &url("CP-201"), "2.0.1", 6900, &tls_args)).await;
    let mut refusing =
        ChargePoint::start("CP-NO", &cp_args("CP-NO", &url("CP-NO"), "1.6", 7400, &[&tls_args[..], &["--reject-profiles"][..]].concat()))
            .await;
    for cp in [&mut cp16, &mut cp201, &mut refusing] {
        cp.wait_for("meter", |_| true, Duration::from_secs(30)).await;
    }

    // Charging readings at the oracle, signed by the gateway's device keys.
    wait_until("charging readings at the oracle", Duration::from_secs(40), || async {
        let mut all = true;
        for name in ["CP-16", "CP-201", "CP-NO"] {
            let latest = oracle.state.fleet.latest(&key(name)).await.map(|l| l.reading);
            all &= latest.is_some_and(|r| r.energy_imported_wh > 0 && r.flex_up_w > 5_000);
        }
        all
    })
    .await;
    let car = oracle.state.fleet.latest(&key("CP-201/ev")).await.expect("the car behind CP-201 reports").reading;
    assert!(car.state_of_charge_permille.is_some_and(|s| s >= 400), "{car:?}");

    // A 30 s shed event in DE-BY for 15 kW (with the reserve, more than any two chargers
    // could give: all three are commanded), starting on the next whole minute 20 s away.
    let (status, _) = post(&oracle, "/openadr3/programs", &json!({"programName": "ev-relief"})).await;
    assert_eq!(status, 201);
    let start = (unix_now() + 20 + 59) / 60 * 60;
    let (status, event) =
        post(&oracle, "/openadr3/events", &event_json("ev-relief", "DE-BY", "DISPATCH_SETPOINT", start, "PT30S", &[15.0])).await;
    assert_eq!(status, 201, "{event}");
    let id = event["id"].as_str().unwrap().to_string();

    // The set points arrive as charging profiles; the chargers draw less.
    let until_event = Duration::from_secs((start - unix_now()).max(0) as u64 + 20);
    let p16 = cp16.wait_for("profile", |_| true, until_event).await;
    let p201 = cp201.wait_for("profile", |_| true, until_event).await;
    assert_eq!(p16["unit"], "W");
    assert_eq!(p201["unit"], "A", "CP-201 is configured for limits in amperes");
    cp16.wait_for("meter", |m| m["power_w"].as_i64().unwrap() < 7400, Duration::from_secs(10)).await;
    cp201.wait_for("meter", |m| m["power_w"].as_i64().unwrap() < 6900, Duration::from_secs(10)).await;
    let refused = Duration::from_secs(5);
    wait_until("the refusing charger's refusal", refused + until_event, || async {
        gateway.metrics.commands_refused.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
    assert!(refusing.events.lock().unwrap().iter().all(|e| e["event"] != "profile"));
    // The operator sees it in the gateway's metrics: four devices (three chargers and a car)
    // connected, the refusal counted.
    let metrics = reqwest::get(format!("http://{}/metrics", config.status_listen)).await.unwrap().text().await.unwrap();
    let metric = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or_else(|| panic!("{name}: {metrics}"))
    };
    assert_eq!(metric("ovpp_gateway_devices_connected"), 4);
    assert!(metric("ovpp_gateway_commands_refused_total") >= 1 && metric("ovpp_gateway_commands_applied_total") >= 2);

    // Measured after the event: both chargers delivered and are paid.
    let measured = Duration::from_secs((start + 30 - unix_now()).max(0) as u64 + 60);
    wait_until("the event's measurement", measured, || {
        let (store, id) = (oracle.state.store.clone(), id.clone());
        async move { store.event_report(&id).await.unwrap().is_some() }
    })
    .await;
    let report = oracle.state.store.event_report(&id).await.unwrap().unwrap();
    for name in ["CP-16", "CP-201"] {
        let text = bs58::encode(key(name)).into_string();
        let d = report.devices.iter().find(|d| d.device == text).unwrap_or_else(|| panic!("{name} not in the report: {report:?}"));
        assert!(d.delivered_wh > 0 && d.paid_wh > 0, "{name}: {d:?}");
    }
    // While limited, their telemetry said they followed, in every reading after the first
    // (which began before the limit took force); a complying charger that looked otherwise
    // would be re-planned as if it had dropped out. Afterwards the profile was cleared.
    let during = oracle.state.store.readings_between(start, start + 30).await.unwrap();
    for name in ["CP-16", "CP-201"] {
        let limited: Vec<_> = during.iter().filter(|r| r.device_key == key(name) && r.reading.interval_start >= start + 10).collect();
        assert!(
            !limited.is_empty() && limited.iter().all(|r| r.reading.grid_response == GridResponse::FollowingDispatch),
            "{name} did not report following dispatch throughout: {:?}",
            during
                .iter()
                .filter(|r| r.device_key == key(name))
                .map(|r| (r.reading.interval_start, r.reading.average_power_w, r.reading.grid_response))
                .collect::<Vec<_>>()
        );
    }
    cp16.wait_for("cleared", |_| true, Duration::from_secs(20)).await;
    cp201.wait_for("cleared", |_| true, Duration::from_secs(20)).await;
}

async fn post(oracle: &crate::Oracle, path: &str, body: &Value) -> (u16, Value) {
    let response = oracle.http.post(format!("{}{path}", oracle.base)).bearer_auth(TOKEN).json(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// An oracle on a fixed port over `database` (to be killed and started again on it).
async fn oracle_on(
    chain: &TestChain,
    database: &str,
    port: u16,
) -> (ovpp_oracle::server::AppState, tokio::task::JoinHandle<std::io::Result<()>>) {
    let banks = Arc::new(ovpp_chain::bank::BanksChain::new(chain.ctx.banks_client.clone()));
    let policy = ovpp_wire::telemetry::validate::Policy::default();
    let state = ovpp_oracle::service::start(
        database,
        banks,
        ovpp_oracle::service::Options { policy, registry_refresh: Duration::from_secs(3600), ..Default::default() },
    )
    .await
    .unwrap();
    state.registry.refresh().await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], port).into()).unwrap();
    let listener = socket.listen(128).unwrap();
    let app = ovpp_oracle::server::router(state.clone());
    let limits = ovpp_oracle::server::listen::Limits::default();
    (state.clone(), tokio::spawn(ovpp_oracle::server::listen::serve(listener, app, limits, None, std::future::pending())))
}

/// The oracle killed mid-run and started again while a charger keeps metering: the
/// gateway buffers, then delivers; every reading is at the oracle exactly once, on an
/// unbroken grid, and their energy is exactly what the charger's register counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_arrives_exactly_once_through_an_oracle_restart() {
    let dir = temp_dir("restart");
    let mut chain = TestChain::initialized(1, 1).await;
    let port = free_port();
    let oracle_url = format!("http://127.0.0.1:{port}");
    let config = gateway_config(&dir.join("gateway"), &oracle_url, vec![charger("CP-R", 11_000)], None);
    let devices = register(&mut chain, &config).await;
    let key = devices[0].1;
    let database = format!("sqlite://{}", dir.join("oracle.db").display());
    let (state, server) = oracle_on(&chain, &database, port).await;

    let ocpp = config.ocpp.as_ref().unwrap().listen;
    let gateway = Gateway::open(config.clone(), ovpp_gateway::adapters(&config).unwrap()).await.unwrap();
    let (_stop, _run) = start_gateway(gateway.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("ws://127.0.0.1:{}/ocpp/CP-R", ocpp.port());
    let mut cp = ChargePoint::start("CP-R", &cp_args("CP-R", &url, "1.6", 7400, &["--meter-secs", "1"])).await;
    let count = |state: ovpp_oracle::server::AppState| async move {
        state.store.readings_between(0, i64::MAX).await.unwrap().iter().filter(|r| r.device_key == key).count()
    };
    wait_until("readings before the outage", Duration::from_secs(40), || {
        let state = state.clone();
        async move { count(state).await >= 2 }
    })
    .await;

    // Killed: the server and its tasks stop at once, mid-request or not.
    server.abort();
    state.tasks.stop().await;
    state.store.close().await;
    let stored_before = count_in(&database, key).await;
    wait_until("readings queued in the gateway", Duration::from_secs(40), || {
        let store = gateway.store.clone();
        let url = oracle_url.clone();
        async move { store.depth(&url).await.unwrap() >= 2 }
    })
    .await;

    // Back on the same database and port; the charger meters on, then stops.
    let (state, _server) = oracle_on(&chain, &database, port).await;
    wait_until("the backlog delivered", Duration::from_secs(40), || {
        let state = state.clone();
        async move { count(state).await >= stored_before + 3 }
    })
    .await;
    let stopped = cp.stop().await;
    let (meter_start, meter_stop) = (stopped["meter_start"].as_u64().unwrap(), stopped["meter_stop"].as_u64().unwrap());
    // The charger leaves after its transaction; its last reading is completed at the next
    // grid time with the rest of the register; then nothing is queued.
    let stop_time = unix_now();
    wait_until("the buffer drained after the stop", Duration::from_secs(40), || {
        let store = gateway.store.clone();
        let url = oracle_url.clone();
        async move { unix_now() > stop_time + 25 && store.depth(&url).await.unwrap() == 0 }
    })
    .await;

    let mut readings: Vec<_> =
        state.store.readings_between(0, i64::MAX).await.unwrap().into_iter().filter(|r| r.device_key == key).map(|r| r.reading).collect();
    readings.sort_by_key(|r| r.interval_start);
    for pair in readings.windows(2) {
        assert_eq!(pair[1].interval_start, pair[0].interval_start + 10, "a gap or an overlap: {:?}", &pair);
    }
    let energy: u64 = readings.iter().map(|r| u64::from(r.energy_imported_wh)).sum();
    // To the Wh, the last of it in the reading completed after the charger left.
    assert_eq!(energy, meter_stop - meter_start, "the readings' energy against the charger's register");
    let recorded = gateway.metrics.readings_recorded.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(readings.len() as u64, recorded, "every reading the gateway recorded is at the oracle, once");
    assert_eq!(gateway.metrics.readings_refused.load(std::sync::atomic::Ordering::Relaxed), 0);
    let rejections = state.store.rejection_counts().await.unwrap();
    assert!(rejections.iter().all(|(device, _, _)| *device != key), "{rejections:?}");
}

/// Readings of `key` in the database at `url` (read directly, the oracle being down).
async fn count_in(url: &str, key: [u8; 32]) -> usize {
    let store = ovpp_oracle::store::Store::open(url).await.unwrap();
    let n = store.readings_between(0, i64::MAX).await.unwrap().iter().filter(|r| r.device_key == key).count();
    store.close().await;
    n
}

/// Opens a websocket to the gateway as charger `id` with `password` and `subprotocol`.
async fn connect(
    port: u16,
    id: &str,
    password: Option<&str>,
    subprotocol: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, tokio_tungstenite::tungstenite::Error> {
    use base64::Engine;
    let mut request = format!("ws://127.0.0.1:{port}/ocpp/{id}").into_client_request().unwrap();
    if let Some(password) = password {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{password}"));
        request.headers_mut().insert("authorization", format!("Basic {token}").parse().unwrap());
    }
    if let Some(p) = subprotocol {
        request.headers_mut().insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio_tungstenite::client_async(request, tcp).await.map(|(ws, _)| ws)
}

async fn exchange(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, text: &str) -> Value {
    ws.send(Message::text(text.to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("no answer to {text}: {other:?}"),
        }
    }
}

/// Strangers are refused at the handshake (unknown id, no or wrong password); garbage
/// gets the version's CALLERROR with the message id "-1" and the connection stays up.
#[tokio::test]
async fn the_csms_refuses_strangers_and_answers_garbage_with_callerror() {
    let dir = temp_dir("frames");
    let config = gateway_config(&dir, "http://127.0.0.1:9", vec![charger("CP-A", 11_000)], None);
    let port = config.ocpp.as_ref().unwrap().listen.port();
    let gateway = Gateway::open(config.clone(), ovpp_gateway::adapters(&config).unwrap()).await.unwrap();
    let (_stop, _run) = start_gateway(gateway);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = |e: tokio_tungstenite::tungstenite::Error| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    assert_eq!(status(connect(port, "CP-X", Some(PASSWORD), Some("ocpp1.6")).await.unwrap_err()), 404);
    assert_eq!(status(connect(port, "CP-A", None, Some("ocpp1.6")).await.unwrap_err()), 401);
    assert_eq!(status(connect(port, "CP-A", Some("not-the-password-at-all"), Some("ocpp1.6")).await.unwrap_err()), 401);

    let mut ws = connect(port, "CP-A", Some(PASSWORD), Some("ocpp1.6")).await.unwrap();
    let code = |v: &Value| (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_string(), v[2].as_str().unwrap_or_default().to_string());
    assert_eq!(code(&exchange(&mut ws, "garbage").await), (4, "-1".into(), "ProtocolError".into()));
    assert_eq!(code(&exchange(&mut ws, r#"[2,"b1","BootNotification",{}]"#).await), (4, "b1".into(), "FormationViolation".into()));
    assert_eq!(code(&exchange(&mut ws, r#"[2,"b2","Teleport",{}]"#).await), (4, "b2".into(), "NotImplemented".into()));
    assert_eq!(code(&exchange(&mut ws, r#"[9,"b3",{}]"#).await), (4, "b3".into(), "ProtocolError".into()));
    let bad_meter =
        r#"[2,"b4","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-12-03T10:00:00Z","sampledValue":[{"value":"-3"}]}]}]"#;
    assert_eq!(code(&exchange(&mut ws, bad_meter).await), (4, "b4".into(), "PropertyConstraintViolation".into()));
    let heartbeat = exchange(&mut ws, r#"[2,"h1","Heartbeat",{}]"#).await;
    assert_eq!((heartbeat[0].as_u64(), heartbeat[1].as_str()), (Some(3), Some("h1")), "still up after garbage: {heartbeat}");
    assert!(heartbeat[2]["currentTime"].is_string());

    let mut ws = connect(port, "CP-A", Some(PASSWORD), Some("ocpp2.0.1")).await.unwrap();
    assert_eq!(code(&exchange(&mut ws, "[1,2").await), (4, "-1".into(), "RpcFrameworkError".into()));
    assert_eq!(
        code(&exchange(&mut ws, r#"[2,"c1","BootNotification",{"reason":"PowerUp"}]"#).await),
        (4, "c1".into(), "FormatViolation".into())
    );
    assert_eq!(code(&exchange(&mut ws, r#"[7,"c2",{}]"#).await), (4, "c2".into(), "MessageTypeNotSupported".into()));

    // A stranger holding handshakes open gets 64 from its address: the next is closed at
    // once (no HTTP answer); once they are gone, the charger connects again.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    match connect(port, "CP-A", Some(PASSWORD), Some("ocpp1.6")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => panic!("expected no answer, got HTTP {}", r.status()),
        Err(_) => {}
        Ok(_) => panic!("a 65th handshake from one address was admitted"),
    }
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    connect(port, "CP-A", Some(PASSWORD), Some("ocpp1.6")).await.expect("admitted again");

    // No OCPP subprotocol offered: the handshake completes without one, then the CSMS closes.
    let mut ws = connect(port, "CP-A", Some(PASSWORD), None).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1002),
        other => panic!("expected a close: {other:?}"),
    }
}

/// Smart meter telegrams read as third-party libraries read them: DSMR P1 telegrams as
/// `dsmr-parser` does, SML frames as `smllib` does (published samples of real meters, and
/// generated ones, some with escaped data), each also with one byte changed, which both
/// the library and the gateway refuse. Then all of them as one byte stream, cut in odd
/// chunks with noise between: the stream readers find exactly the good ones.
#[tokio::test]
async fn smart_meter_telegrams_read_as_dsmr_parser_and_smllib_read_them() {
    use ovpp_gateway::smartmeter::{dsmr, sml, Registers};
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let out = Command::new(python).arg(repo().join("tests/gateway/meter_telegrams.py")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let close = |ours: Option<f64>, theirs: &Value| match (ours, theirs.as_f64()) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        _ => false,
    };
    let (mut read, mut refused) = (0, 0);
    let (mut dsmr_stream, mut sml_stream) = (Vec::new(), Vec::new());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let (protocol, source) = (case["protocol"].as_str().unwrap(), case["source"].as_str().unwrap());
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let ours = match protocol {
            "dsmr" => dsmr::parse(&bytes),
            _ => sml::parse(&bytes),
        };
        let stream = if protocol == "dsmr" { &mut dsmr_stream } else { &mut sml_stream };
        stream.extend_from_slice(b"\r\nnoise\x1b\x1b");
        stream.extend_from_slice(&bytes);
        match (&case["expected"], ours) {
            (Value::Null, Err(_)) => refused += 1,
            (Value::Null, Ok(r)) => panic!("{protocol} {source}: the library refused it ({}), the gateway read {r:?}", case["error"]),
            (expected, Err(e)) => panic!("{protocol} {source}: the library read {expected}, the gateway refused it: {e}"),
            (expected, Ok(Registers { import_wh, export_wh, power_w })) => {
                assert!(
                    close(import_wh, &expected["import_wh"])
                        && close(export_wh, &expected["export_wh"])
                        && close(power_w, &expected["power_w"]),
                    "{protocol} {source}: the library read {expected}, the gateway {import_wh:?} {export_wh:?} {power_w:?}"
                );
                read += 1;
            }
        }
    }
    assert!(read >= 40 && refused >= 40, "{read} read, {refused} refused");
    let good = |outcomes: Vec<Result<Registers, _>>| outcomes.iter().filter(|o| o.is_ok()).count();
    let (mut d, mut s) = (dsmr::Reader::default(), sml::Reader::default());
    let (mut from_dsmr, mut from_sml) = (0, 0);
    for chunk in dsmr_stream.chunks(7) {
        from_dsmr += good(d.push(chunk));
    }
    for chunk in sml_stream.chunks(5) {
        from_sml += good(s.push(chunk));
    }
    assert_eq!(from_dsmr + from_sml, read, "the stream readers found {from_dsmr} telegrams and {from_sml} frames");
}

/// A meter's interface served on TCP by `tests/gateway/meter_feed.py` (as ser2net would),
/// until dropped.
async fn meter_feed(protocol: &str, port: u16, import_w: u32, export_w: u32, since: i64) -> crate::Process {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let child = Command::new(python)
        .arg(repo().join("tests/gateway/meter_feed.py"))
        .args(["--protocol", protocol, "--port", &port.to_string(), "--import-w", &import_w.to_string()])
        .args(["--export-w", &export_w.to_string(), "--since", &since.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    crate::Process(child)
}

/// Two smart meters through the gateway, a DSMR P1 port and an SML optical reader, each on
/// TCP as ser2net serves them: their readings reach a real oracle on the 10 s grid, each
/// reading's energy what the registers grew by (3.6 kW imported: 10 Wh; 1.8 kW exported:
/// 5 Wh). The SML bridge killed: the meter shows offline; started again on the same
/// registers: the gateway reconnects and the readings of the outage are filled in from the
/// registers, on an unbroken grid, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_meters_over_tcp_reach_the_oracle_and_come_back_after_an_outage() {
    use ovpp_gateway::config::{MeterConfig, MeterProtocol};
    let dir = temp_dir("meters");
    let mut chain = TestChain::initialized(1, 1).await;
    let (dsmr_port, sml_port) = (free_port(), free_port());
    let meter = |name: &str, protocol, port: u16| MeterConfig {
        name: name.into(),
        protocol,
        address: Some(format!("127.0.0.1:{port}")),
        path: None,
        region: "DE-BY".into(),
        power_w: 17_000,
        interval_secs: 10,
    };
    let mut config = gateway_config(&dir.join("gateway"), "http://placeholder", vec![], None);
    config.ocpp = None;
    config.meters = vec![meter("house-dsmr", MeterProtocol::Dsmr, dsmr_port), meter("house-sml", MeterProtocol::Sml, sml_port)];
    let devices = register(&mut chain, &config).await;
    let key = |name: &str| devices.iter().find(|(n, _)| n == name).unwrap().1;
    let oracle = crate::start_oracle_with(&chain, "gateway-meters", DispatchSettings::default()).await;
    oracle.state.registry.refresh().await.unwrap();
    config.oracle_urls = vec![oracle.base.clone()];

    let since = unix_now() - 3600;
    let _dsmr = meter_feed("dsmr", dsmr_port, 3600, 0, since).await;
    let mut sml = Some(meter_feed("sml", sml_port, 0, 1800, since).await);
    let gateway = Gateway::open(config.clone(), ovpp_gateway::adapters(&config).unwrap()).await.unwrap();
    let (_stop, _run) = start_gateway(gateway.clone());
    let readings = |name: &'static str| {
        let (store, device) = (oracle.state.store.clone(), key(name));
        async move {
            let mut r: Vec<_> = store
                .readings_between(0, i64::MAX)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.device_key == device)
                .map(|r| r.reading)
                .collect();
            r.sort_by_key(|r| r.interval_start);
            r
        }
    };
    wait_until("three readings of each meter at the oracle", Duration::from_secs(60), || async {
        readings("house-dsmr").await.len() >= 3 && readings("house-sml").await.len() >= 3
    })
    .await;

    // The SML bridge goes away: offline in the gateway's status; back on the same registers.
    drop(sml.take());
    wait_until("the SML meter offline", Duration::from_secs(20), || async { !gateway.adapters[0].connected("house-sml") }).await;
    let before = readings("house-sml").await.len();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let _sml = meter_feed("sml", sml_port, 0, 1800, since).await;
    wait_until("the SML meter back, its outage filled in", Duration::from_secs(60), || async {
        gateway.adapters[0].connected("house-sml") && readings("house-sml").await.len() >= before + 3
    })
    .await;

    for (name, import_wh, export_wh) in [("house-dsmr", 10, 0), ("house-sml", 0, 5)] {
        let all = readings(name).await;
        for pair in all.windows(2) {
            assert_eq!(pair[1].interval_start, pair[0].interval_start + 10, "{name}: a gap or an overlap: {pair:?}");
        }
        for r in &all {
            assert_eq!((r.interval_secs, r.interval_start % 10), (10, 0), "{name}: {r:?}");
            assert!(r.energy_imported_wh.abs_diff(import_wh) <= 1 && r.energy_exported_wh.abs_diff(export_wh) <= 1, "{name}: {r:?}");
            assert_eq!(
                i64::from(r.average_power_w),
                (i64::from(r.energy_exported_wh) - i64::from(r.energy_imported_wh)) * 360,
                "{name}: {r:?}"
            );
        }
    }
    assert_eq!(gateway.metrics.readings_refused.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A SunSpec site on Modbus TCP, each device served by `pymodbus` with its register map laid
/// out from `pysunspec2`'s model definitions: a PV inverter (103 + 123), a battery (103 + 124)
/// and a meter (203). The gateway discovers them, their readings reach a real oracle; an
/// absorb event in their region makes the gateway curtail the inverter (WMaxLimPct with
/// WMaxLim_Ena) and charge the battery (InWRte with StorCtl_Mod), each with its revert
/// timeout, written and read back; the devices follow, and both go back to their own
/// behaviour when it ends. A price window (cheap, then dear) schedules the battery to charge,
/// then discharge. The inverter's server killed and started again: offline, then back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_devices_are_discovered_read_and_dispatched() {
    use ovpp_gateway::config::{SunSpecConfig, SunSpecKind};
    let dir = temp_dir("sunspec");
    let mut chain = TestChain::initialized(1, 1).await;
    let ports = [free_port(), free_port(), free_port()];
    let device = |name: &str, kind, port: u16, power_w, capacity_wh| SunSpecConfig {
        name: name.into(),
        kind,
        address: format!("127.0.0.1:{port}"),
        unit_id: 1,
        region: "DE-SN".into(),
        power_w,
        capacity_wh,
        poll_secs: 2,
        interval_secs: 10,
    };
    let mut config = gateway_config(&dir.join("gateway"), "http://placeholder", vec![], None);
    config.ocpp = None;
    config.sunspec = vec![
        device("pv", SunSpecKind::Solar, ports[0], 6_000, 0),
        device("battery", SunSpecKind::Battery, ports[1], 5_000, 10_000),
        device("meter", SunSpecKind::Meter, ports[2], 17_000, 0),
    ];
    let devices = register(&mut chain, &config).await;
    let key = |name: &str| devices.iter().find(|(n, _)| n == name).unwrap().1;
    let settings = DispatchSettings { grid_tokens: vec![TOKEN.into()], tick_secs: 1, ..DispatchSettings::default() };
    let oracle = crate::start_oracle_with(&chain, "gateway-sunspec", settings).await;
    oracle.state.registry.refresh().await.unwrap();
    config.oracle_urls = vec![oracle.base.clone()];

    let args = |kind: &str, port: u16, rest: &[&str]| -> Vec<String> {
        [&["--kind", kind, "--port", &port.to_string()][..], rest].concat().iter().map(|s| s.to_string()).collect()
    };
    let pv_args = args("solar", ports[0], &["--power-w", "4000", "--rated-w", "6000"]);
    let mut pv = ChargePoint::script("sunspec_device.py", "pv", &pv_args).await;
    let mut battery =
        ChargePoint::script("sunspec_device.py", "battery", &args("battery", ports[1], &["--rated-w", "5000", "--capacity-wh", "10000"]))
            .await;
    let _meter = ChargePoint::script("sunspec_device.py", "meter", &args("meter", ports[2], &["--power-w", "1800"])).await;
    for d in [&mut pv, &mut battery] {
        d.wait_for("state", |_| true, Duration::from_secs(20)).await;
    }
    let gateway = Gateway::open(config.clone(), ovpp_gateway::adapters(&config).unwrap()).await.unwrap();
    let (_stop, _run) = start_gateway(gateway.clone());

    // Readings: 4 kW of PV is 11.1 Wh in 10 s; the meter's 1.8 kW imported, 5 Wh; the battery at half.
    let latest = |name: &str| {
        let (fleet, k) = (oracle.state.fleet.clone(), key(name));
        async move { fleet.latest(&k).await.map(|l| l.reading) }
    };
    wait_until("readings of all three at the oracle", Duration::from_secs(60), || async {
        latest("pv").await.is_some() && latest("battery").await.is_some() && latest("meter").await.is_some()
    })
    .await;
    let pv_reading = latest("pv").await.unwrap();
    assert!(pv_reading.energy_generated_wh.abs_diff(11) <= 1 && pv_reading.flex_down_w == 4000, "{pv_reading:?}");
    let meter_reading = latest("meter").await.unwrap();
    assert!(meter_reading.energy_imported_wh.abs_diff(5) <= 1 && meter_reading.average_power_w < 0, "{meter_reading:?}");
    let battery_reading = latest("battery").await.unwrap();
    assert_eq!(battery_reading.state_of_charge_permille, Some(500), "{battery_reading:?}");
    assert_eq!((battery_reading.flex_up_w, battery_reading.flex_down_w), (5000, 5000), "{battery_reading:?}");

    // Absorb 1 kW in DE-SN for 30 s: the inverter curtailed, the battery charging.
    let (status, _) = post(&oracle, "/openadr3/programs", &json!({"programName": "surplus"})).await;
    assert_eq!(status, 201);
    let start = (unix_now() + 15).div_euclid(10) * 10 + 10;
    let (status, event) =
        post(&oracle, "/openadr3/events", &event_json("surplus", "DE-SN", "ABSORB_SETPOINT", start, "PT30S", &[1.0])).await;
    assert_eq!(status, 201, "{event}");
    let until_event = Duration::from_secs((start - unix_now()).max(0) as u64 + 20);
    let curtailed = pv.wait_for("state", |s| s["limit_enabled"] == true, until_event).await;
    assert!(curtailed["limit_pct"].as_f64().unwrap() < 66.7 && curtailed["revert_secs"].as_u64().unwrap() >= 30, "{curtailed}");
    pv.wait_for("state", |s| s["w"].as_i64().unwrap() < 4000, Duration::from_secs(5)).await;
    let charging = battery.wait_for("state", |s| s["mode"] == 1, until_event).await;
    assert!(charging["revert_secs"].as_u64().unwrap() >= 30, "{charging}");
    battery.wait_for("state", |s| s["w"].as_i64().unwrap() < 0, Duration::from_secs(5)).await;
    assert!(gateway.metrics.commands_applied.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    // Ended: both back to their own behaviour.
    let after = Duration::from_secs((start + 30 - unix_now()).max(0) as u64 + 15);
    let n = pv.events.lock().unwrap().len();
    wait_until("the set points ended", after, || {
        let (pv_events, battery_events) = (pv.events.clone(), battery.events.clone());
        async move {
            let last = |e: &Arc<Mutex<Vec<Value>>>| e.lock().unwrap().last().cloned().unwrap_or_default();
            pv_events.lock().unwrap().len() > n && last(&pv_events)["limit_enabled"] == false && last(&battery_events)["mode"] == 0
        }
    })
    .await;

    // A price window: cheap for 30 s, then dear for 30 s. The battery is scheduled to charge,
    // then to discharge; the gateway writes the rates and the modes.
    let start = (unix_now() + 15).div_euclid(10) * 10 + 10;
    let prices = event_json("surplus", "DE-SN", "PRICE", start, "PT30S", &[0.05, 0.45]);
    let (status, event) = post(&oracle, "/openadr3/events", &prices).await;
    assert_eq!(status, 201, "{event}");
    let until_window = Duration::from_secs((start - unix_now()).max(0) as u64 + 25);
    battery
        .wait_for("state", |s| s["mode"] == 1 && s["w"].as_i64().unwrap() < 0 && s["t"].as_f64().unwrap() >= start as f64, until_window)
        .await;
    battery
        .wait_for(
            "state",
            |s| s["mode"] == 2 && s["w"].as_i64().unwrap() > 0 && s["t"].as_f64().unwrap() >= (start + 30) as f64,
            Duration::from_secs(45),
        )
        .await;

    // The inverter's server gone: offline; back on the same port: read again.
    drop(pv);
    wait_until("the inverter offline", Duration::from_secs(20), || async { !gateway.adapters[0].connected("pv") }).await;
    let _pv = ChargePoint::script("sunspec_device.py", "pv", &pv_args).await;
    wait_until("the inverter back", Duration::from_secs(60), || async { gateway.adapters[0].connected("pv") }).await;
    assert_eq!(gateway.metrics.readings_refused.load(std::sync::atomic::Ordering::Relaxed), 0);
}
