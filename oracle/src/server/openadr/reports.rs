//! `/reports`: reports VENs post on events, and the oracle's own measurement of each
//! measured event as a read-only report (`mv-<event id>`, `clientName` `ovpp-oracle`): per
//! device (resource) and event interval its baseline, metered net import and delivery, kWh.
//! Business logic reads every report; a VEN the reports it posted. The measurement names
//! devices, so only business logic reads it.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::auth::{Principal, Require, Scope};
use super::query::Search;
use super::{check_name, invalid, is_object_id, not_found, object_body, without_provisioned};
use crate::dispatch::DispatchError;
use crate::openadr::measurement::{measurement_report, MEASUREMENT_CLIENT, MEASUREMENT_PREFIX};
use crate::openadr::objects::{Filter, Kind, Object};
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;
use ovpp_wire::openadr::WireReport;

/// The measurement reports `search` selects, with their creation time.
async fn measurements(state: &AppState, search: &Search) -> Result<Vec<(i64, Value)>, ApiError> {
    if search.client_name.as_ref().is_some_and(|c| c != MEASUREMENT_CLIENT) {
        return Ok(vec![]);
    }
    let reports = state.store.event_reports(search.event_id.as_deref()).await.map_err(DispatchError::from)?;
    let mut out = Vec::new();
    for (report, measured_at) in reports {
        if search.program_id.as_ref().is_some_and(|p| *p != report.program_id) {
            continue;
        }
        if let Some(event) = state.dispatch.event(&report.event_id).await {
            out.push((measured_at, measurement_report(&report, &event, measured_at)));
        }
    }
    Ok(out)
}

pub async fn search(State(state): State<AppState>, principal: Principal, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let search = Search::parse(raw.as_deref(), &["programID", "eventID", "clientName", "skip", "limit"])?;
    let filter = Filter {
        owner: (!principal.is_business()).then_some(principal.client.as_str()),
        name: search.client_name.as_deref(),
        program_id: search.program_id.as_deref(),
        event_id: search.event_id.as_deref(),
        ..Filter::default()
    };
    let posted = state.store.objects(Kind::Report, &filter).await.map_err(DispatchError::from)?;
    let mut all: Vec<(i64, Value)> = posted.iter().map(|o| (o.created, o.to_json())).collect();
    if principal.is_business() {
        all.extend(measurements(&state, &search).await?);
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1["id"].as_str().cmp(&b.1["id"].as_str())));
    Ok(Json(search.page(all.into_iter().map(|(_, v)| v))).into_response())
}

/// Checks a posted report: its program and event exist and belong together.
async fn check(state: &AppState, report: &WireReport) -> Result<(), ApiError> {
    check_name("clientName", &report.client_name)?;
    for resource in &report.resources {
        check_name("resourceName", &resource.resource_name)?;
    }
    if !is_object_id(&report.program_id) || !is_object_id(&report.event_id) {
        return Err(invalid("report", "programID and eventID are objectIDs (1-128 of A-Z a-z 0-9 _ -)"));
    }
    // From the database: the event may have been created by another process a moment ago.
    let event = state.store.event(&report.event_id).await.map_err(DispatchError::from)?;
    let event = event.ok_or_else(|| not_found("unknown_event", "event", &report.event_id))?;
    if event.program_id != report.program_id {
        return Err(invalid("report", format!("event {} belongs to program {}, not {}", event.id, event.program_id, report.program_id)));
    }
    Ok(())
}

fn report_object(report: &WireReport) -> Result<Value, ApiError> {
    serde_json::to_value(report).map(without_provisioned).map_err(|e| invalid("report", e))
}

pub async fn create(State(state): State<AppState>, principal: Principal, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    principal.require(Scope::WriteReports)?;
    let report: WireReport = object_body(&headers, &body)?;
    check(&state, &report).await?;
    let now = unix_now();
    let object = Object {
        id: Object::new_id(Kind::Report),
        kind: Kind::Report,
        owner: principal.client.clone(),
        parent: None,
        name: report.client_name.clone(),
        program_id: Some(report.program_id.clone()),
        event_id: Some(report.event_id.clone()),
        body: report_object(&report)?,
        created: now,
        modified: now,
    };
    super::save(&state, &object, "POST").await?;
    Ok((StatusCode::CREATED, Json(object.to_json())).into_response())
}

pub async fn read(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    if let Some(event_id) = id.strip_prefix(MEASUREMENT_PREFIX).filter(|_| principal.is_business()) {
        let search = Search { event_id: Some(event_id.to_string()), limit: 1, ..Search::default() };
        if let Some((_, report)) = measurements(&state, &search).await?.pop() {
            return Ok(Json(report).into_response());
        }
    }
    Ok(Json(super::find(&state, &principal, Kind::Report, &id).await?.to_json()).into_response())
}

fn read_only(id: &str) -> Result<(), ApiError> {
    if id.starts_with(MEASUREMENT_PREFIX) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "read_only", "the oracle's measurement reports cannot be changed"));
    }
    Ok(())
}

pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteReports)?;
    read_only(&id)?;
    let mut object = super::find(&state, &principal, Kind::Report, &id).await?;
    let report: WireReport = object_body(&headers, &body)?;
    check(&state, &report).await?;
    object.name = report.client_name.clone();
    object.program_id = Some(report.program_id.clone());
    object.event_id = Some(report.event_id.clone());
    object.body = report_object(&report)?;
    object.modified = unix_now();
    super::save(&state, &object, "PUT").await?;
    Ok(Json(object.to_json()).into_response())
}

pub async fn delete(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::WriteReports)?;
    read_only(&id)?;
    let object = super::find(&state, &principal, Kind::Report, &id).await?;
    super::remove(&state, object).await
}
