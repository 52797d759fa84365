//! `/vens` and `/vens/{id}/resources`: `venName` is unique in the VTN, `resourceName` within
//! its VEN (409 `name_taken`). Business logic sees every VEN; a VEN client the VENs it
//! registered and their resources. Deleting a VEN deletes its resources.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{Principal, Require, Scope};
use super::query::Search;
use super::{check_name, find, invalid, not_found, object_body, without_provisioned};
use crate::dispatch::DispatchError;
use crate::openadr::objects::{Filter, Kind, Object};
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;
use ovpp_wire::openadr::{WireResource, WireVen};

fn body_of<T: serde::Serialize>(what: &str, value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map(without_provisioned).map_err(|e| invalid(what, e))
}

pub async fn search(State(state): State<AppState>, principal: Principal, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let search = Search::parse(raw.as_deref(), &["venName", "targetType", "targetValues", "skip", "limit"])?;
    let filter = Filter {
        owner: (!principal.is_business()).then_some(principal.client.as_str()),
        name: search.ven_name.as_deref(),
        ..Filter::default()
    };
    let vens = state.store.objects(Kind::Ven, &filter).await.map_err(DispatchError::from)?;
    Ok(Json(search.page(vens.iter().map(Object::to_json).filter(|v| search.targets_match(v)))).into_response())
}

fn new_object(kind: Kind, principal: &Principal, parent: Option<String>, name: String, body: serde_json::Value) -> Object {
    let now = unix_now();
    Object {
        id: Object::new_id(kind),
        kind,
        owner: principal.client.clone(),
        parent,
        name,
        program_id: None,
        event_id: None,
        body,
        created: now,
        modified: now,
    }
}

/// Registers a VEN; resources in its body become resource objects of their own.
pub async fn create(State(state): State<AppState>, principal: Principal, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    principal.require(Scope::WriteVens)?;
    let ven: WireVen = object_body(&headers, &body)?;
    check_name("venName", &ven.ven_name)?;
    let resources = ven.resources.as_deref().unwrap_or_default();
    for (i, r) in resources.iter().enumerate() {
        check_name("resourceName", &r.resource_name)?;
        if resources[..i].iter().any(|o| o.resource_name == r.resource_name) {
            return Err(invalid("ven", format!("resource {:?} is given twice", r.resource_name)));
        }
    }
    let object = new_object(Kind::Ven, &principal, None, ven.ven_name.clone(), body_of("ven", &ven)?);
    let mut all = vec![object.clone()];
    for r in resources {
        all.push(new_object(Kind::Resource, &principal, Some(object.id.clone()), r.resource_name.clone(), body_of("resource", r)?));
    }
    super::create_all(&state, &all).await?;
    Ok((StatusCode::CREATED, Json(object.to_json())).into_response())
}

pub async fn read(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    Ok(Json(find(&state, &principal, Kind::Ven, &id).await?.to_json()).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteVens)?;
    let mut object = find(&state, &principal, Kind::Ven, &id).await?;
    let ven: WireVen = object_body(&headers, &body)?;
    check_name("venName", &ven.ven_name)?;
    object.body = body_of("ven", &ven)?;
    object.name = ven.ven_name;
    object.modified = unix_now();
    super::save(&state, &object, "PUT").await?;
    Ok(Json(object.to_json()).into_response())
}

pub async fn delete(State(state): State<AppState>, principal: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    principal.require(Scope::WriteVens)?;
    let object = find(&state, &principal, Kind::Ven, &id).await?;
    super::remove(&state, object).await
}

pub async fn search_resources(
    State(state): State<AppState>,
    principal: Principal,
    Path(ven): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    let search = Search::parse(raw.as_deref(), &["resourceName", "targetType", "targetValues", "skip", "limit"])?;
    let ven = find(&state, &principal, Kind::Ven, &ven).await?;
    let filter = Filter { parent: Some(ven.id.as_str()), name: search.resource_name.as_deref(), ..Filter::default() };
    let resources = state.store.objects(Kind::Resource, &filter).await.map_err(DispatchError::from)?;
    Ok(Json(search.page(resources.iter().map(Object::to_json).filter(|r| search.targets_match(r)))).into_response())
}

pub async fn create_resource(
    State(state): State<AppState>,
    principal: Principal,
    Path(ven): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteVens)?;
    let ven = find(&state, &principal, Kind::Ven, &ven).await?;
    let resource: WireResource = object_body(&headers, &body)?;
    check_name("resourceName", &resource.resource_name)?;
    let mut object = new_object(Kind::Resource, &principal, Some(ven.id), resource.resource_name.clone(), body_of("resource", &resource)?);
    // A resource belongs to whoever owns its VEN, so that VEN's client sees it.
    object.owner = ven.owner;
    super::save(&state, &object, "POST").await?;
    Ok((StatusCode::CREATED, Json(object.to_json())).into_response())
}

/// A resource of `ven` the caller may see.
async fn find_resource(state: &AppState, principal: &Principal, ven: &str, id: &str) -> Result<Object, ApiError> {
    let ven = find(state, principal, Kind::Ven, ven).await?;
    let resource = find(state, principal, Kind::Resource, id).await?;
    if resource.parent.as_deref() != Some(ven.id.as_str()) {
        return Err(not_found("unknown_resource", "resource", id));
    }
    Ok(resource)
}

pub async fn read_resource(
    State(state): State<AppState>,
    principal: Principal,
    Path((ven, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require(Scope::ReadAll)?;
    Ok(Json(find_resource(&state, &principal, &ven, &id).await?.to_json()).into_response())
}

pub async fn update_resource(
    State(state): State<AppState>,
    principal: Principal,
    Path((ven, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteVens)?;
    let mut object = find_resource(&state, &principal, &ven, &id).await?;
    let resource: WireResource = object_body(&headers, &body)?;
    check_name("resourceName", &resource.resource_name)?;
    object.body = body_of("resource", &resource)?;
    object.name = resource.resource_name;
    object.modified = unix_now();
    super::save(&state, &object, "PUT").await?;
    Ok(Json(object.to_json()).into_response())
}

pub async fn delete_resource(
    State(state): State<AppState>,
    principal: Principal,
    Path((ven, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require(Scope::WriteVens)?;
    let object = find_resource(&state, &principal, &ven, &id).await?;
    super::remove(&state, object).await
}
