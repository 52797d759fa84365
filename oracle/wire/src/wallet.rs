//! What a wallet exchanges with the oracle: signing in (a message the owner's wallet signs),
//! the claim transactions the oracle builds from its posted proofs, and Solana Pay's
//! transaction request for claiming from a phone.

use serde::{Deserialize, Serialize};

/// How long a signed sign-in message stays acceptable, and how long the session lasts.
pub const SIGN_IN_WINDOW_SECS: i64 = 300;
pub const SESSION_SECS: i64 = 3600;

/// The text an owner's wallet signs to sign in at `public_url` (where the pages are served),
/// in the shape of Sign In With Solana (a person reads what they sign; wallets that parse it
/// check the domain against the page's): the domain, the account, a statement, then the URI,
/// version, nonce and time.
pub fn sign_in_message(public_url: &str, owner: &str, nonce: &str, issued_at: i64) -> String {
    let domain = public_url.split("://").nth(1).unwrap_or(public_url);
    format!(
        "{domain} wants you to sign in with your Solana account:\n{owner}\n\nSign in to OpenVPP to see your devices' readings, commands and rewards.\n\nURI: {public_url}\nVersion: 1\nNonce: {nonce}\nIssued At: {}",
        crate::dispatch::event::rfc3339(issued_at)
    )
}

/// `GET /v1/sessions/message?owner=`: what to sign, and the nonce and time to send back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInChallenge {
    pub message: String,
    pub nonce: String,
    pub issued_at: i64,
}

/// `POST /v1/sessions`: the owner, when the message was made, and the wallet's signature of
/// [`sign_in_message`] (base58).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub owner: String,
    pub nonce: String,
    pub issued_at: i64,
    pub signature: String,
}

/// A session: send `Authorization: Bearer <token>`; it speaks for `owner` until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub owner: String,
    pub token: String,
    pub expires_at: i64,
}

/// `POST /v1/claims/transactions`: claim everything due to `owner`'s devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub owner: String,
}

/// The unsigned transactions (fee payer: the owner) that claim what is due, each as few as
/// fit a packet. The wallet simulates and signs them; the OVPP goes to the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimTransactions {
    pub owner: String,
    /// The posted epoch whose proofs they carry.
    pub epoch: u64,
    /// Base units (6 decimals), all transactions together.
    pub total: u64,
    pub transactions: Vec<ClaimTransaction>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimTransaction {
    /// Base64 of the serialized transaction, signature slots zeroed.
    pub transaction: String,
    pub devices: Vec<String>,
    pub amount: u64,
}

/// Solana Pay transaction request, `GET`: what the wallet shows before asking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayLabel {
    pub label: String,
    pub icon: String,
}

/// Solana Pay transaction request, `POST` body: the wallet's account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayRequest {
    pub account: String,
}

/// Solana Pay transaction request, `POST` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayTransaction {
    /// Base64 of the serialized transaction (fee payer the account, signature slots zeroed).
    pub transaction: String,
    pub message: String,
}
