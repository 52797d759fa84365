//! The OpenADR VTN's OAuth2 clients (client credentials, RFC 6749 §4.4), each a
//! business-logic client or a VEN, their scopes as OpenADR 3.0.1 gives them, and their
//! access tokens.
//!
//! Access tokens are stateless: `ovpp1.<client id, base64url>.<expiry>.<scopes>.<HMAC>`,
//! the HMAC-SHA256 keyed by the client's secret. Every process configured with the same
//! clients accepts them, and changing a client's secret revokes its tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
    pub fn scopes(self) -> u8 {
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
    /// A grid operator's static token: business logic.
    pub fn grid_operator() -> Self {
        Principal { client: GRID_OPERATOR.into(), role: Role::Business, scopes: Role::Business.scopes() }
    }

    /// Whether the token carries `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & (1 << scope as u8) != 0
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
        assert!(p.has(Scope::WriteReports) && !p.has(Scope::WriteEvents));
        assert_eq!(verify(std::slice::from_ref(&c), &token, 1_000), None, "expired");
        let rotated = Client { secret: "another-secret-16".into(), ..c.clone() };
        assert_eq!(verify(&[rotated], &token, 0), None, "secret changed");
        // A VEN cannot widen its scopes by editing them: the HMAC covers them.
        let widened = token.replacen(&format!(".{}.", Role::Ven.scopes()), ".63.", 1);
        assert_ne!(widened, token);
        assert_eq!(verify(std::slice::from_ref(&c), &widened, 0), None);
        // Nor by a role change in configuration: scopes are cut to the role's.
        let demoted = mint(&client(Role::Business), Role::Business.scopes(), 1_000);
        assert!(!verify(&[c], &demoted, 0).unwrap().has(Scope::WriteEvents));
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
