//! Who is asking: a request signed with an ed25519 key (the format is `ovpp_wire::auth`),
//! or a grid operator's bearer token.

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use ovpp_wire::auth::SCHEME;

use super::{ApiError, AppState};

/// The token of an `Authorization: Bearer <token>` header, if that is what it holds.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// 401 `bad_request_signature`: the request does not prove what the route needs.
pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_request_signature", message)
}

/// Whether `token` is one of the grid operators' bearer tokens (compared in constant time).
pub fn is_grid_operator(tokens: &[String], token: Option<&str>) -> bool {
    token.is_some_and(|t| tokens.iter().any(|g| constant_time_eq(g.as_bytes(), t.as_bytes())))
}

/// Equality that takes the same time wherever the inputs differ (secrets, tokens).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who sent a request, as far as it proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A grid operator (a configured bearer token).
    Operator,
    /// The holder of this ed25519 key.
    Key([u8; 32]),
    Anonymous,
}

impl Caller {
    /// May see a device's private data (readings, commands): a grid operator, the device's
    /// own key, or its owner's wallet.
    pub fn speaks_for_device(&self, device_key: &[u8; 32], owner: Option<&[u8; 32]>) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Key(k) => k == device_key || Some(k) == owner,
            Caller::Anonymous => false,
        }
    }
}

/// The caller of a request; a signature that is present but wrong, stale or malformed is
/// an error (401), not an anonymous request.
pub fn caller(
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    now: i64,
    is_operator: impl Fn(&str) -> bool,
) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Caller::Anonymous) };
    let bad =
        |why: &str| unauthorized(format!("{why}; send `Authorization: {SCHEME} <signer> <unix seconds> <signature>` (README: access)"));
    if let Some(token) = bearer_token(headers) {
        return if is_operator(token) { Ok(Caller::Operator) } else { Err(bad("unknown bearer token")) };
    }
    let value = value.to_str().map_err(|_| bad("the Authorization header is not text"))?;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let key = ovpp_wire::auth::verify(value, method.as_str(), path, body, now).map_err(|e| bad(&e.to_string()))?;
    Ok(Caller::Key(key))
}

/// As an extractor, for requests without a body (reads): the caller, with the configured
/// grid tokens as operators.
impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        let now = ovpp_wire::clock::unix_now();
        // A wallet's sign-in session speaks for its owner.
        if let Some(token) = bearer_token(&parts.headers).filter(|t| t.starts_with(crate::sessions::PREFIX)) {
            return match state.sessions.verify(token, now) {
                Some(owner) => Ok(Caller::Key(owner)),
                None => Err(unauthorized("the sign-in session is invalid or has expired: sign in with the wallet again")),
            };
        }
        caller(&parts.headers, &parts.method, &parts.uri, &[], now, |t| is_grid_operator(&state.dispatch.settings.grid_tokens, Some(t)))
    }
}
