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
use ovpp_wire::wallet::{sign_in_message, Session, SignIn, SignInChallenge, SESSION_SECS, SIGN_IN_WINDOW_SECS};

/// What a session token starts with (told apart from grid operator tokens by it).
pub const PREFIX: &str = "ovpp-session";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignInError {
    #[error("owner must be a base58 public key")]
    BadOwner,
    #[error("signature must be base58 of 64 bytes")]
    BadSignature,
    #[error("the message was issued more than {SIGN_IN_WINDOW_SECS} s ago (or in the future): sign a fresh one")]
    Stale,
    #[error("the nonce was not issued here for this owner and time: ask GET /v1/sessions/message for a message")]
    BadNonce,
    #[error("the signature does not verify over this oracle's sign-in message with the owner's key")]
    Forged,
}

pub struct Sessions {
    key: [u8; 32],
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC a sign-in nonce carries.
const NONCE_BYTES: usize = 12;

impl Sessions {
    /// The shared key, made by the first process that needs it.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ('sessions', $1) ON CONFLICT (name) DO NOTHING")
            .bind(hex::encode(fresh))
            .execute(&store.writes)
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

    /// The nonce of a sign-in message for `owner` made at `issued_at` (HMAC: only messages
    /// this oracle made are taken, without remembering them).
    fn nonce(&self, owner: &str, issued_at: i64) -> String {
        hex::encode(&self.nonce_mac(owner, issued_at).finalize().into_bytes()[..NONCE_BYTES])
    }

    fn nonce_mac(&self, owner: &str, issued_at: i64) -> HmacSha256 {
        self.mac(&format!("nonce.{owner}.{issued_at}"))
    }

    /// The message `owner` signs to sign in at `public_url`, made `now`.
    pub fn challenge(&self, public_url: &str, owner: &str, now: i64) -> SignInChallenge {
        let nonce = self.nonce(owner, now);
        SignInChallenge { message: sign_in_message(public_url, owner, &nonce, now), nonce, issued_at: now }
    }

    /// A session for the owner who signed this oracle's message (for `public_url`, where the
    /// pages are), if the signature verifies and the message is fresh.
    pub fn sign_in(&self, public_url: &str, sign_in: &SignIn, now: i64) -> Result<Session, SignInError> {
        let mut owner = [0u8; 32];
        if bs58::decode(&sign_in.owner).onto(&mut owner).ok() != Some(32) {
            return Err(SignInError::BadOwner);
        }
        let mut signature = [0u8; 64];
        if bs58::decode(&sign_in.signature).onto(&mut signature).ok() != Some(64) {
            return Err(SignInError::BadSignature);
        }
        // Made here, at most 5 minutes ago, and never ahead of this clock by more than a little.
        if sign_in.issued_at > now + 30 || now - sign_in.issued_at > SIGN_IN_WINDOW_SECS {
            return Err(SignInError::Stale);
        }
        let nonce = hex::decode(&sign_in.nonce).ok().filter(|n| n.len() == NONCE_BYTES).ok_or(SignInError::BadNonce)?;
        self.nonce_mac(&sign_in.owner, sign_in.issued_at).verify_truncated_left(&nonce).map_err(|_| SignInError::BadNonce)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&owner).map_err(|_| SignInError::BadOwner)?;
        let message = sign_in_message(public_url, &sign_in.owner, &sign_in.nonce, sign_in.issued_at);
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
        const HERE: &str = "https://vpp.example.org";
        let sessions = Sessions { key: [7; 32] };
        let wallet = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let owner = bs58::encode(wallet.verifying_key().to_bytes()).into_string();
        let now = 1_800_000_000;
        // The wallet signs what the challenge says, for `url`.
        let sign = |url: &str, at: i64| {
            let challenge = sessions.challenge(url, &owner, at);
            assert!(challenge.message.starts_with("vpp.example.org wants you to sign in") || url != HERE);
            SignIn {
                owner: owner.clone(),
                nonce: challenge.nonce,
                issued_at: at,
                signature: bs58::encode(wallet.sign(challenge.message.as_bytes()).to_bytes()).into_string(),
            }
        };
        let session = sessions.sign_in(HERE, &sign(HERE, now - 10), now).unwrap();
        assert_eq!(sessions.verify(&session.token, now + 5), Some(wallet.verifying_key().to_bytes()));
        assert_eq!(sessions.verify(&session.token, session.expires_at), None, "expired");
        let (payload, tag) = session.token.rsplit_once('.').unwrap();
        let later = payload.replace(&session.expires_at.to_string(), &(session.expires_at + 3600).to_string());
        assert_eq!(sessions.verify(&format!("{later}.{tag}"), now), None, "a lengthened token");
        let other = Sessions { key: [8; 32] };
        assert_eq!(other.verify(&session.token, now), None, "another oracle's key");
        // A phishing site's message (signed for its own domain), a stale one, one from the
        // future, an invented nonce, someone else's key.
        assert_eq!(sessions.sign_in(HERE, &sign("https://phish.example", now), now).unwrap_err(), SignInError::Forged);
        assert_eq!(sessions.sign_in(HERE, &sign(HERE, now - 301), now).unwrap_err(), SignInError::Stale);
        assert_eq!(sessions.sign_in(HERE, &sign(HERE, now + 120), now).unwrap_err(), SignInError::Stale);
        let invented = SignIn { nonce: "00".repeat(12), ..sign(HERE, now) };
        assert_eq!(sessions.sign_in(HERE, &invented, now).unwrap_err(), SignInError::BadNonce);
        let stranger = SignIn { owner: bs58::encode([9u8; 32]).into_string(), ..sign(HERE, now) };
        assert!(sessions.sign_in(HERE, &stranger, now).is_err());
    }
}
