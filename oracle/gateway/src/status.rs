//! What the gateway reports about itself: Prometheus text at `/metrics`, and the JSON that
//! `ovpp-gateway status` prints, at `/v1/status`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::Gateway;

/// Counters and the latest reading per device.
#[derive(Default)]
pub struct Metrics {
    pub readings_recorded: AtomicU64,
    pub readings_stored: AtomicU64,
    pub readings_refused: AtomicU64,
    pub commands_applied: AtomicU64,
    pub commands_refused: AtomicU64,
    /// Interval end of each device's latest reading.
    pub last_reading: Mutex<BTreeMap<String, i64>>,
    /// Per oracle: the last error sending to it, cleared by a success.
    pub oracle_errors: Mutex<BTreeMap<String, String>>,
}

impl Metrics {
    pub fn recorded(&self, last: &[(String, i64)]) {
        self.readings_recorded.fetch_add(last.len() as u64, Ordering::Relaxed);
        let mut map = self.last_reading.lock().expect("not poisoned");
        for (device, end) in last {
            let entry = map.entry(device.clone()).or_default();
            *entry = (*entry).max(*end);
        }
    }

    pub fn oracle_error(&self, oracle: &str, error: Option<String>) {
        let mut map = self.oracle_errors.lock().expect("not poisoned");
        match error {
            Some(e) => map.insert(oracle.to_string(), e),
            None => map.remove(oracle),
        };
    }
}

/// `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub devices: Vec<DeviceStatus>,
    pub oracles: Vec<OracleStatus>,
    pub readings_recorded: u64,
    pub readings_stored: u64,
    pub readings_refused: u64,
    pub commands_applied: u64,
    pub commands_refused: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub name: String,
    pub kind: String,
    pub device_key: String,
    pub region: String,
    pub connected: bool,
    /// Whether the dispatching oracle knows it (registered on-chain).
    pub registered: bool,
    /// Interval end of its latest reading (unix s).
    pub last_reading: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OracleStatus {
    pub url: String,
    /// Readings it has not stored yet.
    pub queue_depth: u64,
    pub last_error: Option<String>,
}

pub async fn status(gateway: &Gateway) -> Status {
    let m = &gateway.metrics;
    let last = m.last_reading.lock().expect("not poisoned").clone();
    let errors = m.oracle_errors.lock().expect("not poisoned").clone();
    let registered = gateway.uplink.registered_names(gateway.store.oracles().first().map(String::as_str).unwrap_or_default());
    let devices = gateway
        .devices
        .iter()
        .map(|(spec, adapter)| DeviceStatus {
            name: spec.name.clone(),
            kind: ovpp_wire::device::kind_name(spec.kind).to_string(),
            device_key: gateway.keys.public(&spec.name).map(|k| bs58::encode(k).into_string()).unwrap_or_default(),
            region: spec.region.clone(),
            connected: gateway.adapters[*adapter].connected(&spec.name),
            registered: registered.contains(&spec.name),
            last_reading: last.get(&spec.name).copied(),
        })
        .collect();
    let mut oracles = Vec::new();
    for url in gateway.store.oracles() {
        oracles.push(OracleStatus {
            url: url.clone(),
            queue_depth: gateway.store.depth(url).await.unwrap_or(0),
            last_error: errors.get(url).cloned(),
        });
    }
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Status {
        devices,
        oracles,
        readings_recorded: n(&m.readings_recorded),
        readings_stored: n(&m.readings_stored),
        readings_refused: n(&m.readings_refused),
        commands_applied: n(&m.commands_applied),
        commands_refused: n(&m.commands_refused),
    }
}

/// Prometheus text exposition of [`Status`].
pub fn prometheus(s: &Status) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |v: u64| vec![(String::new(), v.to_string())];
    let connected = s.devices.iter().filter(|d| d.connected).count() as u64;
    metric("ovpp_gateway_devices", "gauge", "Devices configured.", plain(s.devices.len() as u64));
    metric("ovpp_gateway_devices_connected", "gauge", "Devices reachable now.", plain(connected));
    metric("ovpp_gateway_readings_recorded_total", "counter", "Readings committed to the buffer.", plain(s.readings_recorded));
    metric("ovpp_gateway_readings_stored_total", "counter", "Readings an oracle stored.", plain(s.readings_stored));
    metric("ovpp_gateway_readings_refused_total", "counter", "Readings an oracle refused for good.", plain(s.readings_refused));
    metric("ovpp_gateway_commands_applied_total", "counter", "Set points a device took.", plain(s.commands_applied));
    metric("ovpp_gateway_commands_refused_total", "counter", "Set points a device refused.", plain(s.commands_refused));
    let queue = s.oracles.iter().map(|o| (format!("{{oracle=\"{}\"}}", o.url), o.queue_depth.to_string())).collect();
    metric("ovpp_gateway_queue_depth", "gauge", "Readings not yet stored by the oracle.", queue);
    let last = s
        .devices
        .iter()
        .filter_map(|d| d.last_reading.map(|t| (format!("{{device=\"{}\",kind=\"{}\"}}", d.name, d.kind), t.to_string())))
        .collect();
    metric("ovpp_gateway_last_reading_timestamp_seconds", "gauge", "End of each device's latest reading.", last);
    out
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new().route("/metrics", get(get_metrics)).route("/v1/status", get(get_status)).with_state(gateway)
}

async fn get_status(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(status(&gateway).await).into_response()
}

async fn get_metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    ([("content-type", "text/plain; version=0.0.4")], prometheus(&status(&gateway).await)).into_response()
}
