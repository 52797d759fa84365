//! Wallet sign-in: an owner's wallet signs a readable message ([`sign_in_message`]), and the
//! oracle answers with a session token that speaks for that owner for an hour (the device
//! page reads readings and commands with it). Tokens are HMAC-SHA256 under a key kept in the
//! database, so every process of one oracle accepts them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

use crate::store::{Store, StoreError};
use ovpp_wire::wallet::{sign_in_message, Session, SignIn, SESSION_SECS, SIGN_IN_WINDOW_SECS};

/// What a session token starts with (told apart from grid operator tokens by it).
pub const PREFIX: &str = "ovpp-session";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignInError {
    #[error("owner must be a base58 public key")]
    BadOwner,
    #[error("signature must be base58 of 64 bytes")]
    BadSignature,
    #[error("the message was issued more than {SIGN_IN_WINDOW_SECS} s from now: sign a fresh one")]
    Stale,
    #[error("the signature does not verify over the sign-in message for this host with the owner's key")]
    Forged,
}

pub struct Sessions {
    key: [u8; 32],
}

type HmacSha256 = Hmac<Sha256>;

impl Sessions {
    /// The shared key, made by the first process that needs it.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('sessions', $1) ON CONFLICT (name) DO NOTHING")
            .bind(hex::encode(fresh))
            .execute(&store.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = 'sessions'").fetch_one(&store.pool).await?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(row.try_get::<String, _>("value")?, &mut key)
            .map_err(|e| StoreError::Corrupt { table: "server_secrets", detail: e.to_string() })?;
        Ok(Self { key })
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(b"OVPP-SESSION-V1");
        mac.update(payload.as_bytes());
        mac
    }

    /// A session for the owner who signed `sign_in` at `domain` (the host the page was served
    /// from), if the signature verifies and the message is fresh.
    pub fn sign_in(&self, domain: &str, sign_in: &SignIn, now: i64) -> Result<Session, SignInError> {
        let mut owner = [0u8; 32];
        if bs58::decode(&sign_in.owner).onto(&mut owner).ok() != Some(32) {
            return Err(SignInError::BadOwner);
        }
        let mut signature = [0u8; 64];
        if bs58::decode(&sign_in.signature).onto(&mut signature).ok() != Some(64) {
            return Err(SignInError::BadSignature);
        }
        if sign_in.issued_at.abs_diff(now) > SIGN_IN_WINDOW_SECS as u64 {
            return Err(SignInError::Stale);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&owner).map_err(|_| SignInError::BadOwner)?;
        let message = sign_in_message(domain, &sign_in.owner, sign_in.issued_at);
        key.verify_strict(message.as_bytes(), &ed25519_dalek::Signature::from_bytes(&signature)).map_err(|_| SignInError::Forged)?;
        let expires_at = now + SESSION_SECS;
        let payload = format!("{PREFIX}.{}.{expires_at}", sign_in.owner);
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        Ok(Session { owner: sign_in.owner.clone(), token: format!("{payload}.{tag}"), expires_at })
    }

    /// The owner a session token speaks for, if it verifies and has not expired.
    pub fn verify(&self, token: &str, now: i64) -> Option<[u8; 32]> {
        let (payload, tag) = token.rsplit_once('.')?;
        let mut parts = payload.split('.');
        let (Some(PREFIX), Some(owner), Some(expires), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        self.mac(payload).verify_slice(&URL_SAFE_NO_PAD.decode(tag).ok()?).ok()?;
        let mut key = [0u8; 32];
        (bs58::decode(owner).onto(&mut key).ok()? == 32 && now < expires.parse::<i64>().ok()?).then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    #[test]
    fn a_signed_fresh_message_opens_a_session_for_its_signer_only() {
        let sessions = Sessions { key: [7; 32] };
        let wallet = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let owner = bs58::encode(wallet.verifying_key().to_bytes()).into_string();
        let now = 1_800_000_000;
        let sign = |domain: &str, at: i64| SignIn {
            owner: owner.clone(),
            issued_at: at,
            signature: bs58::encode(wallet.sign(sign_in_message(domain, &owner, at).as_bytes()).to_bytes()).into_string(),
        };
        let session = sessions.sign_in("127.0.0.1:8080", &sign("127.0.0.1:8080", now - 10), now).unwrap();
        assert_eq!(sessions.verify(&session.token, now + 5), Some(wallet.verifying_key().to_bytes()));
        assert_eq!(sessions.verify(&session.token, session.expires_at), None, "expired");
        assert_eq!(sessions.verify(&session.token.replace(".ovpp", ".x"), now), None);
        let other = Sessions { key: [8; 32] };
        assert_eq!(other.verify(&session.token, now), None, "another oracle's key");
        // Another host's message (a phishing page relaying it), a stale one, someone else's key.
        assert_eq!(sessions.sign_in("127.0.0.1:8080", &sign("evil.example", now), now).unwrap_err(), SignInError::Forged);
        assert_eq!(sessions.sign_in("127.0.0.1:8080", &sign("127.0.0.1:8080", now - 301), now).unwrap_err(), SignInError::Stale);
        let stranger = SignIn { owner: bs58::encode([9u8; 32]).into_string(), ..sign("127.0.0.1:8080", now) };
        assert!(sessions.sign_in("127.0.0.1:8080", &stranger, now).is_err());
    }
}
