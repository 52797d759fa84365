//! The OpenADR 3.0.1 VTN under `/openadr3` ([`routes`]): programs and events (planned and
//! dispatched by `crate::dispatch`), reports (posted by VENs, and the oracle's own
//! measurement of each event), subscriptions with webhook notifications, VENs and their
//! resources, OAuth2 client credentials ([`auth`]), the spec's searches and paging
//! ([`query`]) and its `problem` errors. What is not HTTP (clients and tokens, stored
//! objects, notifications, the VEN) is `crate::openadr`. `DISPATCHING.md` has the
//! conformance table.

pub mod auth;
mod events;
mod programs;
pub mod query;
mod reports;
mod subscriptions;
mod vens;

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::openadr::{notify, objects};
use crate::server::{ApiError, AppState};

/// Largest OpenADR request body: objects are small; a large body is an attack on memory
/// (subscriptions and reports are kept).
const MAX_OBJECT_BYTES: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    let vtn = Router::new()
        .route("/auth/token", post(auth::token))
        .route("/programs", get(programs::search).post(programs::create))
        .route("/programs/{id}", get(programs::read).put(programs::update).delete(programs::delete))
        .route("/events", get(events::search).post(events::create))
        .route("/events/{id}", get(events::read).put(events::update).delete(events::delete))
        .route("/reports", get(reports::search).post(reports::create))
        .route("/reports/{id}", get(reports::read).put(reports::update).delete(reports::delete))
        .route("/subscriptions", get(subscriptions::search).post(subscriptions::create))
        .route("/subscriptions/{id}", get(subscriptions::read).put(subscriptions::update).delete(subscriptions::delete))
        .route("/vens", get(vens::search).post(vens::create))
        .route("/vens/{id}", get(vens::read).put(vens::update).delete(vens::delete))
        .route("/vens/{id}/resources", get(vens::search_resources).post(vens::create_resource))
        .route("/vens/{id}/resources/{resource}", get(vens::read_resource).put(vens::update_resource).delete(vens::delete_resource))
        .fallback(crate::server::unknown_route)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_OBJECT_BYTES));
    // Outside the nest, so that error messages name the whole path.
    Router::new().nest("/openadr3", vtn).layer(axum::middleware::from_fn(problems))
}

/// Every refusal under `/openadr3` is the spec's `problem` (RFC 7807): `type` names the
/// stable error code (`urn:ovpp:problem:<code>`), `title` the HTTP status, `detail` what to
/// do. The token endpoint keeps RFC 6749's error body, as the spec says.
async fn problems(request: Request, next: Next) -> Response {
    let mut response = crate::server::json_errors(request, next).await;
    let Some(error) = response.extensions_mut().remove::<ovpp_wire::http::ErrorBody>() else { return response };
    let status = response.status();
    let problem = json!({
        "type": format!("urn:ovpp:problem:{}", error.error.code),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": error.error.message,
    });
    // Same status and headers (`Allow`, `WWW-Authenticate`), the problem as the body.
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(problem.to_string()))
}

/// An OpenADR object in a request body: JSON, with `null` fields dropped first (the spec's
/// optional fields are "nullable, default null", and clients write every unset one as
/// `null`; dropped, they are served as absent instead of echoed).
fn object_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = crate::server::json_body(headers, body)?;
    strip_nulls(&mut value);
    serde_json::from_value(value).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", format!("JSON body: {e}")))
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// An object's body as posted, without what the VTN provisions (ignored on input).
fn without_provisioned(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        for field in ["id", "objectType", "createdDateTime", "modificationDateTime", "venID"] {
            map.remove(field);
        }
    }
    body
}

fn not_found(code: &'static str, what: &str, id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, format!("no {what} {id}"))
}

/// 400 `invalid_object`: the body does not satisfy the spec's schema for the object.
fn invalid(what: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_object", format!("{what}: {message}"))
}

/// The spec's `objectID`: 1-128 characters of A-Z a-z 0-9 _ -.
fn is_object_id(text: &str) -> bool {
    (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A name field of 1-128 characters (`clientName`, `venName`, `resourceName`).
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if (1..=128).contains(&name.chars().count()) {
        Ok(())
    } else {
        Err(invalid(what, "must be 1 to 128 characters"))
    }
}

/// A write the table refused: 409 for a name already taken, 503 when storage fails.
fn write_error(e: objects::WriteError) -> ApiError {
    match e {
        objects::WriteError::NameTaken => ApiError::new(StatusCode::CONFLICT, "name_taken", "the name is already taken"),
        objects::WriteError::Gone => ApiError::new(StatusCode::NOT_FOUND, "not_found", "the object was deleted meanwhile"),
        objects::WriteError::Store(e) => crate::dispatch::DispatchError::from(e).into(),
    }
}

/// A stored object the caller may see (404 otherwise: others' objects are not disclosed).
async fn find(state: &AppState, principal: &auth::Principal, kind: objects::Kind, id: &str) -> Result<objects::Object, ApiError> {
    let object = state.store.object(kind, id).await.map_err(crate::dispatch::DispatchError::from)?;
    let code = match kind {
        objects::Kind::Report => "unknown_report",
        objects::Kind::Subscription => "unknown_subscription",
        objects::Kind::Ven => "unknown_ven",
        objects::Kind::Resource => "unknown_resource",
    };
    object.filter(|o| principal.may_see(&o.owner)).ok_or_else(|| not_found(code, &kind.name().to_lowercase(), id))
}

/// Stores a new (`POST`) or changed (`PUT`) object, then notifies its subscribers.
async fn save(state: &AppState, object: &objects::Object, operation: &'static str) -> Result<(), ApiError> {
    match operation {
        "POST" => state.store.insert_objects(std::slice::from_ref(object)).await,
        _ => state.store.update_object(object).await,
    }
    .map_err(write_error)?;
    state.openadr.notifier.notify(notify::Change::of(object, operation));
    Ok(())
}

/// Stores new objects together (all or none), then notifies each.
async fn create_all(state: &AppState, objects: &[objects::Object]) -> Result<(), ApiError> {
    state.store.insert_objects(objects).await.map_err(write_error)?;
    for object in objects {
        state.openadr.notifier.notify(notify::Change::of(object, "POST"));
    }
    Ok(())
}

/// Deletes an object (and a VEN's resources), notifies, and answers the deleted object.
async fn remove(state: &AppState, object: objects::Object) -> Result<Response, ApiError> {
    state.store.delete_object(&object.id).await.map_err(crate::dispatch::DispatchError::from)?;
    state.openadr.notifier.notify(notify::Change::of(&object, "DELETE"));
    Ok(Json(object.to_json()).into_response())
}
