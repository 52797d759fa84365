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

use crate::dispatch::{registered_fleet, TOKEN};
use crate::{repo, start_oracle_options, test_database};

const BL: (&str, &str) = ("utility-ops", "bl-secret-0123456789");
const VEN: (&str, &str) = ("interop-ven", "ven-secret-0123456789");

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
    let clients = vec![format!("bl:{}:{}", BL.0, BL.1).parse().unwrap(), format!("ven:{}:{}", VEN.0, VEN.1).parse().unwrap()];
    let options = ovpp_oracle::service::Options {
        registry_refresh: Duration::from_secs(3600),
        dispatch: DispatchSettings { grid_tokens: vec![TOKEN.into()], ..DispatchSettings::default() },
        openadr_clients: clients,
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
