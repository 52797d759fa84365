//! `/programs`: a program's `programName` is its id (an objectID); the `baseline` field is
//! an OVPP extension (which customer baseline measures its events).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{Principal, Require, Scope};
use super::query::Search;
use super::{not_found, object_body};
use crate::dispatch::records::ProgramRow;
use crate::openadr::notify::Change;
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::event::{rfc3339, WireProgram};

fn to_json(id: &str, program: &WireProgram, created: i64, modified: i64) -> Value {
    let mut v = serde_json::to_value(program).unwrap_or_default();
    v["id"] = json!(id);
    v["objectType"] = json!("PROGRAM");
    v["createdDateTime"] = json!(rfc3339(created));
    v["modificationDateTime"] = json!(rfc3339(modified));
    v
}

fn row_json(row: &ProgramRow) -> Value {
    to_json(&row.id, &row.program, row.created, row.modified)
}

async fn find(state: &AppState, id: &str) -> Result<ProgramRow, ApiError> {
    let program = state.store.program(id).await.map_err(crate::dispatch::DispatchError::from)?;
    program.ok_or_else(|| not_found("unknown_program", "program", id))
}

fn notify(state: &AppState, operation: &'static str, object: Value) {
    let program_id = object["id"].as_str().map(str::to_string);
    state.openadr.notifier.notify(Change { object_type: "PROGRAM", operation, object, program_id, readable_by: None });
}

pub async fn search(State(state): State<AppState>, principal: Principal, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let search = Search::parse(raw.as_deref(), &["targetType", "targetValues", "skip", "limit"])?;
    let programs = state.store.programs().await.map_err(crate::dispatch::DispatchError::from)?;
    let matching = programs.iter().map(row_json).filter(|p| search.targets_match(p));
    Ok(Json(search.page(matching)).into_response())
}

pub async fn create(State(state): State<AppState>, principal: Principal, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    principal.require(Scope::WritePrograms)?;
    let now = unix_now();
    let (id, program) = state.dispatch.create_program(object_body(&headers, &body)?, now).await?;
    let object = to_json(&id, &program, now, now);
    notify(&state, "POST", object.clone());
    Ok((StatusCode::CREATED, Json(object)).into_response())
}

pub async fn read(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    Ok(Json(row_json(&find(&state, &id).await?)).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WritePrograms)?;
    let created = find(&state, &id).await?.created;
    let now = unix_now();
    let program = state.dispatch.update_program(&id, object_body(&headers, &body)?, now).await?;
    let object = to_json(&id, &program, created, now);
    notify(&state, "PUT", object.clone());
    Ok(Json(object).into_response())
}

/// Deletes a program that has no events (an event is kept for its measurement: cancel it).
pub async fn delete(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::WritePrograms)?;
    let object = row_json(&find(&state, &id).await?);
    state.dispatch.delete_program(&id).await?;
    notify(&state, "DELETE", object.clone());
    Ok(Json(object).into_response())
}
