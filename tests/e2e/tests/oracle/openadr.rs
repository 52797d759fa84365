//! OpenADR 3.0.1 against implementations no one here wrote. The oracle's VTN driven by
//! ElaadNL's `openadr3-client` (Python, `tests/openadr/vtn_interop.py`) as business logic and
//! as a VEN, with every answer checked against the OpenADR 3.0.1 OpenAPI definition; the
//! oracle as a VEN of OpenLEADR's VTN (`openleadr-vtn`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ovpp_oracle::dispatch::DispatchSettings;
use ovpp_simulator::Sender;
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::event::rfc3339;

use crate::dispatch::{registered_fleet, TOKEN};
use crate::{repo, start_oracle_options, test_database};

const BL: (&str, &str) = ("utility-ops", "bl-secret-0123456789");
const VEN: (&str, &str) = ("interop-ven", "ven-secret-0123456789");
const OTHER_VEN: (&str, &str) = ("other-ven", "other-secret-0123456789");

/// A Python of at least 3.12 (what `openadr3-client` needs): on the PATH, or pyenv's.
fn python312() -> PathBuf {
    let on_path = ["python3.13", "python3.12"].into_iter().map(PathBuf::from);
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
        .unwrap_or_default();
    let mut pyenv: Vec<PathBuf> = std::fs::read_dir(pyenv_root.join("versions"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    pyenv.sort();
    let from_pyenv = pyenv.into_iter().rev().filter_map(|v| {
        let name = v.file_name()?.to_str()?.to_string();
        let (major, minor) =
            name.split_once('.').and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.split('.').next()?.parse::<u32>().ok()?)))?;
        (major == 3 && minor >= 12).then(|| v.join("bin/python3"))
    });
    on_path
        .chain(from_pyenv)
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("openadr3-client needs Python >= 3.12: none on the PATH (python3.12, python3.13) or in pyenv's versions")
}

fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| crate::python_venv("ovpp-python-openadr", "tests/openadr/requirements.txt", &python312())).clone()
}

#[tokio::test]
async fn openadr3_client_drives_the_vtn_and_every_answer_matches_the_spec() {
    let (chain, mut fleet) = registered_fleet(6, 31).await;
    let clients = [format!("bl:{}:{}", BL.0, BL.1), format!("ven:{}:{}", VEN.0, VEN.1), format!("ven:{}:{}", OTHER_VEN.0, OTHER_VEN.1)]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let options = ovpp_oracle::service::Options {
        registry_refresh: Duration::from_secs(3600),
        dispatch: DispatchSettings { grid_tokens: vec![TOKEN.into()], ..DispatchSettings::default() },
        openadr_clients: clients,
        // The test's webhook listens on loopback.
        openadr_private_callbacks: true,
        ..Default::default()
    };
    let oracle = start_oracle_options(&chain, &test_database("openadr-client").await, options).await;
    oracle.state.registry.refresh().await.unwrap();
    Sender::new(&oracle.base).send(&fleet.tick(unix_now() / 60 * 60 - 60, 60)).await.unwrap();
    let region = String::from_utf8_lossy(&fleet.devices[0].params().region).trim_end_matches('\0').to_string();

    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let script = repo().join("tests/openadr/vtn_interop.py");
    let base = format!("{}/openadr3", oracle.base);
    let run = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(&script)
            .current_dir(script.parent().unwrap())
            .env("VTN_URL", base)
            .env("REGION", region)
            .env("BL_CLIENT_ID", BL.0)
            .env("BL_SECRET", BL.1)
            .env("VEN_CLIENT_ID", VEN.0)
            .env("VEN_SECRET", VEN.1)
            .env("OTHER_VEN_ID", OTHER_VEN.0)
            .env("OTHER_VEN_SECRET", OTHER_VEN.1)
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(Duration::from_secs(180), run).await.expect("the interop script hung").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success() && stdout.contains("ALL PASSED"), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    // What the client did is what the oracle dispatches from: the event as modified, in its program.
    let events = oracle.state.dispatch.events().await;
    let event = events.iter().find(|e| e.event_name.as_deref() == Some("interop evening peak")).expect("the client's event");
    assert_eq!((event.program_id.as_str(), event.priority, event.cancelled), ("interop-peak", Some(2), false));
    assert_eq!(event.intervals[0].value, 5_000, "5 kW");
    let price = events.iter().find(|e| e.event_name.as_deref() == Some("interop price curve")).unwrap();
    assert!(price.cancelled, "DELETE cancels");
    let programs: Vec<String> = oracle.state.dispatch.programs().await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(programs, ["interop-other", "interop-peak"], "the third program was deleted");
}

/// OpenLEADR's VTN and business-logic tool and PostgreSQL 16, set up once per machine by
/// `tests/openadr/openleadr.sh` (it prints where).
fn openleadr_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(repo().join("tests/openadr/openleadr.sh")).stderr(std::process::Stdio::inherit()).output().unwrap();
        assert!(out.status.success(), "tests/openadr/openleadr.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// OpenLEADR's users: a utility's business logic, and the VEN this oracle is (the VEN object
/// and its credential provisioned out of band, as OpenLEADR 0.1.4 does it). The secrets are
/// `bl-secret` and `ven-1-secret`, stored as OpenLEADR stores them (argon2id, made with
/// Debian's `argon2`).
const OPENLEADR_USERS: &str = r#"
INSERT INTO "user" (id, reference, description, created, modified) VALUES ('utility-bl', 'utility-bl', 'utility BL', now(), now());
INSERT INTO any_business_user (user_id) VALUES ('utility-bl');
INSERT INTO user_credentials (user_id, client_id, client_secret) VALUES ('utility-bl', 'bl-client', '$argon2id$v=19$m=4096,t=2,p=1$TFZhUnlDRWVnNjVQTEVo$tO1yM5qHwTEnWsrHKENxLsDzjzxh75gPpnMiNTzUI7Q');
INSERT INTO ven (id, created_date_time, modification_date_time, ven_name, attributes, targets) VALUES ('ven-1', now(), now(), 'ovpp-fleet', null, null);
INSERT INTO "user" (id, reference, description, created, modified) VALUES ('ven-1-user', 'ven-1', 'the OpenVPP oracle', now(), now());
INSERT INTO user_ven (ven_id, user_id) VALUES ('ven-1', 'ven-1-user');
INSERT INTO user_credentials (user_id, client_id, client_secret) VALUES ('ven-1-user', 'ven-1-client', '$argon2id$v=19$m=4096,t=2,p=1$SXczU2xwQkZtcXM1NXBOMQ$PtatzTvipDPyIch+0ivOOXR5PXgLXZkf0fBuvnx27P4');
"#;

/// Runs OpenLEADR's business-logic tool; its JSON answer.
async fn openleadr_bl(vtn: &str, args: &[String]) -> serde_json::Value {
    let (tool, vtn, args) = (openleadr_dir().join("bin/openleadr-bl"), format!("{vtn}/"), args.to_vec());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(tool).args(&args).env("VTN_URL", vtn).env("BL_CLIENT_ID", "bl-client").env("BL_SECRET", "bl-secret").output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "openleadr-bl: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The oracle as a VEN of OpenLEADR's VTN: a utility creates a shed event there (through
/// OpenLEADR's client, targeting a group, not a region); the oracle takes it in, dispatches
/// the fleet in simulated time, measures it, and posts the measurement back as an OpenADR
/// report, which OpenLEADR's client reads: per device and interval, and the fleet's sum
/// equal to the oracle's own report.
#[tokio::test]
async fn the_oracle_as_a_ven_of_openleadrs_vtn_dispatches_its_event_and_reports_back() {
    use sqlx::{Connection, Executor};

    let dir = tokio::task::spawn_blocking(openleadr_dir).await.unwrap();
    let postgres = tokio::task::spawn_blocking(move || ovpp_test_support::postgres::start_from(&dir.join("pg16/bin"), "openleadr"))
        .await
        .unwrap()
        .expect("PostgreSQL 16");
    let database = postgres.database("openleadr").await;
    let port = crate::free_port();
    let vtn = format!("http://127.0.0.1:{port}");
    let mut server = crate::Process(
        Command::new(openleadr_dir().join("bin/openleadr-vtn"))
            .env("DATABASE_URL", &database)
            .env("OAUTH_TYPE", "INTERNAL")
            .env("OAUTH_BASE64_SECRET", "b3ZwcC1vcGVubGVhZHItdGVzdC1zZWNyZXQtMzItYnl0ZXMhIQ==")
            .env("OPENLEADR_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !http.get(format!("{vtn}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(tokio::time::Instant::now() < deadline && server.0.try_wait().unwrap().is_none(), "OpenLEADR's VTN did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut db = sqlx::PgConnection::connect(&database).await.unwrap();
    db.execute(OPENLEADR_USERS).await.unwrap();

    let (chain, mut fleet) = registered_fleet(60, 11).await;
    let settings = ovpp_oracle::openadr::ven::VtnSettings {
        name: "utility".into(),
        url: vtn.clone(),
        token_url: None,
        client_id: "ven-1-client".into(),
        client_secret: "ven-1-secret".into(),
        ven_name: "ovpp-fleet".into(),
        region: "DE-BY".into(),
        // Synced by the test, in simulated time.
        poll_secs: 3600,
        report_devices: true,
    };
    let options = ovpp_oracle::service::Options {
        registry_refresh: Duration::from_secs(3600),
        dispatch: DispatchSettings { grid_tokens: vec![TOKEN.into()], ..DispatchSettings::default() },
        vtns: vec![settings],
        ..Default::default()
    };
    let oracle = start_oracle_options(&chain, &test_database("openadr-ven").await, options).await;
    oracle.state.registry.refresh().await.unwrap();
    let sender = Sender::new(&oracle.base);
    let start = crate::dispatch::recent_11_utc();
    for t in (start - 7200..start).step_by(300) {
        sender.send(&fleet.tick(t, 300)).await.unwrap();
    }
    let target_kw = crate::dispatch::feasible_target_kw(&oracle, start).await;

    // The utility's event, at its VTN.
    let values = vec![target_kw.to_string(); 6].join(",");
    let created = openleadr_bl(&vtn, &["event".into(), "utility-peak".into(), rfc3339(start), "PT5M".into(), values]).await;
    let remote = created["event"].as_str().unwrap().to_string();

    // Taken in two minutes before it starts (simulated time), in the VTN's configured region.
    let ven = oracle.state.openadr.vens[0].clone();
    let (dispatch, store) = (oracle.state.dispatch.clone(), oracle.state.store.clone());
    let synced = ven.sync(&dispatch, &store, start - 120).await.unwrap();
    let local = format!("utility-{remote}");
    assert_eq!(synced.imported, std::slice::from_ref(&local), "{synced:?}");
    let event = dispatch.event(&local).await.unwrap();
    assert_eq!((event.region.as_str(), event.intervals.len(), event.intervals[0].value), ("DE-BY", 6, (target_kw * 1000.0) as i64));
    assert_eq!(ven.sync(&dispatch, &store, start - 60).await.unwrap(), Default::default(), "unchanged: nothing to do");

    for t in (start..start + 2100).step_by(300) {
        crate::dispatch::dispatch_round(&oracle, &mut fleet, &sender, t).await;
    }
    dispatch.tick(start + 1800 + 300).await.unwrap();
    let report = dispatch.report(&local).await.unwrap().expect("measured");
    assert!(report.delivered_wh as f64 >= report.target_wh as f64, "{report:?}");
    let synced = ven.sync(&dispatch, &store, start + 2400).await.unwrap();
    assert_eq!(synced.reported, std::slice::from_ref(&local), "{synced:?}");
    assert!(ven.sync(&dispatch, &store, start + 2500).await.unwrap().reported.is_empty(), "reported once");

    // What the utility reads, through OpenLEADR's client.
    let reports = openleadr_bl(&vtn, &["reports".into(), remote.clone()]).await;
    let [posted] = reports.as_array().unwrap().as_slice() else { panic!("one report: {reports}") };
    assert_eq!((posted["clientName"].as_str(), posted["eventID"].as_str()), (Some("ovpp-fleet"), Some(remote.as_str())), "{posted}");
    let resources = posted["resources"].as_array().unwrap();
    assert_eq!(resources.len(), report.devices.len() + 1, "one per device and the aggregate");
    let delivered_kwh = |name: &str| -> f64 {
        let resource = resources.iter().find(|r| r["resourceName"] == name).unwrap();
        let intervals = resource["intervals"].as_array().unwrap();
        assert_eq!(intervals.len(), 6);
        intervals
            .iter()
            .map(|i| i["payloads"].as_array().unwrap().iter().find(|p| p["type"] == "DELTA_USAGE").unwrap()["values"][0].as_f64().unwrap())
            .sum()
    };
    let total = delivered_kwh("AGGREGATED_REPORT");
    assert!((total * 1000.0 - report.delivered_wh as f64).abs() <= report.devices.len() as f64, "{total} kWh vs {report:?}");
    let device = &report.devices[0];
    assert!((delivered_kwh(&device.device) * 1000.0 - device.delivered_wh as f64).abs() <= 6.0);

    // A later event, taken in, then deleted at the VTN: cancelled here.
    let later = openleadr_bl(&vtn, &["event".into(), "utility-evening".into(), rfc3339(start + 7200), "PT5M".into(), "5".into()]).await;
    let later = later["event"].as_str().unwrap().to_string();
    let synced = ven.sync(&dispatch, &store, start + 2600).await.unwrap();
    assert_eq!(synced.imported, [format!("utility-{later}")], "{synced:?}");
    openleadr_bl(&vtn, &["delete".into(), later.clone()]).await;
    let synced = ven.sync(&dispatch, &store, start + 2700).await.unwrap();
    assert_eq!(synced.cancelled, [format!("utility-{later}")], "{synced:?}");
    assert!(dispatch.event(&format!("utility-{later}")).await.unwrap().cancelled);
    drop(server);
    drop(postgres);
}
