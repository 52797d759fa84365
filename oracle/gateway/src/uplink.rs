//! The gateway's side of the oracle API: buffered batches out to every oracle
//! (`POST /v1/telemetry`), commands in from the dispatching one (`POST /v1/commands`,
//! signed by each device key), and each device's signed answer (`POST .../acks`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::command::{Ack, CommandsRequest, DeviceSigned};
use ovpp_wire::dispatch::view::{AckBody, CommandsAnswer};
use ovpp_wire::http::{BatchStatus, TelemetryAnswer};

use crate::adapter::SetPoint;
use crate::Gateway;

/// A device the oracle did not know is asked about again after this long (its owner may
/// be registering it; the oracle syncs its registry from the chain).
const RECHECK_UNREGISTERED: Duration = Duration::from_secs(15);
/// Batches per request, and devices per commands query (the oracle's limits).
const PER_REQUEST: usize = 4096;

#[derive(Clone, Copy)]
enum Registration {
    Known,
    Unknown(Instant),
}

pub struct Uplink {
    http: reqwest::Client,
    /// Per oracle URL, per device name.
    registered: Mutex<HashMap<String, HashMap<String, Registration>>>,
}

impl Default for Uplink {
    fn default() -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Self { http, registered: Mutex::default() }
    }
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

impl Uplink {
    /// Devices `oracle` knows.
    pub fn registered_names(&self, oracle: &str) -> HashSet<String> {
        let map = self.registered.lock().expect("not poisoned");
        map.get(oracle)
            .map(|m| m.iter().filter(|(_, r)| matches!(r, Registration::Known)).map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    fn set_registration(&self, oracle: &str, name: &str, known: bool) {
        let mut map = self.registered.lock().expect("not poisoned");
        let entry = if known { Registration::Known } else { Registration::Unknown(Instant::now()) };
        map.entry(oracle.to_string()).or_default().insert(name.to_string(), entry);
    }

    /// Whether to send the device's readings to `oracle` now: unless it refused them as
    /// from an unknown device a moment ago (its owner may still be registering it, or the
    /// oracle has not synced its registry from the chain yet). The oracle's answer is the
    /// check: a batch it refuses as `unknown_device` stays buffered for the next try.
    fn may_send(&self, oracle: &str, name: &str) -> bool {
        let cached = self.registered.lock().expect("not poisoned").get(oracle).and_then(|m| m.get(name).copied());
        !matches!(cached, Some(Registration::Unknown(at)) if at.elapsed() < RECHECK_UNREGISTERED)
    }

    /// One round for `oracle`: batch what waits for registered devices, then send every
    /// batch in flight until the oracle has answered for all of them.
    pub async fn send_round(&self, gw: &Gateway, oracle: &str) -> Result<(), String> {
        let store = &gw.store;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        store
            .form_batches(oracle, now_ms, |name| gw.keys.get(name).filter(|_| self.may_send(oracle, name)))
            .await
            .map_err(|e| e.to_string())?;
        let url = format!("{}/v1/telemetry", base(oracle));
        let mut skip = HashSet::new();
        loop {
            let outgoing: Vec<_> = store
                .in_flight(oracle, PER_REQUEST + skip.len())
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|o| !skip.contains(&(o.device.clone(), o.sequence)))
                .take(PER_REQUEST)
                .collect();
            if outgoing.is_empty() {
                return Ok(());
            }
            let batches: Vec<_> = outgoing.iter().map(|o| o.batch.clone()).collect();
            let body = ovpp_wire::telemetry::encode_batches(&batches);
            let response = self
                .http
                .post(&url)
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                return Err(format!("{url}: HTTP {status}: {text}"));
            }
            let answer: TelemetryAnswer = response.json().await.map_err(|e| format!("{url}: unreadable answer: {e}"))?;
            if answer.results.len() != outgoing.len() {
                return Err(format!("{url}: {} results for {} batches", answer.results.len(), outgoing.len()));
            }
            let mut done = Vec::new();
            for (o, result) in outgoing.iter().zip(&answer.results) {
                match (result.status, result.reason.as_deref()) {
                    (BatchStatus::Accepted | BatchStatus::AlreadyStored, _) => {
                        self.set_registration(oracle, &o.device, true);
                        gw.metrics.readings_stored.fetch_add(o.readings as u64, Ordering::Relaxed);
                        done.push((o.device.clone(), o.sequence));
                    }
                    // Not (or no longer) in this oracle's registry: kept, asked about later.
                    (BatchStatus::Rejected, Some("unknown_device")) => {
                        if self.may_send(oracle, &o.device) {
                            tracing::info!(device = %o.device, oracle = %oracle, "not registered (yet): its readings wait in the buffer (register it with `ovpp device register`)");
                        }
                        self.set_registration(oracle, &o.device, false);
                        skip.insert((o.device.clone(), o.sequence));
                    }
                    (BatchStatus::Rejected, reason) => {
                        tracing::warn!(
                            device = %o.device,
                            oracle = %oracle,
                            readings = o.readings,
                            reason = reason.unwrap_or_default(),
                            message = result.message.as_deref().unwrap_or_default(),
                            "the oracle refused a batch for good: its readings are dropped"
                        );
                        gw.metrics.readings_refused.fetch_add(o.readings as u64, Ordering::Relaxed);
                        done.push((o.device.clone(), o.sequence));
                    }
                }
            }
            store.done(oracle, &done).await.map_err(|e| e.to_string())?;
        }
    }

    /// One round of commands from the dispatching oracle: each device's command in force,
    /// put into force through its adapter when new, and answered with the device key.
    /// `applied` holds, per device, the command last put into force.
    pub async fn command_round(&self, gw: &Gateway, applied: &mut HashMap<String, String>) -> Result<(), String> {
        let Some(oracle) = gw.store.oracles().first().cloned() else { return Ok(()) };
        let registered = self.registered_names(&oracle);
        let names: Vec<&(crate::config::DeviceSpec, usize)> =
            gw.devices.iter().filter(|(spec, _)| registered.contains(&spec.name)).collect();
        for group in names.chunks(PER_REQUEST) {
            let keys: Vec<&ed25519_dalek::SigningKey> = group.iter().filter_map(|(spec, _)| gw.keys.get(&spec.name)).collect();
            if keys.len() != group.len() {
                continue;
            }
            let request = CommandsRequest::signed(&keys, unix_now());
            let url = format!("{}/v1/commands", base(&oracle));
            let response = self.http.post(&url).json(&request).send().await.map_err(|e| format!("{url}: {e}"))?;
            if !response.status().is_success() {
                let status = response.status();
                return Err(format!("{url}: HTTP {status}: {}", response.text().await.unwrap_or_default()));
            }
            let answer: CommandsAnswer = response.json().await.map_err(|e| format!("{url}: unreadable answer: {e}"))?;
            for ((spec, adapter), key_text) in group.iter().zip(&request.devices) {
                let current = answer.devices.get(key_text).and_then(|d| d.current.clone());
                let adapter = &gw.adapters[*adapter];
                match current {
                    Some(command) if applied.get(&spec.name) != Some(&command.id) => {
                        let setpoint = SetPoint {
                            command_id: command.id.clone(),
                            setpoint_w: command.setpoint_w,
                            valid_from: command.valid_from,
                            valid_until: command.valid_until,
                        };
                        let outcome = adapter.apply(&spec.name, Some(&setpoint)).await;
                        let counter = if outcome.is_ok() { &gw.metrics.commands_applied } else { &gw.metrics.commands_refused };
                        counter.fetch_add(1, Ordering::Relaxed);
                        match &outcome {
                            Ok(()) => {
                                tracing::info!(device = %spec.name, command = %command.id, setpoint_w = command.setpoint_w, "set point in force")
                            }
                            Err(refusal) => {
                                tracing::warn!(device = %spec.name, command = %command.id, reason = %refusal, "set point refused")
                            }
                        }
                        applied.insert(spec.name.clone(), command.id.clone());
                        let key = gw.keys.get(&spec.name).expect("checked above");
                        self.ack(&oracle, key, key_text, &command.id, outcome.err().map(|r| r.0)).await;
                    }
                    Some(_) => {}
                    None => {
                        if applied.remove(&spec.name).is_some() {
                            if let Err(refusal) = adapter.apply(&spec.name, None).await {
                                tracing::warn!(device = %spec.name, reason = %refusal, "could not end a set point");
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Accepts (`refusal` none) or refuses a command, signed by the device key. A lost ack
    /// is logged: the device follows (or not) either way, and its telemetry says which.
    async fn ack(&self, oracle: &str, key: &ed25519_dalek::SigningKey, key_text: &str, command_id: &str, refusal: Option<String>) {
        let accept = refusal.is_none();
        let ack = Ack { device_key: key.verifying_key().to_bytes(), command_id: command_id.to_string(), accept };
        let body =
            AckBody { command_id: command_id.to_string(), accept, signature: bs58::encode(ack.sign(key)).into_string(), reason: refusal };
        let url = format!("{}/v1/devices/{key_text}/acks", base(oracle));
        match self.http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(url = %url, status = %r.status(), "the oracle refused an ack"),
            Err(e) => tracing::warn!(url = %url, error = %e, "could not send an ack"),
        }
    }
}
