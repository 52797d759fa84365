//! `/subscriptions`: webhooks on programs, events, reports, subscriptions, VENs and
//! resources ([`super::notify`] delivers them). Business logic sees every subscription; a
//! VEN its own.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{Principal, Require, Scope};
use super::query::Search;
use super::{check_name, invalid, not_found, object_body, without_provisioned};
use crate::dispatch::DispatchError;
use crate::openadr::objects::{Filter, Kind, Object};
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;
use ovpp_wire::openadr::{WireSubscription, OBJECT_TYPES, OPERATIONS};

/// Bounds on what one client may ask to be notified of (each notification is work).
const MAX_OPERATIONS: usize = 10;
const MAX_PER_CLIENT: usize = 100;

async fn check(state: &AppState, s: &WireSubscription) -> Result<serde_json::Value, ApiError> {
    check_name("clientName", &s.client_name)?;
    // From the database: the program may have been created by another process a moment ago.
    if state.store.program(&s.program_id).await.map_err(DispatchError::from)?.is_none() {
        return Err(not_found("unknown_program", "program", &s.program_id));
    }
    if s.object_operations.is_empty() || s.object_operations.len() > MAX_OPERATIONS {
        return Err(invalid("subscription", format!("objectOperations: 1 to {MAX_OPERATIONS}")));
    }
    for op in &s.object_operations {
        if let Some(o) = op.objects.iter().find(|o| !OBJECT_TYPES.contains(&o.as_str())) {
            return Err(invalid("subscription", format!("object type {o:?} (one of {})", OBJECT_TYPES.join(", "))));
        }
        if let Some(o) = op.operations.iter().find(|o| !OPERATIONS.contains(&o.as_str())) {
            return Err(invalid("subscription", format!("operation {o:?} (one of {})", OPERATIONS.join(", "))));
        }
        match reqwest::Url::parse(&op.callback_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => return Err(invalid("subscription", format!("callbackUrl {:?} is not an http(s) URL", op.callback_url))),
        }
    }
    serde_json::to_value(s).map(without_provisioned).map_err(|e| invalid("subscription", e))
}

pub async fn search(State(state): State<AppState>, principal: Principal, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let search = Search::parse(raw.as_deref(), &["programID", "clientName", "targetType", "targetValues", "objects", "skip", "limit"])?;
    let filter = Filter {
        owner: (!principal.is_business()).then_some(principal.client.as_str()),
        name: search.client_name.as_deref(),
        program_id: search.program_id.as_deref(),
        ..Filter::default()
    };
    let all = state.store.objects(Kind::Subscription, &filter).await.map_err(DispatchError::from)?;
    let matching = all.iter().map(Object::to_json).filter(|s| search.targets_match(s)).filter(|s| {
        search.objects.is_empty()
            || s["objectOperations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|op| op["objects"].as_array().into_iter().flatten().any(|o| search.objects.iter().any(|w| o.as_str() == Some(w))))
    });
    Ok(Json(search.page(matching)).into_response())
}

pub async fn create(State(state): State<AppState>, principal: Principal, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    principal.require(Scope::WriteSubscriptions)?;
    let subscription: WireSubscription = object_body(&headers, &body)?;
    let body = check(&state, &subscription).await?;
    let theirs = Filter { owner: Some(principal.client.as_str()), ..Filter::default() };
    if state.store.objects(Kind::Subscription, &theirs).await.map_err(DispatchError::from)?.len() >= MAX_PER_CLIENT {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_subscriptions",
            format!("a client has at most {MAX_PER_CLIENT} subscriptions: delete one first"),
        ));
    }
    let now = unix_now();
    let object = Object {
        id: Object::new_id(Kind::Subscription),
        kind: Kind::Subscription,
        owner: principal.client.clone(),
        parent: None,
        name: subscription.client_name.clone(),
        program_id: Some(subscription.program_id.clone()),
        event_id: None,
        body,
        created: now,
        modified: now,
    };
    super::save(&state, &object, "POST").await?;
    Ok((StatusCode::CREATED, Json(object.to_json())).into_response())
}

pub async fn read(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    Ok(Json(super::find(&state, &principal, Kind::Subscription, &id).await?.to_json()).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteSubscriptions)?;
    let mut object = super::find(&state, &principal, Kind::Subscription, &id).await?;
    let subscription: WireSubscription = object_body(&headers, &body)?;
    object.body = check(&state, &subscription).await?;
    object.name = subscription.client_name;
    object.program_id = Some(subscription.program_id);
    object.modified = unix_now();
    super::save(&state, &object, "PUT").await?;
    Ok(Json(object.to_json()).into_response())
}

pub async fn delete(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::WriteSubscriptions)?;
    let object = super::find(&state, &principal, Kind::Subscription, &id).await?;
    super::remove(&state, object).await
}
