//! OpenADR 3 access: OAuth2 client credentials (`POST /openadr3/auth/token`, RFC 6749 §4.4)
//! for configured clients, each a business-logic client or a VEN, and the grid operators'
//! static bearer tokens (business logic).
//!
//! Access tokens are stateless: `ovpp1.<client id, base64url>.<expiry>.<scopes>.<HMAC>`,
//! the HMAC-SHA256 keyed by the client's secret. Every process configured with the same
//! clients accepts them, and changing a client's secret revokes its tokens.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::server::auth::{bearer_token, is_grid_operator};
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;

/// How long an access token lives.
pub const TOKEN_SECS: i64 = 3600;

/// The scopes of OpenADR 3.0.1, in the order of their bits in a token.
pub const SCOPES: [&str; 6] = ["read_all", "write_programs", "write_events", "write_reports", "write_subscriptions", "write_vens"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    ReadAll = 0,
    WritePrograms = 1,
    WriteEvents = 2,
    WriteReports = 3,
    WriteSubscriptions = 4,
    WriteVens = 5,
}

/// A client's role, as OpenADR 3.0.1 scopes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Business logic (a utility, an aggregator's operator): programs, events, subscriptions, VENs.
    Business,
    /// A VEN: reports, subscriptions, its own VEN objects and resources.
    Ven,
}

impl Role {
    fn scopes(self) -> u8 {
        let bits = |s: &[Scope]| s.iter().fold(0u8, |acc, s| acc | 1 << *s as u8);
        match self {
            Role::Business => {
                bits(&[Scope::ReadAll, Scope::WritePrograms, Scope::WriteEvents, Scope::WriteSubscriptions, Scope::WriteVens])
            }
            Role::Ven => bits(&[Scope::ReadAll, Scope::WriteReports, Scope::WriteSubscriptions, Scope::WriteVens]),
        }
    }
}

/// A configured OAuth2 client: `ROLE:ID:SECRET` (`bl` or `ven`), e.g. `ven:site-17:...`.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub role: Role,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id).field("role", &self.role).finish_non_exhaustive()
    }
}

impl std::str::FromStr for Client {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.splitn(3, ':');
        let (Some(role), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("an OpenADR client is ROLE:ID:SECRET, ROLE `bl` or `ven`".into());
        };
        let role = match role {
            "bl" => Role::Business,
            "ven" => Role::Ven,
            other => return Err(format!("OpenADR client role {other:?}: `bl` (business logic) or `ven`")),
        };
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(format!("OpenADR client id {id:?}: 1-128 characters of A-Z a-z 0-9 - _ ."));
        }
        if id == GRID_OPERATOR {
            return Err(format!("OpenADR client id {GRID_OPERATOR} is reserved (the owner of what grid operator tokens create)"));
        }
        if secret.len() < 16 {
            return Err(format!("the secret of OpenADR client {id} is shorter than 16 characters"));
        }
        Ok(Client { id: id.into(), secret: secret.into(), role })
    }
}

/// Who is calling the VTN, as far as their token proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The OAuth2 client id, or `grid-operator` for a static token.
    pub client: String,
    pub role: Role,
    scopes: u8,
}

/// The owner recorded for objects a static-token grid operator creates.
pub const GRID_OPERATOR: &str = "grid-operator";

impl Principal {
    /// 403 unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes & (1 << scope as u8) != 0 {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this needs the scope {} (client {} has a {:?} role)", SCOPES[scope as usize], self.client, self.role),
            ))
        }
    }

    pub fn is_business(&self) -> bool {
        self.role == Role::Business
    }

    /// Business logic sees every object; a VEN only those it created.
    pub fn may_see(&self, owner: &str) -> bool {
        self.is_business() || owner == self.client
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, payload: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"OVPP-OPENADR-TOKEN-V1");
    mac.update(payload.as_bytes());
    mac
}

/// A token for `client` with `scopes`, valid until `expires`.
pub fn mint(client: &Client, scopes: u8, expires: i64) -> String {
    let payload = format!("ovpp1.{}.{expires}.{scopes}", URL_SAFE_NO_PAD.encode(&client.id));
    let tag = URL_SAFE_NO_PAD.encode(mac(&client.secret, &payload).finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// The client a token was issued to, if it verifies and has not expired.
pub fn verify(clients: &[Client], token: &str, now: i64) -> Option<Principal> {
    let (payload, tag) = token.rsplit_once('.')?;
    let mut parts = payload.split('.');
    let (Some("ovpp1"), Some(id), Some(expires), Some(scopes), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    let client = clients.iter().find(|c| c.id == id)?;
    mac(&client.secret, payload).verify_slice(&URL_SAFE_NO_PAD.decode(tag).ok()?).ok()?;
    let (expires, scopes): (i64, u8) = (expires.parse().ok()?, scopes.parse().ok()?);
    (now < expires).then(|| Principal { client: client.id.clone(), role: client.role, scopes: scopes & client.role.scopes() })
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
            return Ok(Principal { client: GRID_OPERATOR.into(), role: Role::Business, scopes: Role::Business.scopes() });
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(role: Role) -> Client {
        Client { id: "site-17".into(), secret: "0123456789abcdef".into(), role }
    }

    #[test]
    fn tokens_verify_only_unaltered_unexpired_and_with_the_current_secret() {
        let c = client(Role::Ven);
        let token = mint(&c, Role::Ven.scopes(), 1_000);
        let p = verify(std::slice::from_ref(&c), &token, 999).unwrap();
        assert_eq!((p.client.as_str(), p.role), ("site-17", Role::Ven));
        assert!(p.require(Scope::WriteReports).is_ok() && p.require(Scope::WriteEvents).is_err());
        assert_eq!(verify(std::slice::from_ref(&c), &token, 1_000), None, "expired");
        let rotated = Client { secret: "another-secret-16".into(), ..c.clone() };
        assert_eq!(verify(&[rotated], &token, 0), None, "secret changed");
        // A VEN cannot widen its scopes by editing them: the HMAC covers them.
        let widened = token.replacen(&format!(".{}.", Role::Ven.scopes()), ".63.", 1);
        assert_ne!(widened, token);
        assert_eq!(verify(std::slice::from_ref(&c), &widened, 0), None);
        // Nor by a role change in configuration: scopes are cut to the role's.
        let demoted = mint(&client(Role::Business), Role::Business.scopes(), 1_000);
        assert!(verify(&[c], &demoted, 0).unwrap().require(Scope::WriteEvents).is_err());
        for junk in ["", "ovpp1", "ovpp1.a.b.c.d", "Bearer x", "ovpp1.c2l0ZS0xNw.1000.0.x.y"] {
            assert_eq!(verify(&[client(Role::Ven)], junk, 0), None, "{junk}");
        }
    }

    #[test]
    fn clients_parse_from_role_id_secret() {
        let c: Client = "ven:site-17:0123456789abcdef:with:colons".parse().unwrap();
        assert_eq!((c.role, c.id.as_str(), c.secret.as_str()), (Role::Ven, "site-17", "0123456789abcdef:with:colons"));
        for bad in [
            "ven:site",
            "admin:x:0123456789abcdef",
            "bl::0123456789abcdef",
            "bl:a b:0123456789abcdef",
            "bl:x:short",
            "ven:grid-operator:0123456789abcdef",
        ] {
            assert!(bad.parse::<Client>().is_err(), "{bad}");
        }
    }
}
