//! The local network through the clients Solana developers and wallets use, not ours: the
//! Node test in `tests/clients` (the Anchor TS client with the committed IDL,
//! @solana/web3.js, @solana/spl-token) against a started local network. The npm packages
//! are installed from the committed lockfile, their download cache kept outside the clone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ovpp_chain::RpcChain;
use ovpp_localnet as localnet;

/// Runs `command` to completion within `limit`, its output shown on failure.
fn run(mut command: Command, limit: Duration, what: &str) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: could not start {command:?}: {e} (is Node.js 20 with npm installed?)"));
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed ({:?}, limit {limit:?}):\n{text}", output.status);
    println!("{text}");
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients").canonicalize().unwrap()
}

/// `npm ci` from the committed lockfile (seconds, with the download cache warm).
fn install_npm_packages(dir: &Path) {
    let cache = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ovpp-npm")).unwrap_or_else(|| dir.join(".npm"));
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--prefer-offline"]).current_dir(dir).env("npm_config_cache", cache);
    run(npm, Duration::from_secs(600), "npm ci in tests/clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_solana_clients_register_claim_simulate_and_subscribe_on_the_local_network() {
    let clients = clients_dir();
    tokio::task::spawn_blocking({
        let clients = clients.clone();
        move || install_npm_packages(&clients)
    })
    .await
    .unwrap();

    let args = crate::test_localnet("clients-test", 12, 1, 600, 60);
    let (dir, rpc_port, api_port) = (args.state_dir.clone(), args.rpc_port, args.api_port);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let network = tokio::spawn(localnet::run(args, async {
        let _ = stopped.await;
    }));
    let rpc = format!("http://127.0.0.1:{rpc_port}");

    // Owner 0 (who claims by hand) has rewards once the backfilled epoch is posted.
    let chain = RpcChain::with_commitment(rpc.clone(), solana_commitment_config::CommitmentConfig::confirmed());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !ovpp_oracle::relay::read_config(&chain).await.is_ok_and(|c| c.last_epoch >= 1) {
        assert!(tokio::time::Instant::now() < deadline && !network.is_finished(), "no epoch posted in time");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut node = Command::new("node");
    node.args(["--test", "--test-reporter=spec", "chain.test.mjs"])
        .current_dir(&clients)
        .env("OVPP_RPC_URL", &rpc)
        .env("OVPP_WS_URL", format!("ws://127.0.0.1:{}", rpc_port + 1))
        .env("OVPP_ORACLE_URL", format!("http://127.0.0.1:{api_port}"))
        .env("OVPP_OWNER_KEYPAIR", localnet::owner_keypair_path(&dir, 0));
    tokio::task::spawn_blocking(move || run(node, Duration::from_secs(300), "the Node client test")).await.unwrap();

    stop.send(()).unwrap();
    network.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
