//! Who is asking: a request signed with an ed25519 key (a device key, or an owner's Solana
//! wallet), or a grid operator's bearer token. A signed request carries
//!
//! ```text
//! Authorization: OVPP-Ed25519 <signer, base58> <unix seconds> <signature, base58>
//! ```
//!
//! the signature being over `request_message`: the domain, the method, the path with its
//! query, the time and the body's sha256, so it cannot be moved to another request. It is
//! valid for `MAX_REQUEST_SKEW_SECS` either side of the oracle's clock (a replay inside that
//! window can only repeat the same read).

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};

pub const REQUEST_DOMAIN: &[u8] = b"OVPP-REQUEST-V1";
pub const SCHEME: &str = "OVPP-Ed25519";
pub const MAX_REQUEST_SKEW_SECS: i64 = 60;

/// The token of an `Authorization: Bearer <token>` header, if that is what it holds.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// 401 `bad_request_signature`: the request does not prove what the route needs.
pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_request_signature", message)
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

/// The bytes a caller signs: `domain \n METHOD \n path?query \n unix seconds \n hex(sha256(body))`.
pub fn request_message(method: &Method, path_and_query: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(body));
    [REQUEST_DOMAIN, method.as_str().as_bytes(), path_and_query.as_bytes(), timestamp.to_string().as_bytes(), digest.as_bytes()]
        .join(&b'\n')
}

/// The `Authorization` value for a request signed by `key` at `timestamp` (for clients).
pub fn authorization(key: &SigningKey, method: &Method, path_and_query: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = key.sign(&request_message(method, path_and_query, timestamp, body));
    format!(
        "{SCHEME} {} {timestamp} {}",
        bs58::encode(key.verifying_key().as_bytes()).into_string(),
        bs58::encode(signature.to_bytes()).into_string()
    )
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
    let Some(rest) = value.strip_prefix(SCHEME).and_then(|r| r.strip_prefix(' ')) else {
        return Err(bad("unknown authorization scheme"));
    };
    let [signer, timestamp, signature] = rest.split(' ').collect::<Vec<_>>()[..] else {
        return Err(bad("three fields expected"));
    };
    let mut key = [0u8; 32];
    let mut sig = [0u8; 64];
    if bs58::decode(signer).onto(&mut key).ok() != Some(32) || bs58::decode(signature).onto(&mut sig).ok() != Some(64) {
        return Err(bad("signer must be base58 of 32 bytes and signature base58 of 64 bytes"));
    }
    let timestamp: i64 = timestamp.parse().map_err(|_| bad("the time must be unix seconds"))?;
    if timestamp.abs_diff(now) > MAX_REQUEST_SKEW_SECS as u64 {
        return Err(bad(&format!("the signed time {timestamp} is more than {MAX_REQUEST_SKEW_SECS} s from the oracle's {now}")));
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let verifying = VerifyingKey::from_bytes(&key).map_err(|_| bad("the signer is not an ed25519 public key"))?;
    verifying
        .verify_strict(&request_message(method, path, timestamp, body), &Signature::from_bytes(&sig))
        .map_err(|_| bad("the signature does not verify over this request"))?;
    Ok(Caller::Key(key))
}

/// As an extractor, for requests without a body (reads): the caller, with the configured
/// grid tokens as operators.
impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(&parts.headers, &parts.method, &parts.uri, &[], crate::ingest::unix_now(), |t| state.dispatch.authorized(Some(t)))
    }
}
