//! Dispatch beyond OpenADR (`openadr` is the VTN): the live events view, the OVPP
//! performance report and the records co-signers re-measure from, and the device side of
//! dispatch: commands, signed acknowledgements and preferences.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{bearer_token, is_grid_operator, unauthorized, Caller};
use super::{json_body, parse_key, ApiError, AppState};
use crate::dispatch::DispatchError;
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::command::{Ack, CommandsQuery, CommandsRequest, Preferences};
use ovpp_wire::dispatch::view::{AckAnswer, AckBody, CommandsAnswer};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(get_live_events))
        .route("/v1/events/records", get(get_records))
        .route("/v1/events/{id}/report", get(get_report))
        .route("/v1/devices/{key}/commands", get(get_commands))
        .route("/v1/commands", post(post_commands_query))
        .route("/v1/devices/{key}/acks", post(post_ack))
        .route("/v1/devices/{key}/preferences", put(put_preferences))
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        let (status, code) = match &e {
            DispatchError::Event(inner) => match inner.code() {
                "conflicting_event" | "event_final" => (StatusCode::CONFLICT, inner.code()),
                code => (StatusCode::BAD_REQUEST, code),
            },
            DispatchError::UnknownEvent(_) => (StatusCode::NOT_FOUND, "unknown_event"),
            DispatchError::ProgramExists(_) => (StatusCode::CONFLICT, "program_exists"),
            DispatchError::UnknownProgram(_) => (StatusCode::NOT_FOUND, "unknown_program"),
            DispatchError::ProgramInUse(_) => (StatusCode::CONFLICT, "program_in_use"),
            DispatchError::InvalidProgram(_) => (StatusCode::BAD_REQUEST, "invalid_program"),
            DispatchError::UnknownCommand(_) => (StatusCode::NOT_FOUND, "unknown_command"),
            DispatchError::BadSignature => (StatusCode::BAD_REQUEST, "bad_signature"),
            DispatchError::UnknownDevice => (StatusCode::NOT_FOUND, "unknown_device"),
            DispatchError::DeviceNotActive(_) => (StatusCode::CONFLICT, "device_not_active"),
            DispatchError::StalePreferences(_) => (StatusCode::CONFLICT, "stale_preferences"),
            DispatchError::InvalidRecord(_) => (StatusCode::BAD_REQUEST, "invalid_record"),
            DispatchError::UnknownBaseline(..) => (StatusCode::CONFLICT, "unknown_baseline"),
            DispatchError::Measuring(..) => (StatusCode::SERVICE_UNAVAILABLE, "measurement_failed"),
            DispatchError::InvalidPreferences(_) => (StatusCode::BAD_REQUEST, "invalid_preferences"),
            DispatchError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The OVPP performance report of a measured event (`DISPATCHING.md`, report). Grid
/// operators and the oracle set see every device's delivery; everyone else the event's
/// totals and intervals (a device's delivery tells whether its household was at home). The
/// same measurement in OpenADR form is `/openadr3/reports/mv-{id}`.
async fn get_report(State(state): State<AppState>, Path(id): Path<String>, caller: Caller) -> Result<Response, ApiError> {
    let trusted = operator_or_oracle(&state, caller).await?;
    let mut report = state.dispatch.report(&id).await.map_err(DispatchError::from)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_measured",
            format!("event {id} is unknown or not measured yet (measured after its end plus the measurement delay)"),
        )
    })?;
    if !trusted {
        report.devices.clear();
    }
    Ok(Json(report).into_response())
}

/// A grid operator (token), or a request signed by a member of the on-chain oracle set.
async fn operator_or_oracle(state: &AppState, caller: Caller) -> Result<bool, ApiError> {
    match caller {
        Caller::Operator => Ok(true),
        Caller::Key(k) => {
            let config = crate::relay::read_config(state.chain.as_ref())
                .await
                .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string()))?;
            Ok(config.oracles.iter().any(|o| o.to_bytes() == k))
        }
        Caller::Anonymous => Ok(false),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    credited_from: i64,
    credited_to: i64,
}

/// Co-signers: the measured events credited in `[credited_from, credited_to)`, with what it
/// takes to re-measure them.
async fn get_records(State(state): State<AppState>, Query(q): Query<RecordsQuery>, caller: Caller) -> Result<Response, ApiError> {
    if !operator_or_oracle(&state, caller).await? {
        return Err(unauthorized(
            "event records (every command to every device) are for the oracle set and grid operators: sign the request with an oracle key",
        ));
    }
    Ok(Json(state.dispatch.records_credited(q.credited_from, q.credited_to).await?).into_response())
}

async fn get_live_events(State(state): State<AppState>) -> Response {
    Json(state.dispatch.view(unix_now()).await).into_response()
}

/// A device's commands, to the device itself, its owner's wallet, or a grid operator.
async fn get_commands(State(state): State<AppState>, Path(key): Path<String>, caller: Caller) -> Result<Response, ApiError> {
    let device = parse_key(&key)?;
    let now = unix_now();
    let owner = state.registry.get(&device).await.map(|d| d.owner.to_bytes());
    if !caller.speaks_for_device(&device, owner.as_ref()) {
        return Err(unauthorized(format!("a device's commands are for the device, its owner or a grid operator: sign the request with the key of {key} or its owner's wallet (README: access)")));
    }
    Ok(Json(state.dispatch.commands_for(&device, now).await).into_response())
}

/// Gateways: the commands of many devices in one request (at most 4096), each device's
/// signature proving the gateway holds its key (or a grid operator's token).
async fn post_commands_query(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let query: CommandsRequest = json_body(&headers, &body)?;
    if query.devices.len() > 4096 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "too_many_devices", "at most 4096 devices per request"));
    }
    let now = unix_now();
    let keys = query.devices.iter().map(|t| parse_key(t)).collect::<Result<Vec<_>, _>>()?;
    if !is_grid_operator(&state.dispatch.settings.grid_tokens, bearer_token(&headers)) {
        check_device_signatures(&state, &query, &keys, now).await?;
    }
    let answers = state.dispatch.commands_for_many(&keys, now).await;
    Ok(Json(CommandsAnswer { now, devices: query.devices.iter().cloned().zip(answers).collect() }).into_response())
}

async fn check_device_signatures(state: &AppState, request: &CommandsRequest, keys: &[[u8; 32]], now: i64) -> Result<(), ApiError> {
    if request.signatures.len() != keys.len() {
        return Err(unauthorized(format!(
            "{} devices but {} signatures: each device signs the query (CommandsQuery, README: access)",
            keys.len(),
            request.signatures.len()
        )));
    }
    if request.signed_at.abs_diff(now) > ovpp_wire::auth::MAX_REQUEST_SKEW_SECS as u64 {
        return Err(unauthorized(format!("signed_at {} is more than a minute from the oracle's clock ({now})", request.signed_at)));
    }
    let signatures = request.signatures.iter().map(|s| parse_signature(s)).collect::<Result<Vec<_>, _>>()?;
    let verifying = state.registry.verifying_keys(keys).await;
    if let Some(i) = verifying.iter().position(Option::is_none) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_device", format!("device {} is not registered", request.devices[i])));
    }
    let query = CommandsQuery { signed_at: request.signed_at, devices: keys.to_vec() };
    let checked = tokio::task::spawn_blocking(move || {
        let keys: Vec<_> = verifying.into_iter().flatten().collect();
        query.first_unverified(&keys, &signatures)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))?;
    match checked {
        Some(i) => Err(unauthorized(format!("the signature of device {} does not verify over this query", request.devices[i]))),
        None => Ok(()),
    }
}

fn parse_signature(text: &str) -> Result<[u8; 64], ApiError> {
    let mut out = [0u8; 64];
    match bs58::decode(text).onto(&mut out) {
        Ok(64) => Ok(out),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", "signature must be base58 of 64 bytes")),
    }
}

async fn post_ack(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let device_key = parse_key(&key)?;
    let body: AckBody = json_body(&headers, &body)?;
    let signature = parse_signature(&body.signature)?;
    if body.reason.as_ref().is_some_and(|r| r.len() > 200) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", "reason is at most 200 bytes"));
    }
    let ack = Ack { device_key, command_id: body.command_id, accept: body.accept };
    state.dispatch.ack(&ack, &signature, unix_now()).await?;
    if let Some(reason) = body.reason.filter(|_| !ack.accept) {
        tracing::info!(device = %key, command = %ack.command_id, reason = %reason, "a device refused its command");
    }
    Ok(Json(AckAnswer { command_id: ack.command_id, accepted: ack.accept }).into_response())
}

#[derive(Deserialize)]
struct PreferencesBody {
    #[serde(flatten)]
    preferences: Preferences,
    signature: String,
}

async fn put_preferences(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let device_key = parse_key(&key)?;
    let body: PreferencesBody = json_body(&headers, &body)?;
    if body.preferences.device_key != device_key {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "device_mismatch", "the body's device_key is not the one in the path"));
    }
    let signature = parse_signature(&body.signature)?;
    state.dispatch.set_preferences(body.preferences.clone(), &signature, unix_now()).await?;
    Ok(Json(body.preferences).into_response())
}
