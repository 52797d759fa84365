//! The oracle against the program-test chain: registry sync from real `Device` accounts,
//! acceptance, rejections, the fleet and device views, and the fleet simulator.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use ovpp_chain::bank::BanksChain;
use ovpp_oracle::server::{router, AppState};
use ovpp_program_tests::TestChain;

mod api;
mod cli;
mod clients;
mod dispatch;
mod epochs;
mod gateway;
mod ingest;
mod localnet;
mod mv;
mod openadr;
mod shared;
mod simulate;
mod ui;

/// A loopback port nobody listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port free together with the next one (a local chain's JSON-RPC and PubSub).
pub fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

pub struct Oracle {
    pub state: AppState,
    pub base: String,
    pub http: reqwest::Client,
}

pub async fn start_oracle(chain: &TestChain, name: &str) -> Oracle {
    start_oracle_with(chain, name, Default::default()).await
}

/// An oracle on a database of its own: SQLite, or with `OVPP_TEST_DATABASE=postgres` a
/// database on the test PostgreSQL server (`tests/run` runs the oracle tests both ways).
pub async fn start_oracle_with(chain: &TestChain, name: &str, dispatch: ovpp_oracle::dispatch::DispatchSettings) -> Oracle {
    start_oracle_on(chain, &test_database(name).await, dispatch).await
}

pub async fn test_database(name: &str) -> String {
    if std::env::var("OVPP_TEST_DATABASE").as_deref() == Ok("postgres") {
        return ovpp_test_support::postgres::database(&name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")).await;
    }
    let dir = std::env::temp_dir().join(format!("ovpp-oracle-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("oracle.db").display())
}

/// An oracle service on the database at `url` (several may share a PostgreSQL one).
pub async fn start_oracle_on(chain: &TestChain, url: &str, dispatch: ovpp_oracle::dispatch::DispatchSettings) -> Oracle {
    let options = ovpp_oracle::service::Options { registry_refresh: Duration::from_secs(3600), dispatch, ..Default::default() };
    start_oracle_options(chain, url, options).await
}

/// An oracle service on the database at `url`, with `options`.
pub async fn start_oracle_options(chain: &TestChain, url: &str, options: ovpp_oracle::service::Options) -> Oracle {
    let banks = Arc::new(BanksChain::new(chain.ctx.banks_client.clone()));
    let state = ovpp_oracle::service::start(url, banks, options).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    let limits = ovpp_oracle::server::listen::Limits::default();
    tokio::spawn(ovpp_oracle::server::listen::serve(listener, app, limits, None, std::future::pending()));
    Oracle { state, base, http: reqwest::Client::new() }
}

/// A fresh local network for the test `name`: its own state directory, free ports, one-minute
/// epochs and 10-second metering; `devices`, the epochs replayed before it starts, and its
/// demand-response event (`event_in_secs` from the start, lasting `event_secs`) as the test needs.
pub fn test_localnet(name: &str, devices: usize, backfill_epochs: u32, event_in_secs: u32, event_secs: u32) -> ovpp_localnet::LocalnetArgs {
    let state_dir = std::env::temp_dir().join(format!("ovpp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    ovpp_localnet::LocalnetArgs {
        state_dir,
        devices,
        epoch_secs: 60,
        interval_secs: 10,
        rpc_port: free_port_pair(),
        api_port: free_port(),
        backfill_epochs,
        for_secs: None,
        event_in_secs,
        event_secs,
        cosigner_urls: vec![],
        gateway_port: free_port(),
        vtn_config: None,
    }
}

/// The repository's root.
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A venv of `interpreter` with `requirements` (a file in the repository) installed, made once
/// per machine and kept in `~/.cache/<cache>` while the requirements stay the same.
pub fn python_venv(cache: &str, requirements: &str, interpreter: &std::path::Path) -> std::path::PathBuf {
    use std::process::Command;
    let requirements = repo().join(requirements);
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let venv = home.join(".cache").join(cache);
    let marker = venv.join("requirements.txt");
    let python = venv.join("bin/python");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new(interpreter).arg("-m").arg("venv").arg(&venv).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "{} -m venv {} failed (is Python with venv installed?)",
            interpreter.display(),
            venv.display()
        );
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r"])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(installed.success(), "pip install -r {} failed", requirements.display());
        std::fs::write(&marker, wanted).unwrap();
    }
    python
}

/// A child process killed (and reaped) when dropped: a test that fails leaves nothing running.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
