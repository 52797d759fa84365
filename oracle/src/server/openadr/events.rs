//! `/events`: validated and planned by `crate::dispatch`. Served with the OVPP extensions
//! `status` (pending, active, completed, cancelled) and, on `GET /events/{id}` while it runs,
//! `plan`. `DELETE` cancels: the event stays (cancelled) for its measurement and history.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{Principal, Require, Scope};
use super::object_body;
use super::query::Search;
use crate::dispatch::DispatchError;
use crate::openadr::notify::Change;
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::event::{GridEvent, WireEvent};

fn notify(state: &AppState, operation: &'static str, event: &GridEvent, object: Value) {
    let change = Change { object_type: "EVENT", operation, object, program_id: Some(event.program_id.clone()), readable_by: None };
    state.openadr.notifier.notify(change);
}

/// A cancelled (OpenADR: deleted) event is gone for VENs, which know no `status` and would
/// otherwise go on following it; business logic still sees it, `status: cancelled`.
fn visible(principal: &Principal, event: &GridEvent) -> bool {
    principal.is_business() || !event.cancelled
}

pub async fn search(State(state): State<AppState>, principal: Principal, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let search = Search::parse(raw.as_deref(), &["programID", "targetType", "targetValues", "skip", "limit"])?;
    let now = unix_now();
    let mut events = state.dispatch.events().await;
    events.sort_by_key(|e| (e.created, e.id.clone()));
    let matching = events
        .iter()
        .filter(|e| visible(&principal, e))
        .filter(|e| search.program_id.as_ref().is_none_or(|p| *p == e.program_id))
        .map(|e| e.to_wire(now))
        .filter(|e| search.targets_match(e));
    Ok(Json(search.page(matching)).into_response())
}

pub async fn create(State(state): State<AppState>, principal: Principal, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    principal.require(Scope::WriteEvents)?;
    let wire: WireEvent = object_body(&headers, &body)?;
    let now = unix_now();
    let event = state.dispatch.put_event(&wire, None, now).await?;
    let object = event.to_wire(now);
    notify(&state, "POST", &event, object.clone());
    Ok((StatusCode::CREATED, Json(object)).into_response())
}

pub async fn read(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let event = state.dispatch.event(&id).await.filter(|e| visible(&principal, e));
    let event = event.ok_or_else(|| ApiError::from(DispatchError::UnknownEvent(id.clone())))?;
    let mut body = event.to_wire(unix_now());
    if let Some(plan) = state.dispatch.plan(&id).await {
        body["plan"] = json!(plan);
    }
    Ok(Json(body).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteEvents)?;
    let wire: WireEvent = object_body(&headers, &body)?;
    let now = unix_now();
    let event = state.dispatch.put_event(&wire, Some(&id), now).await?;
    let object = event.to_wire(now);
    notify(&state, "PUT", &event, object.clone());
    Ok(Json(object).into_response())
}

pub async fn delete(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::WriteEvents)?;
    let now = unix_now();
    let event = state.dispatch.cancel_event(&id, now).await?;
    let object = event.to_wire(now);
    notify(&state, "DELETE", &event, object.clone());
    Ok(Json(object).into_response())
}
