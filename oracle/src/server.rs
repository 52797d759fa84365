//! The oracle's HTTP API (JSON, stable error bodies): telemetry ingest, the fleet view,
//! device state, Prometheus metrics and health; and the dashboard and wallet pages ([`ui`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::epoch::db::EpochRecord;
use crate::epoch::EpochTree;
use crate::fleet::{is_online, Fleet};
use crate::ingest::{IngestError, Ingestor};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::{Store, StoreError};
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::{kind_from_name, kind_name};
use ovpp_wire::http::{
    BatchResult, BatchStatus, DeviceReadings, DeviceView, EpochSignature, EpochView, ErrorBody, FleetView, Health, JsonBatch, Rewards,
    SignatureRecorded, TelemetryAnswer,
};
use ovpp_wire::telemetry::validate::Accepted;
use ovpp_wire::telemetry::SignedBatch;

pub mod auth;
mod grid;
pub mod listen;
pub mod openadr;
mod ui;
mod wallet;
mod weather;

/// Most batches one request may carry.
pub const MAX_BATCHES_PER_REQUEST: usize = 4096;
/// Largest request body accepted (413 above it): 4096 batches of 96 readings in JSON fit.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub ingestor: Ingestor,
    pub registry: Arc<Registry>,
    pub fleet: Arc<Fleet>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub proofs: Arc<ProofCache>,
    pub chain: Arc<dyn ovpp_chain::Chain>,
    pub dispatch: Arc<crate::dispatch::Dispatcher>,
    pub tasks: Arc<crate::tasks::Tasks>,
    /// Whether this process does the leader's work (see `leader`).
    pub leader: Arc<crate::leader::Leadership>,
    /// The OpenADR 3 VTN's clients and webhooks.
    pub openadr: Arc<crate::openadr::Vtn>,
    /// Wallet sign-in sessions.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// What the dashboard pages remember between requests.
    pub ui: Arc<ui::Live>,
    /// The Wallet Standard chain the wallet pages ask for.
    pub wallet_chain: String,
    /// Where people open the pages (`--public-url`): sign-in messages name it.
    pub public_url: Option<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/telemetry", post(post_telemetry))
        .route("/v1/fleet", get(get_fleet))
        .route("/v1/devices/{key}", get(get_device))
        .route("/v1/epochs", get(get_epochs))
        .route("/v1/epochs/{epoch}", get(get_epoch))
        .route("/v1/epochs/{epoch}/report", get(get_epoch_report))
        .route("/v1/epochs/{epoch}/signatures", post(post_epoch_signature))
        .route("/v1/rewards/{key}", get(get_rewards))
        .merge(grid::routes())
        .merge(weather::routes())
        .merge(wallet::routes())
        .merge(ui::routes())
        .merge(openadr::routes())
        .route("/metrics", get(get_metrics))
        .route("/healthz", get(get_health))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// 200 while every background task runs; 503 naming the ones that stopped.
async fn get_health(State(state): State<AppState>) -> Response {
    let dead = state.tasks.dead();
    let leader = state.leader.is_leader();
    if dead.is_empty() {
        return Json(Health { status: "ok".into(), leader, dead_tasks: vec![], error: None }).into_response();
    }
    let message = format!("background task(s) stopped: {} (see the log; restart the oracle)", dead.join(", "));
    let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "task_stopped", message);
    let body = Health {
        status: "failing".into(),
        leader,
        dead_tasks: dead.iter().map(|d| d.to_string()).collect(),
        error: Some(error.body().error),
    };
    (error.status, Json(body)).into_response()
}

pub(crate) async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {method} {}", uri.path()))
}

/// Every error answer carries the documented JSON body, also those axum makes itself as
/// plain text: a wrong method (405), a body over the limit (413), a path, query or JSON body
/// its extractors refuse (400, 415, 422), a request that took too long (408).
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    // JSON errors, and the pages' own HTML error pages, go out as they are.
    let is_json_or_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json_or_page {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", format!("{path} does not take {method}")),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", format!("request bodies are at most {MAX_BODY_BYTES} bytes")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long to arrive or to answer".to_string()),
        StatusCode::NOT_FOUND => ("not_found", format!("no route {method} {path}")),
        _ if text.starts_with("Invalid URL") => ("bad_path", text),
        _ if text.starts_with("Failed to deserialize query string") => ("bad_query", text),
        _ if status.is_client_error() => ("malformed_body", text),
        _ => ("internal", text),
    };
    let mut wrapped = ApiError::new(status, code, message).into_response();
    // Keep what the client needs from the original answer (e.g. `Allow` on a 405).
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        wrapped.headers_mut().insert(header::ALLOW, allow.clone());
    }
    wrapped
}

/// `{"error": {"code": ..., "message": ...}}` with an HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl ApiError {
    /// The documented body: `{"error": {"code", "message"}}`.
    fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code, self.message.clone())
    }
}

impl IntoResponse for ApiError {
    /// The body, and the same error as a response extension: a route with another error
    /// format (OpenADR's `problem`) renders it from there.
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, Json(body.clone())).into_response();
        response.extensions_mut().insert(body);
        response
    }
}

/// A JSON request body: `Content-Type: application/json` (415 otherwise), then parsed.
pub(crate) fn json_body<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or_default();
    if !content_type.starts_with(b"application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", format!("JSON body: {e}")))
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let code = match e {
            IngestError::ChainUnavailable(_) => "chain_unavailable",
            IngestError::Storage(_) => "storage_unavailable",
            IngestError::Stopped => "shutting_down",
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonBody {
    Many(Vec<JsonBatch>),
    One(JsonBatch),
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<SignedBatch>, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let malformed = |e: String| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", e);
    if content_type.starts_with("application/octet-stream") {
        ovpp_wire::telemetry::decode_batches(body).map_err(|e| malformed(format!("binary body is not a borsh Vec<SignedBatch>: {e}")))
    } else if content_type.starts_with("application/json") {
        let parsed: JsonBody = serde_json::from_slice(body).map_err(|e| malformed(format!("JSON body: {e}")))?;
        let batches = match parsed {
            JsonBody::Many(many) => many,
            JsonBody::One(one) => vec![one],
        };
        batches
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.into_signed().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", format!("batch {i}: {e}"))))
            .collect()
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/octet-stream (borsh Vec<SignedBatch>)",
        ))
    }
}

async fn post_telemetry(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let batches = decode_body(&headers, &body)?;
    if batches.is_empty() || batches.len() > MAX_BATCHES_PER_REQUEST {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_batch_count",
            format!("a request carries 1 to {MAX_BATCHES_PER_REQUEST} batches, not {}", batches.len()),
        ));
    }
    let outcomes = state.ingestor.ingest(batches).await?;
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    let results: Vec<BatchResult> = outcomes
        .iter()
        .map(|o| match o {
            Ok(Accepted::Stored) => BatchResult { status: BatchStatus::Accepted, reason: None, message: None },
            Ok(Accepted::AlreadyStored) => BatchResult { status: BatchStatus::AlreadyStored, reason: None, message: None },
            Err(r) => BatchResult { status: BatchStatus::Rejected, reason: Some(r.code().into()), message: Some(r.to_string()) },
        })
        .collect();
    Ok(Json(TelemetryAnswer { accepted, rejected: outcomes.len() - accepted, results }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetQuery {
    region: Option<String>,
    kind: Option<String>,
}

async fn get_fleet(State(state): State<AppState>, Query(q): Query<FleetQuery>) -> Result<Response, ApiError> {
    let kind = match &q.kind {
        None => None,
        Some(name) => Some(kind_from_name(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_kind",
                format!("kind must be one of ev, ev_charger, home_battery, ci_storage, rooftop_solar, smart_meter, ems; got {name}"),
            )
        })?),
    };
    let devices: Vec<_> = state
        .registry
        .all()
        .await
        .into_iter()
        .filter(|d| q.region.as_ref().is_none_or(|r| &d.region == r) && kind.is_none_or(|k| d.kind() == k))
        .collect();
    let now = unix_now();
    let summary = state.fleet.summary(&devices, now).await;
    let events = state.dispatch.view(now).await;
    let forecast = state.dispatch.forecast(now, &[1, 2, 4]).await.map_err(crate::dispatch::DispatchError::from)?;
    Ok(Json(FleetView { summary, events, forecast }).into_response())
}

/// The registry entry (public, as on-chain) and, for the device's owner, the device itself
/// and grid operators only, its readings and online state (a household's behaviour).
async fn get_device(State(state): State<AppState>, Path(key): Path<String>, caller: auth::Caller) -> Result<Response, ApiError> {
    let bytes = parse_key(&key)?;
    let device = state
        .registry
        .get(&bytes)
        .await
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_device", format!("no registered device {key}")))?;
    let private = caller.speaks_for_device(&bytes, Some(&device.owner.to_bytes()));
    let readings = match private {
        false => None,
        true => {
            let latest = state.fleet.latest(&bytes).await;
            Some(DeviceReadings {
                online: latest.is_some_and(|l| is_online(&l.reading, unix_now())),
                latest: latest.map(|l| l.reading),
                recent_readings: state.fleet.recent(&bytes).await,
            })
        }
    };
    Ok(Json(DeviceView {
        device_key: key,
        owner: device.owner.to_string(),
        kind: kind_name(device.kind()).into(),
        status: format!("{:?}", device.profile.status).to_lowercase(),
        region: device.region,
        rated_power_w: device.profile.rated_power_w,
        energy_capacity_wh: device.profile.energy_capacity_wh,
        readings_visible: private,
        readings,
    })
    .into_response())
}

async fn get_metrics(State(state): State<AppState>) -> Response {
    let devices = state.registry.all().await;
    let summary = state.fleet.summary(&devices, unix_now()).await;
    let mut text = state.metrics.render(&summary);
    text.push_str("# HELP ovpp_task_up Whether the named background task still runs (1) or stopped (0).\n# TYPE ovpp_task_up gauge\n");
    for (name, up) in state.tasks.status() {
        text.push_str(&format!("ovpp_task_up{{task=\"{name}\"}} {}\n", u8::from(up)));
    }
    text.push_str(&format!(
        "# HELP ovpp_leader Whether this process does the leader's work among those sharing its database.\n# TYPE ovpp_leader gauge\novpp_leader {}\n",
        u8::from(state.leader.is_leader())
    ));
    // Epoch progress, from the store (a failed read leaves the gauges out, not the page).
    if let Ok(epochs) = state.store.epochs(ovpp::state::ROOT_RING_LEN as i64).await {
        let closed = epochs.first();
        let posted = epochs.iter().find(|e| e.posted_at.is_some());
        let gauges = [
            ("ovpp_epoch_last_closed", "Latest epoch closed here.", closed.map_or(0, |e| e.epoch)),
            ("ovpp_epoch_last_posted", "Latest epoch closed here and seen posted on-chain.", posted.map_or(0, |e| e.epoch)),
            (
                "ovpp_epoch_cumulative_total",
                "OVPP base units earned in total as of the latest closed epoch.",
                closed.map_or(0, |e| e.cumulative_total),
            ),
        ];
        for (name, help, value) in gauges {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", e.to_string())
    }
}

pub(crate) fn parse_key(key: &str) -> Result<[u8; 32], ApiError> {
    let mut bytes = [0u8; 32];
    match bs58::decode(key).onto(&mut bytes) {
        Ok(32) => Ok(bytes),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_device_key", "device key must be base58 of 32 bytes")),
    }
}

fn epoch_view(e: &EpochRecord) -> EpochView {
    EpochView {
        epoch: e.epoch,
        start_ts: e.start_ts,
        end_ts: e.end_ts,
        emission: e.emission,
        cumulative_total: e.cumulative_total,
        leaf_count: e.leaf_count,
        root: hex::encode(e.root),
        report_hash: hex::encode(e.report_hash),
        closed_at: e.closed_at,
        posted: e.posted_at.is_some(),
        posted_at: e.posted_at,
        posted_signature: e.posted_signature.clone(),
        signatures: None,
    }
}

async fn epoch_or_404(store: &Store, epoch: u64) -> Result<EpochRecord, ApiError> {
    store
        .epoch(epoch)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_epoch", format!("epoch {epoch} is not closed here")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochsQuery {
    limit: Option<i64>,
}

async fn get_epochs(State(state): State<AppState>, Query(q): Query<EpochsQuery>) -> Result<Response, ApiError> {
    let epochs = state.store.epochs(q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(epochs.iter().map(epoch_view).collect::<Vec<_>>()).into_response())
}

async fn get_epoch(State(state): State<AppState>, Path(epoch): Path<u64>) -> Result<Response, ApiError> {
    let record = epoch_or_404(&state.store, epoch).await?;
    let signatures = state.store.epoch_signatures(epoch).await?;
    let signatures = signatures
        .iter()
        .map(|(signer, signature)| EpochSignature {
            signer: bs58::encode(signer).into_string(),
            signature: bs58::encode(signature).into_string(),
        })
        .collect();
    Ok(Json(EpochView { signatures: Some(signatures), ..epoch_view(&record) }).into_response())
}

async fn get_epoch_report(State(state): State<AppState>, Path(epoch): Path<u64>) -> Result<Response, ApiError> {
    let report = state
        .store
        .epoch_report(epoch)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_epoch", format!("epoch {epoch} is not closed here")))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], report).into_response())
}

/// A co-signer hands in its signature over the epoch message. Checked here against the
/// message of the epoch as closed here; oracle-set membership is checked when relaying.
async fn post_epoch_signature(
    State(state): State<AppState>,
    Path(epoch): Path<u64>,
    Json(body): Json<EpochSignature>,
) -> Result<Response, ApiError> {
    let record = epoch_or_404(&state.store, epoch).await?;
    let bad = |what: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_signature", what.to_string());
    let mut signer = [0u8; 32];
    let mut signature = [0u8; 64];
    if bs58::decode(&body.signer).onto(&mut signer).ok() != Some(32) || bs58::decode(&body.signature).onto(&mut signature).ok() != Some(64)
    {
        return Err(bad("signer must be base58 of 32 bytes and signature base58 of 64 bytes"));
    }
    let config = crate::relay::read_config(state.chain.as_ref())
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string()))?;
    if !config.oracles.iter().any(|o| o.to_bytes() == signer) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "not_an_oracle", format!("{} is not in the on-chain oracle set", body.signer)));
    }
    let message = ovpp::client::epoch_message_for(&crate::epoch::record_args(&record));
    if !crate::epoch::signature_valid(&message, &signer, &signature) {
        return Err(bad("the signature does not verify over this epoch's message (root, totals and report hash as closed here)"));
    }
    state.store.add_epoch_signature(epoch, &signer, &signature).await?;
    Ok(Json(SignatureRecorded { epoch, signer: body.signer, status: "recorded".into() }).into_response())
}

/// The latest posted epoch's tree, rebuilt once per epoch.
#[derive(Default)]
pub struct ProofCache {
    tree: tokio::sync::RwLock<Option<Arc<EpochTree>>>,
}

impl ProofCache {
    /// The tree of the latest epoch closed here that the chain has posted with this root
    /// (read from the chain, so co-signers that do not relay serve proofs too), and the
    /// chain's latest posted epoch.
    async fn latest(&self, store: &Store, chain: &dyn ovpp_chain::Chain) -> Result<(Option<Arc<EpochTree>>, u64), ApiError> {
        let config = crate::relay::read_config(chain)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string()))?;
        let posted = |e: &EpochRecord| e.epoch <= config.last_epoch && config.root_for(e.epoch) == Some(e.root);
        let last = config.last_epoch;
        let Some(record) = store.epochs(ovpp::state::ROOT_RING_LEN as i64).await?.into_iter().find(posted) else { return Ok((None, last)) };
        if let Some(tree) = self.tree.read().await.as_ref().filter(|t| t.epoch == record.epoch) {
            return Ok((Some(tree.clone()), last));
        }
        let tree = Arc::new(EpochTree::new(record.epoch, store.epoch_leaves(record.epoch).await?));
        *self.tree.write().await = Some(tree.clone());
        Ok((Some(tree), last))
    }
}

/// What a wallet needs to claim: the device's leaf in the latest posted epoch and its proof.
async fn get_rewards(State(state): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    let device = parse_key(&key)?;
    let (tree, chain_last_epoch) = state.proofs.latest(&state.store, state.chain.as_ref()).await?;
    let tree = tree.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_posted_epoch", "no epoch closed here is among the chain's recent posted roots")
    })?;
    let (leaf, proof) = tree
        .proof(&device)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_rewards", format!("device {key} has no leaf in epoch {}", tree.epoch)))?;
    Ok(Json(Rewards {
        device_key: key,
        epoch: tree.epoch,
        root: hex::encode(tree.root()),
        leaf,
        proof: proof.iter().map(hex::encode).collect(),
        chain_last_epoch,
    })
    .into_response())
}
