//! OpenADR 3 access over HTTP: the caller of a VTN request ([`Principal`], from a grid
//! operator's static token or an access token of `crate::openadr::clients`), what it may do,
//! and the token endpoint (`POST /openadr3/auth/token`, RFC 6749 §4.4: the client's id and
//! secret in the form body or HTTP Basic).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

use crate::openadr::clients::{mint, verify, SCOPES, TOKEN_SECS};
pub use crate::openadr::clients::{Principal, Scope};
use crate::server::auth::{bearer_token, constant_time_eq, is_grid_operator};
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;

/// 403 unless the caller's token carries the scope.
pub trait Require {
    fn require(&self, scope: Scope) -> Result<(), ApiError>;
}

impl Require for Principal {
    fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this needs the scope {} (client {} has a {:?} role)", SCOPES[scope as usize], self.client, self.role),
        ))
    }
}

/// The caller of a VTN request: a grid operator's static token, or an access token from
/// `/auth/token`. Anything else is refused (401).
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <token>`: an access token from POST /openadr3/auth/token, or a grid operator token",
            )
        })?;
        if is_grid_operator(&state.dispatch.settings.grid_tokens, Some(token)) {
            return Ok(Principal::grid_operator());
        }
        verify(&state.openadr.clients, token, unix_now()).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is unknown, forged or expired: fetch a new one")
        })
    }
}

/// RFC 6749 §5.1 / §5.2 answers of the token endpoint.
#[derive(Serialize)]
struct TokenAnswer {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    /// Only when the client asked for scopes (then exactly those); otherwise its role's.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn auth_error(status: StatusCode, error: &'static str, description: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description.into()});
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"openadr3\""));
    }
    response
}

/// `POST /openadr3/auth/token`: `grant_type=client_credentials`, the client's id and secret
/// in the form body or HTTP Basic, an optional `scope` (a subset of the role's).
pub async fn token(state: axum::extract::State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        let mut values = form.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (v, None) => Ok(v),
            _ => Err(name.to_string()),
        }
    };
    let (grant, id, secret, scope) = match (field("grant_type"), field("client_id"), field("client_secret"), field("scope")) {
        (Ok(g), Ok(i), Ok(s), Ok(sc)) => (g, i, s, sc),
        _ => return auth_error(StatusCode::BAD_REQUEST, "invalid_request", "a parameter is repeated"),
    };
    match grant {
        Some("client_credentials") => {}
        Some(other) => {
            return auth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", format!("grant_type {other:?}: only client_credentials"))
        }
        None => {
            return auth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type=client_credentials is missing (form-encoded body)")
        }
    }
    let basic = basic_credentials(&headers);
    let (id, secret) = match (basic, id, secret) {
        (Some((i, s)), _, _) => (i, s),
        (None, Some(i), Some(s)) => (i.to_string(), s.to_string()),
        _ => return auth_error(StatusCode::BAD_REQUEST, "invalid_request", "send client_id and client_secret (form body or HTTP Basic)"),
    };
    let client = state.openadr.clients.iter().find(|c| c.id == id && constant_time_eq(c.secret.as_bytes(), secret.as_bytes()));
    let Some(client) = client else {
        return auth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client id or wrong secret");
    };
    let allowed = client.role.scopes();
    let requested = scope.filter(|s| !s.trim().is_empty());
    let scopes = match requested {
        None => allowed,
        Some(requested) => {
            let mut bits = 0u8;
            for name in requested.split_whitespace() {
                match SCOPES.iter().position(|s| *s == name) {
                    Some(i) if allowed & (1 << i) != 0 => bits |= 1 << i,
                    _ => {
                        return auth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            format!("scope {name:?} is not granted to a {:?} client", client.role),
                        )
                    }
                }
            }
            bits
        }
    };
    let scope =
        requested.map(|_| SCOPES.iter().enumerate().filter(|(i, _)| scopes & (1 << i) != 0).map(|(_, s)| *s).collect::<Vec<_>>().join(" "));
    let answer =
        TokenAnswer { access_token: mint(client, scopes, unix_now() + TOKEN_SECS), token_type: "Bearer", expires_in: TOKEN_SECS, scope };
    let mut response = Json(answer).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}
