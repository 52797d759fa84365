//! Signed HTTP requests. A request signed with an ed25519 key (a device key, or an owner's
//! Solana wallet) carries
//!
//! ```text
//! Authorization: OVPP-Ed25519 <signer, base58> <unix seconds> <signature, base58>
//! ```
//!
//! the signature being over [`request_message`]: the domain, the method, the path with its
//! query, the time and the body's sha256, so it cannot be moved to another request. It is
//! valid for [`MAX_REQUEST_SKEW_SECS`] either side of the oracle's clock (a replay inside
//! that window can only repeat the same read).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub const REQUEST_DOMAIN: &[u8] = b"OVPP-REQUEST-V1";
pub const SCHEME: &str = "OVPP-Ed25519";
pub const MAX_REQUEST_SKEW_SECS: i64 = 60;

/// The bytes a caller signs: `domain \n METHOD \n path?query \n unix seconds \n hex(sha256(body))`.
pub fn request_message(method: &str, path_and_query: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(body));
    [REQUEST_DOMAIN, method.as_bytes(), path_and_query.as_bytes(), timestamp.to_string().as_bytes(), digest.as_bytes()].join(&b'\n')
}

/// The `Authorization` value for a request signed by `key` at `timestamp` (for clients).
pub fn authorization(key: &SigningKey, method: &str, path_and_query: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = key.sign(&request_message(method, path_and_query, timestamp, body));
    format!(
        "{SCHEME} {} {timestamp} {}",
        bs58::encode(key.verifying_key().as_bytes()).into_string(),
        bs58::encode(signature.to_bytes()).into_string()
    )
}

/// Why a signed request's `Authorization` does not prove its signer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("unknown authorization scheme")]
    Scheme,
    #[error("three fields expected")]
    Fields,
    #[error("signer must be base58 of 32 bytes and signature base58 of 64 bytes")]
    Encoding,
    #[error("the time must be unix seconds")]
    Time,
    #[error("the signed time {signed} is more than {MAX_REQUEST_SKEW_SECS} s from the oracle's {now}")]
    Stale { signed: i64, now: i64 },
    #[error("the signer is not an ed25519 public key")]
    Signer,
    #[error("the signature does not verify over this request")]
    Signature,
}

/// The signer of a request whose `Authorization` header value is `value`, checked against
/// the request and the verifier's clock `now`.
pub fn verify(value: &str, method: &str, path_and_query: &str, body: &[u8], now: i64) -> Result<[u8; 32], AuthError> {
    let rest = value.strip_prefix(SCHEME).and_then(|r| r.strip_prefix(' ')).ok_or(AuthError::Scheme)?;
    let [signer, timestamp, signature] = rest.split(' ').collect::<Vec<_>>()[..] else { return Err(AuthError::Fields) };
    let mut key = [0u8; 32];
    let mut sig = [0u8; 64];
    if bs58::decode(signer).onto(&mut key).ok() != Some(32) || bs58::decode(signature).onto(&mut sig).ok() != Some(64) {
        return Err(AuthError::Encoding);
    }
    let timestamp: i64 = timestamp.parse().map_err(|_| AuthError::Time)?;
    if timestamp.abs_diff(now) > MAX_REQUEST_SKEW_SECS as u64 {
        return Err(AuthError::Stale { signed: timestamp, now });
    }
    let verifying = VerifyingKey::from_bytes(&key).map_err(|_| AuthError::Signer)?;
    verifying
        .verify_strict(&request_message(method, path_and_query, timestamp, body), &Signature::from_bytes(&sig))
        .map_err(|_| AuthError::Signature)?;
    Ok(key)
}
