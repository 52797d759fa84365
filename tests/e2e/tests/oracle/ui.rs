//! The dashboard and the wallet pages in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver, `fantoccini`) against a started local network. Each page
//! loads without a console error, its charts carry the numbers the JSON API answers with, an
//! event's page goes from pending to measured without a reload, a Wallet Standard wallet
//! registered by the test (`tests/ui/test-wallet.js`, holding an owner's key) signs in and
//! claims through the page (the owner's balance rises by exactly what was due), and the
//! Solana Pay transaction request answers a transaction that simulates. Screenshots of each
//! page go to `$TMPDIR/ovpp-ui-screenshots` (and, with `OVPP_UPDATE_SCREENSHOTS=1`, to
//! `oracle/ui/screenshots/`, which the README shows).

use std::path::PathBuf;
use std::time::Duration;

use anchor_lang::prelude::Pubkey;
use base64::Engine;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use ovpp_chain::RpcChain;
use ovpp_localnet as localnet;
use serde_json::{json, Value};

use crate::{free_port, Process};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver's browser log (`POST /session/{id}/se/log`; fantoccini has no call for it).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

struct Browser {
    client: Client,
    _driver: Process,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(std::path::Path::new(binary).exists(), "{binary} is missing: tests/run installs Debian's chromium and chromium-driver");
        }
        let port = free_port();
        let driver = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Process(driver);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "chromedriver did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"]}),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        client.set_window_size(1280, 1000).await.unwrap();
        let shots = std::env::temp_dir().join("ovpp-ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { client, _driver: driver, shots }
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Polls `script` (an expression) until it is truthy, within `limit`; returns its value.
    async fn until(&self, script: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let value = self.js(&format!("return {script}")).await;
            if !matches!(value, Value::Null | Value::Bool(false)) && value != json!("") {
                return value;
            }
            assert!(tokio::time::Instant::now() < deadline, "waited {limit:?} for {script}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The console's errors since the last call: none allowed.
    async fn assert_no_console_errors(&self, page: &str) {
        let log = self.client.issue_cmd(BrowserLog).await.unwrap();
        let severe: Vec<&Value> = log.as_array().map(|l| l.iter().filter(|e| e["level"] == "SEVERE").collect()).unwrap_or_default();
        assert!(severe.is_empty(), "console errors on {page}: {severe:#?}");
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(name), &png).unwrap();
        if std::env::var_os("OVPP_UPDATE_SCREENSHOTS").is_some() {
            let dir = crate::repo().join("oracle/ui/screenshots");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &png).unwrap();
        }
    }

    /// Registers the test wallet holding `seed` in the page; its address.
    async fn register_wallet(&self, seed: &[u8], rpc: &str) -> String {
        let script = std::fs::read_to_string(crate::repo().join("tests/ui/test-wallet.js")).unwrap();
        let answer = self.client.execute_async(&script, vec![json!(hex::encode(seed)), json!(rpc)]).await.unwrap();
        answer["address"].as_str().unwrap_or_else(|| panic!("the test wallet did not register: {answer}")).to_string()
    }
}

fn numbers(value: &Value) -> Vec<f64> {
    serde_json::from_str::<Vec<f64>>(value.as_str().unwrap_or("[]")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_claim_page_work_in_a_browser() {
    let args = crate::test_localnet("ui-test", 60, 1, 50, 180);
    let (dir, rpc_port, api_port) = (args.state_dir.clone(), args.rpc_port, args.api_port);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let network = tokio::spawn(localnet::run(args, async {
        let _ = stopped.await;
    }));
    let (rpc, api) = (format!("http://127.0.0.1:{rpc_port}"), format!("http://127.0.0.1:{api_port}"));
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, api) = (http.clone(), api.clone());
        async move { http.get(format!("{api}{path}")).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Up, with the demand-response event planned and an epoch posted (backfilled).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let event_id = loop {
        assert!(tokio::time::Instant::now() < deadline && !network.is_finished(), "the local network did not come up");
        if let Ok(answer) = http.get(format!("{api}/v1/events")).send().await {
            let events: Value = answer.json().await.unwrap_or(Value::Null);
            let posted = http.get(format!("{api}/v1/epochs")).send().await.unwrap().json::<Value>().await.unwrap();
            let any_posted = posted.as_array().is_some_and(|e| e.iter().any(|e| e["posted"] == true));
            if let Some(e) = events.as_array().and_then(|e| e.iter().find(|e| e["type"] == "DISPATCH_SETPOINT")) {
                if any_posted {
                    break e["id"].as_str().unwrap().to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let browser = Browser::start().await;
    let c = &browser.client;

    // The network page: the map's numbers are the fleet API's.
    c.goto(&format!("{api}/")).await.unwrap();
    browser.until("document.querySelector('#region-map g[data-region]')", Duration::from_secs(10)).await;
    for attempt in 0.. {
        let shown = browser
            .js("return [...document.querySelectorAll('#region-map g[data-region]')].map(g => [g.dataset.region, +g.dataset.online, +g.dataset.devices])")
            .await;
        let fleet = get("/v1/fleet".into()).await;
        let expected: Vec<Value> =
            fleet["by_region"].as_object().unwrap().iter().map(|(region, g)| json!([region, g["devices_online"], g["devices"]])).collect();
        let mut shown: Vec<Value> = shown.as_array().unwrap().iter().filter(|t| t[2].as_u64() > Some(0)).cloned().collect();
        shown.sort_by_key(|t| t[0].as_str().unwrap_or_default().to_string());
        if shown == expected || attempt == 5 {
            assert_eq!(shown, expected, "the map shows the fleet API's devices online by region");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    browser.until("document.querySelector('#card-rate .value').textContent !== '…'", Duration::from_secs(30)).await;
    browser.screenshot("overview.png").await;
    browser.assert_no_console_errors("/").await;
    // Readable on a phone: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    let overflow = browser.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
    assert!(overflow.as_i64() <= Some(0), "the page scrolls sideways on a phone by {overflow} px");
    browser.screenshot("overview-phone.png").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // The event's page, live: pending or active, then measured, without a reload.
    c.goto(&format!("{api}/ui/events/{event_id}")).await.unwrap();
    let first = browser.until("document.querySelector('#event-status').dataset.status", Duration::from_secs(10)).await;
    assert!(["pending", "active"].contains(&first.as_str().unwrap()), "the event starts {first}");
    browser.js("window.__samePage = true; return true").await;
    browser.until("document.querySelector('#event-status').dataset.status === 'active'", Duration::from_secs(120)).await;
    browser.screenshot("event-live.png").await;
    browser.until("document.querySelector('#event-status').dataset.status === 'measured'", Duration::from_secs(240)).await;
    assert_eq!(browser.js("return window.__samePage === true").await, json!(true), "updated in place, not reloaded");
    let delivered = browser.js("return document.querySelector('#interval-chart polyline[data-series=delivered]').dataset.values").await;
    let report = get(format!("/v1/events/{event_id}/report")).await;
    let expected: Vec<f64> = report["intervals"].as_array().unwrap().iter().map(|i| i["delivered_w"].as_f64().unwrap() / 1000.0).collect();
    assert_eq!(numbers(&delivered), expected, "the chart's delivery per interval is the report's");
    let ratio = browser.js("return +document.querySelector('#measurement [data-ratio]').dataset.ratio").await;
    assert_eq!(ratio.as_f64(), report["delivery_ratio"].as_f64());
    browser.screenshot("event.png").await;
    browser.assert_no_console_errors("the event page").await;

    // The latest posted epoch: paid in total as its report says, split by kind and region.
    let epochs = get("/v1/epochs".into()).await;
    let epoch = epochs.as_array().unwrap().iter().find(|e| e["posted"] == true).unwrap()["epoch"].as_u64().unwrap();
    c.goto(&format!("{api}/ui/epochs/{epoch}")).await.unwrap();
    let paid =
        browser.until("document.querySelector('#paid') && +document.querySelector('#paid').dataset.amount", Duration::from_secs(10)).await;
    let report = http.get(format!("{api}/v1/epochs/{epoch}/report")).send().await.unwrap().text().await.unwrap();
    let amounts: u64 = report.lines().skip(1).map(|l| serde_json::from_str::<Value>(l).unwrap()["amount"].as_u64().unwrap()).sum();
    assert_eq!(paid.as_u64(), Some(amounts));
    let by_kind = browser.js("return [...document.querySelectorAll('#rewards-by-kind g')].reduce((s, g) => s + +g.dataset.value, 0)").await;
    assert!((by_kind.as_f64().unwrap() - amounts as f64 / 1e6).abs() < 1e-3, "{by_kind} vs {amounts}");
    browser.screenshot("epoch.png").await;
    browser.assert_no_console_errors("the epoch page").await;

    // Claim through the page, as owner 0 (who claims by hand) with the test wallet.
    let owner_file = localnet::owner_keypair_path(&dir, 0);
    let owner = ovpp_chain::keypair::read_keypair(&owner_file).unwrap();
    let seed = &owner.to_bytes()[..32];
    let owner_key: Pubkey = solana_sdk::signature::Signer::pubkey(&owner);
    let chain = RpcChain::new(rpc.clone());
    // The Solana Pay transaction request: label, then a transaction a wallet accepts.
    let label: Value =
        http.get(format!("{api}/v1/pay/claim")).header("origin", "https://wallet.example").send().await.unwrap().json().await.unwrap();
    assert_eq!(label["label"], "OpenVPP rewards");
    assert_eq!(label["icon"], format!("{api}/ui/icon.svg"));
    // A wallet's page fetches it from its own origin: the CORS preflight of a JSON POST passes.
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{api}/v1/pay/claim"))
        .header("origin", "https://wallet.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()), Some("*"));
    let pay = http.post(format!("{api}/v1/pay/claim")).json(&json!({"account": owner_key.to_string()})).send().await.unwrap();
    assert_eq!(pay.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()), Some("*"));
    let pay: Value = pay.json().await.unwrap();
    let tx = base64::engine::general_purpose::STANDARD.decode(pay["transaction"].as_str().unwrap()).unwrap();
    let simulated: Value = http
        .post(&rpc)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "simulateTransaction",
            "params": [base64::engine::general_purpose::STANDARD.encode(&tx), {"encoding": "base64", "sigVerify": false, "replaceRecentBlockhash": true}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(simulated["result"]["value"]["err"], Value::Null, "the Solana Pay transaction simulates: {simulated}");
    assert!(pay["message"].as_str().unwrap().starts_with("Claim "), "{pay}");

    let before = ovpp_chain::accounts::ovpp_balance(&chain, &owner_key).await.unwrap();
    c.goto(&format!("{api}/ui/claim")).await.unwrap();
    browser.until("document.querySelector('#wallet-status')", Duration::from_secs(10)).await;
    let address = browser.register_wallet(seed, &rpc).await;
    assert_eq!(address, owner_key.to_string());
    c.find(Locator::Css("#wallets button[data-wallet='OVPP Test Wallet']")).await.unwrap().click().await.unwrap();
    let due = browser.until("+document.querySelector('#claim-total').dataset.amount", Duration::from_secs(20)).await.as_u64().unwrap();
    assert!(due > 0, "owner 0 has rewards to claim");
    assert!(
        browser.js("return document.querySelector('#pay-qr').complete && document.querySelector('#pay-qr').naturalWidth > 0").await
            == json!(true)
    );
    browser.screenshot("claim.png").await;
    c.find(Locator::Css("#claim-button")).await.unwrap().click().await.unwrap();
    browser.until("document.querySelector('#claim-result').dataset.signatures", Duration::from_secs(60)).await;
    let simulated = browser.js("return window.__testWallet.simulated.length").await;
    assert!(simulated.as_u64() >= Some(1), "the wallet simulated before signing");
    // What the page claimed: what was due when the button was pressed (at least what it showed;
    // more if an epoch was posted in between: the transactions are built at the click).
    let claimed = browser.js("return +document.querySelector('#claim-result').dataset.amount").await.as_u64().unwrap();
    assert!(claimed >= due, "claimed {claimed}, shown {due}");
    let after = ovpp_chain::accounts::ovpp_balance(&chain, &owner_key).await.unwrap();
    assert_eq!(after - before, claimed, "the owner's balance rises by exactly what the page claimed");
    browser.screenshot("claimed.png").await;
    browser.assert_no_console_errors("the claim page").await;

    // The owner's device page: public part, then signed in with the wallet, the private part.
    let devices = ovpp_chain::accounts::scan::<ovpp::state::Device>(&chain, &[]).await.unwrap();
    let (mine, claimed_on_chain) =
        devices.iter().find(|(_, d)| d.owner == owner_key && d.claimed > 0).map(|(_, d)| (d.device_key.to_string(), d.claimed)).unwrap();
    c.goto(&format!("{api}/ui/devices/{mine}")).await.unwrap();
    browser.until("document.querySelector('#owner')", Duration::from_secs(10)).await;
    assert_eq!(browser.js("return !!document.querySelector('#readings')").await, json!(false), "private until signed in");
    browser.register_wallet(seed, &rpc).await;
    c.find(Locator::Css("#wallets button[data-wallet='OVPP Test Wallet']")).await.unwrap().click().await.unwrap();
    let count = browser
        .until("document.querySelector('#readings') && +document.querySelector('#readings').dataset.count", Duration::from_secs(20))
        .await;
    assert!(count.as_u64() > Some(0), "the signed-in owner sees the device's readings");
    assert_eq!(browser.js("return window.__testWallet.signedMessages").await, json!(1));
    let claimed = browser.js("return +document.querySelector('#claimed').dataset.amount").await;
    assert_eq!(claimed.as_u64(), Some(claimed_on_chain), "the credit record is the chain's");
    browser.screenshot("device.png").await;
    browser.assert_no_console_errors("the device page").await;

    let _ = browser.client.clone().close().await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), network).await;
    let _ = std::fs::remove_dir_all(&dir);
}
