//! The weather input over HTTP: grid operators put a region's hourly temperatures; anyone
//! reads them (weather is not private). The regression baseline measures with them.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{bearer_token, is_grid_operator, unauthorized};
use super::{json_body, ApiError, AppState};
use ovpp_wire::dispatch::weather::{check_region, TemperatureSeries, MAX_HOURS};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/regions/{region}/temperatures", get(get_temperatures).put(put_temperatures))
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_temperatures", e.to_string())
}

/// Stores (or replaces) hours of the region's temperatures: `{"hours": [{"start", "celsius"}]}`.
async fn put_temperatures(
    State(state): State<AppState>,
    Path(region): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if !is_grid_operator(&state.dispatch.settings.grid_tokens, bearer_token(&headers)) {
        return Err(unauthorized("temperatures are a grid operator's input: send Authorization: Bearer <grid token>"));
    }
    check_region(&region).map_err(invalid)?;
    let series: TemperatureSeries = json_body(&headers, &body)?;
    series.validate().map_err(invalid)?;
    state.store.put_temperatures(&region, &series.hours).await?;
    Ok(Json(serde_json::json!({"region": region, "stored": series.hours.len()})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: i64,
    to: i64,
}

/// The region's hours starting in `[from, to)` (at most [`MAX_HOURS`]).
async fn get_temperatures(
    State(state): State<AppState>,
    Path(region): Path<String>,
    Query(range): Query<Range>,
) -> Result<Response, ApiError> {
    check_region(&region).map_err(invalid)?;
    if range.to.checked_sub(range.from).is_none_or(|span| span <= 0 || span / 3600 > MAX_HOURS as i64) {
        return Err(invalid(format!("from < to, at most {MAX_HOURS} hours apart")));
    }
    let hours = state.store.temperatures(&region, range.from, range.to).await?;
    Ok(Json(TemperatureSeries { hours }).into_response())
}
