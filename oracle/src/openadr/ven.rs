//! The oracle as a VEN of a utility's or TSO's VTN (OpenADR 3.0.1, configured as `[[vtns]]`).
//! Each sync, on the leader: fetch an OAuth2 token (client credentials), read the VTN's events
//! (paged), and turn each into an event of the fleet: program `<vtn>-<program id>`, event
//! `<vtn>-<event id>`, in the event's `REGION` target or else the region configured for the VTN.
//! A changed event is planned afresh, one gone from the VTN (404, or cancelled) is cancelled.
//! Once the oracle has measured an event, the VEN posts the measurement back as an OpenADR
//! report: per interval the baseline, the metered net import and the delivery (kWh) of the
//! fleet (`AGGREGATED_REPORT`) and, where `report_devices` allows, of each device. VTNs do not all send webhooks (OpenLEADR does
//! not), so the VEN polls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::dispatch::{DispatchError, Dispatcher};
use crate::leader::Leadership;
use crate::store::Store;
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::event::{EventError, EventSource, GridEvent, Status, ValuesMap, WireEvent, WireProgram};

/// One VTN this oracle is a VEN of.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VtnSettings {
    /// Short name; prefixes the ids of the programs and events taken from it (A-Z a-z 0-9 _).
    pub name: String,
    /// The VTN's base URL (its `/events` is `<url>/events`).
    pub url: String,
    /// Its token endpoint [default: `<url>/auth/token`].
    #[serde(default)]
    pub token_url: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// This VEN's `venName`, and the `clientName` of its reports.
    pub ven_name: String,
    /// Where the fleet answers an event that targets no `REGION`.
    pub region: String,
    /// Seconds between syncs [default 10].
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// Report each device's delivery as a resource of its own [default: false, only the
    /// fleet's sum]: a device's delivery tells whether its household was at home, so it goes
    /// to a utility only where the owners agreed.
    #[serde(default)]
    pub report_devices: bool,
}

impl std::fmt::Debug for VtnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VtnSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl VtnSettings {
    /// The name checks of the settings file: `_` not `-`, so that `<name>-` prefixes are
    /// unambiguous, and not `evt`, the prefix of the oracle's own event ids.
    pub fn check_name(&self) -> Result<(), String> {
        let ok = (1..=32).contains(&self.name.len()) && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok || self.name == "evt" {
            return Err(format!("[[vtns]] name {:?}: 1-32 characters of A-Z a-z 0-9 _, not `evt`", self.name));
        }
        Ok(())
    }
}

fn default_poll() -> u64 {
    10
}

#[derive(Debug, thiserror::Error)]
pub enum VenError {
    #[error("VTN {vtn}: {what}: {error}")]
    Http { vtn: String, what: String, error: String },
    #[error("VTN {vtn}: {what}: HTTP {status}: {body}")]
    Refused { vtn: String, what: String, status: u16, body: String },
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub imported: Vec<String>,
    pub cancelled: Vec<String>,
    pub reported: Vec<String>,
    /// VTN events the fleet does not answer (an unsupported payload type, a region without
    /// devices, targeted at another VEN), with why; and reports the VTN refused.
    pub skipped: Vec<(String, String)>,
}

/// An event as the VTN serves it.
#[derive(Deserialize)]
struct ServedEvent {
    id: String,
    #[serde(rename = "modificationDateTime", default)]
    modified: Option<String>,
    /// An OVPP VTN's extension: a cancelled event stays listed.
    #[serde(default)]
    status: Option<String>,
    #[serde(flatten)]
    event: WireEvent,
}

pub struct Ven {
    pub settings: VtnSettings,
    http: reqwest::Client,
    token: Mutex<Option<(String, i64)>>,
    /// VTN events not taken in, with the version and why (said once per version).
    skipped: Mutex<HashMap<String, Option<String>>>,
    /// Local events whose report the VTN has.
    reported: Mutex<HashSet<String>>,
}

/// `<vtn>-<id>` as an objectID (other characters become `_`, at most 128).
fn local_id(vtn: &str, id: &str) -> String {
    format!("{vtn}-{id}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(128).collect()
}

impl Ven {
    pub fn new(settings: VtnSettings) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("a plain HTTP client builds");
        Self { settings, http, token: Mutex::new(None), skipped: Mutex::default(), reported: Mutex::default() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.url.trim_end_matches('/'))
    }

    fn http_error(&self, what: &str, e: impl std::fmt::Display) -> VenError {
        VenError::Http { vtn: self.settings.name.clone(), what: what.into(), error: e.to_string() }
    }

    async fn checked(&self, what: &str, response: Result<reqwest::Response, reqwest::Error>) -> Result<Value, VenError> {
        let response = response.map_err(|e| self.http_error(what, e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.http_error(what, e))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The token was revoked or the VTN restarted with another key: a new one next time.
            *self.token.lock().await = None;
        }
        if !status.is_success() {
            return Err(VenError::Refused { vtn: self.settings.name.clone(), what: what.into(), status: status.as_u16(), body });
        }
        serde_json::from_str(&body).map_err(|e| self.http_error(what, format!("answer is not JSON: {e}")))
    }

    /// A bearer token, fetched again a minute before it expires.
    async fn token(&self) -> Result<String, VenError> {
        let mut cached = self.token.lock().await;
        if let Some((token, _)) = cached.as_ref().filter(|(_, expires)| *expires > unix_now() + 60) {
            return Ok(token.clone());
        }
        let url = self.settings.token_url.clone().unwrap_or_else(|| self.url("auth/token"));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &self.settings.client_id),
            ("client_secret", &self.settings.client_secret),
        ];
        let answer = self.checked("token", self.http.post(url).form(&form).send().await).await?;
        let token = answer["access_token"].as_str().ok_or_else(|| self.http_error("token", "no access_token in the answer"))?.to_string();
        let expires = unix_now() + answer["expires_in"].as_i64().unwrap_or(3600);
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    async fn get(&self, what: &str, path: &str, query: &[(&str, String)]) -> Result<Value, VenError> {
        let token = self.token().await?;
        self.checked(what, self.http.get(self.url(path)).bearer_auth(token).query(query).send().await).await
    }

    /// Every event of the VTN, page by page; an answer that is not a list fails the sync
    /// (nothing is cancelled on a listing that may be incomplete).
    async fn events(&self) -> Result<Vec<Value>, VenError> {
        let mut all = Vec::new();
        loop {
            let page = self.get("events", "events", &[("skip", all.len().to_string()), ("limit", "50".into())]).await?;
            let Value::Array(page) = page else { return Err(self.http_error("events", "the answer is not a list of events")) };
            let done = page.is_empty();
            all.extend(page);
            if done {
                return Ok(all);
            }
            if all.len() > 10_000 {
                return Err(self.http_error("events", "more than 10000 events listed"));
            }
        }
    }

    /// Whether the VTN answers 404 for its event `id` (it is gone, not just missing from a page).
    async fn gone(&self, id: &str) -> Result<bool, VenError> {
        match self.get("event", &format!("events/{id}"), &[]).await {
            Ok(event) => Ok(event["status"] == "cancelled"),
            Err(VenError::Refused { status: 404, .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Takes in the VTN's events, cancels those it dropped, and reports measured ones.
    pub async fn sync(&self, dispatch: &Dispatcher, store: &Store, now: i64) -> Result<Synced, VenError> {
        let mut synced = Synced::default();
        let served = self.events().await?;
        let mine: HashMap<String, GridEvent> = dispatch
            .events()
            .await
            .into_iter()
            .filter(|e| e.source.as_ref().is_some_and(|s| s.vtn == self.settings.name))
            .map(|e| (e.source.as_ref().map(|s| s.event_id.clone()).unwrap_or_default(), e))
            .collect();
        let mut listed: HashSet<String> = HashSet::new();
        let programs: HashSet<String> = dispatch.programs().await.into_iter().map(|(id, _)| id).collect();
        for raw in served {
            let remote = raw["id"].as_str().unwrap_or_default().to_string();
            listed.insert(remote.clone());
            let served: ServedEvent = match serde_json::from_value(raw) {
                Ok(e) => e,
                Err(e) => {
                    self.skip(&mut synced, &remote, None, format!("not an OpenADR 3.0.1 event: {e}")).await;
                    continue;
                }
            };
            if served.status.as_deref() == Some("cancelled") {
                listed.remove(&remote);
                continue;
            }
            let local = mine.get(&served.id);
            if local.is_some_and(|e| e.source.as_ref().is_some_and(|s| s.modified == served.modified)) {
                continue;
            }
            if let Some(why) = self.not_for_us(&served.event) {
                self.skip(&mut synced, &served.id, served.modified.clone(), why).await;
                continue;
            }
            let program = local_id(&self.settings.name, &served.event.program_id);
            if !programs.contains(&program) {
                let wire = WireProgram {
                    program_name: program.clone(),
                    program_long_name: Some(format!("{} at VTN {}", served.event.program_id, self.settings.name)),
                    ..WireProgram::default()
                };
                match dispatch.create_program(wire, now).await {
                    Ok(_) | Err(DispatchError::ProgramExists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut event = served.event.clone();
            event.program_id = program;
            event.targets.retain(|t| t.kind == "REGION");
            if event.targets.is_empty() {
                event.targets = vec![ValuesMap { kind: "REGION".into(), values: vec![json!(self.settings.region)] }];
            }
            let id = local.map_or_else(|| local_id(&self.settings.name, &served.id), |e| e.id.clone());
            if local.is_none() && dispatch.event(&id).await.is_some() {
                // Two of its ids made the same local id (characters an objectID cannot hold).
                self.skip(&mut synced, &served.id, served.modified.clone(), format!("its local id {id} is taken")).await;
                continue;
            }
            let source = EventSource {
                vtn: self.settings.name.clone(),
                program_id: served.event.program_id.clone(),
                event_id: served.id.clone(),
                modified: served.modified.clone(),
            };
            match dispatch.import_event(&event, &id, source, now).await {
                Ok(_) => synced.imported.push(id),
                // The VTN's changes to an event that is over change nothing here.
                Err(DispatchError::Event(EventError::Final(..) | EventError::InThePast)) => {}
                // Retried each sync: a region gets devices, a conflicting event ends.
                Err(DispatchError::Event(e)) => self.skip(&mut synced, &served.id, served.modified.clone(), e.to_string()).await,
                Err(e) => return Err(e.into()),
            }
        }
        for (remote, event) in &mine {
            let live = matches!(event.status(now), Status::Pending | Status::Active);
            if live && !listed.contains(remote) && self.gone(remote).await? {
                dispatch.cancel_event(&event.id, now).await?;
                synced.cancelled.push(event.id.clone());
            }
        }
        let measured: HashSet<String> = store.measured_events().await.map_err(DispatchError::from)?.into_iter().collect();
        for event in mine.values().filter(|e| measured.contains(&e.id)) {
            if self.reported.lock().await.contains(&event.id) {
                continue;
            }
            match self.report(store, event).await {
                Ok(true) => synced.reported.push(event.id.clone()),
                Ok(false) => {}
                // One refused report does not hold back the others; tried again next sync.
                Err(e) => synced.skipped.push((event.id.clone(), e.to_string())),
            }
        }
        Ok(synced)
    }

    /// Why the fleet does not answer `event`, if it does not: it names other VENs.
    fn not_for_us(&self, event: &WireEvent) -> Option<String> {
        let names: Vec<&str> =
            event.targets.iter().filter(|t| t.kind == "VEN_NAME").flat_map(|t| t.values.iter().filter_map(|v| v.as_str())).collect();
        (!names.is_empty() && !names.contains(&self.settings.ven_name.as_str()))
            .then(|| format!("targeted at the VENs {names:?}, not {}", self.settings.ven_name))
    }

    /// Records a VTN event not taken in: said once per version of it.
    async fn skip(&self, synced: &mut Synced, remote: &str, version: Option<String>, why: String) {
        if self.skipped.lock().await.insert(remote.to_string(), version.clone()) != Some(version) {
            synced.skipped.push((remote.to_string(), why));
        }
    }

    /// Posts the measurement of `event` as this VEN's report on the VTN's event, once: true
    /// when posted now.
    async fn report(&self, store: &Store, event: &GridEvent) -> Result<bool, VenError> {
        let (id, source) = (&event.id, event.source.as_ref().expect("the VEN's events have their source"));
        let Some((report, measured_at)) = store.event_reports(Some(id)).await.map_err(DispatchError::from)?.pop() else {
            return Ok(false);
        };
        let (program_id, event_id) = (&source.program_id, &source.event_id);
        let query = [("eventID", event_id.to_string()), ("clientName", self.settings.ven_name.clone())];
        let already = self.get("reports", "reports", &query).await?;
        if already.as_array().is_some_and(|a| !a.is_empty()) {
            self.reported.lock().await.insert(id.to_string());
            return Ok(false);
        }
        let measured = super::measurement::measurement_report(&report, event, measured_at);
        // Resources with the spec's fields only (the VTN's report schema need not take ours),
        // the devices only where the settings say so.
        let resources: Vec<Value> = measured["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| self.settings.report_devices || r["resourceName"] == super::measurement::AGGREGATE)
            .map(|r| json!({"resourceName": r["resourceName"], "intervals": r["intervals"]}))
            .collect();
        let body = json!({
            "programID": program_id,
            "eventID": event_id,
            "clientName": self.settings.ven_name,
            // Unique per event: some VTNs (OpenLEADR) refuse a report name twice.
            "reportName": format!("{} measurement of {}", self.settings.ven_name, id),
            "payloadDescriptors": measured["payloadDescriptors"],
            "resources": resources,
        });
        let token = self.token().await?;
        let posted = self.http.post(self.url("reports")).bearer_auth(token).json(&body).send().await;
        match self.checked("report", posted).await {
            Ok(_) => {}
            // Another process of this oracle posted it first.
            Err(VenError::Refused { status: 409, .. }) => {}
            Err(e) => return Err(e),
        }
        self.reported.lock().await.insert(id.to_string());
        tracing::info!(vtn = %self.settings.name, event = %event_id, local = %id, "reported the measured delivery to the VTN");
        Ok(true)
    }
}

/// Syncs with each VTN every `poll_secs`, on the leader; a failed sync is logged and retried.
pub async fn run(ven: Arc<Ven>, dispatch: Arc<Dispatcher>, store: Store, leader: Arc<Leadership>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(ven.settings.poll_secs.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !leader.is_leader() {
            continue;
        }
        match ven.sync(&dispatch, &store, unix_now()).await {
            Ok(s) => {
                for (event, why) in &s.skipped {
                    tracing::warn!(vtn = %ven.settings.name, event = %event, reason = %why, "a VTN event the fleet does not answer");
                }
                if !(s.imported.is_empty() && s.cancelled.is_empty() && s.reported.is_empty()) {
                    tracing::info!(vtn = %ven.settings.name, imported = ?s.imported, cancelled = ?s.cancelled, reported = ?s.reported, "synced with the VTN");
                }
            }
            Err(e) => tracing::warn!(error = %e, "VTN sync failed; retrying"),
        }
    }
}
