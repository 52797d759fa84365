//! What wallets talk to: sign-in sessions, claim transactions built from the posted proofs,
//! and Solana Pay's transaction request (`solana:<this oracle>/v1/pay/claim`).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use tower_http::cors::{Any, CorsLayer};

use super::{json_body, ApiError, AppState};
use crate::claims::{self, DueClaim};
use anchor_lang::prelude::Pubkey;
use ovpp_wire::clock::unix_now;
use ovpp_wire::wallet::{ClaimRequest, ClaimTransaction, ClaimTransactions, PayLabel, PayRequest, PayTransaction, SignIn};

pub fn routes() -> Router<AppState> {
    // Wallets fetch the transaction request from their own origin (Solana Pay's reference
    // client does so with CORS).
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::POST]).allow_headers([header::CONTENT_TYPE]);
    Router::new()
        .route("/v1/sessions/message", get(sign_in_text))
        .route("/v1/sessions", post(sign_in))
        .route("/v1/claims/transactions", post(claim_transactions))
        .route("/v1/pay/claim", get(pay_label).post(pay_transaction).layer(cors))
}

/// Where the pages are (`--public-url`): sign-in messages name it, so a signature made for
/// another site opens no session here. Without it sign-in is off.
fn public_url(state: &AppState) -> Result<&str, ApiError> {
    state.public_url.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sign_in_unavailable",
            "wallet sign-in needs the address people open the pages at: start the oracle with --public-url",
        )
    })
}

/// This oracle's origin for links a wallet follows back: `--public-url`, else the request's.
fn origin(state: &AppState, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or(uri.authority().map(|a| a.as_str()));
    format!("http://{}", host.unwrap_or("localhost"))
}

fn parse_owner(text: &str) -> Result<Pubkey, ApiError> {
    text.parse().map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_owner", format!("{text:?} is not a base58 public key")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageQuery {
    owner: String,
}

/// The message the owner's wallet signs to sign in here, with its nonce and time.
async fn sign_in_text(State(state): State<AppState>, Query(q): Query<MessageQuery>) -> Result<Response, ApiError> {
    let owner = parse_owner(&q.owner)?;
    Ok(Json(state.sessions.challenge(public_url(&state)?, &owner.to_string(), unix_now())).into_response())
}

/// A session for the owner whose wallet signed this oracle's sign-in message.
async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let request: SignIn = json_body(&headers, &body)?;
    let session = state
        .sessions
        .sign_in(public_url(&state)?, &request, unix_now())
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "sign_in_refused", e.to_string()))?;
    Ok(Json(session).into_response())
}

/// What is due to `owner`'s devices in the latest posted epoch this oracle closed, paid by
/// `owner`, and the epoch.
async fn due_to(state: &AppState, owner: &Pubkey) -> Result<(Vec<DueClaim>, u64), ApiError> {
    let (tree, _) = state.proofs.latest(&state.store, state.chain.as_ref()).await?;
    let tree = tree.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no_posted_epoch", "no epoch closed here is among the chain's recent posted roots")
    })?;
    let devices: Vec<_> = state.registry.all().await.into_iter().filter(|d| d.owner == *owner).collect();
    let mut due = claims::due(state.chain.as_ref(), &tree, &devices, *owner).await.map_err(chain_unavailable)?;
    // Only what the chain says is this owner's (the registry may lag a transfer).
    due.retain(|c| c.owner == *owner);
    Ok((due, tree.epoch))
}

fn chain_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string())
}

fn encode(transaction: &solana_sdk::transaction::Transaction) -> String {
    BASE64.encode(bincode::serialize(transaction).expect("transactions serialize"))
}

/// Unsigned claim transactions for everything due to the owner's devices.
async fn claim_transactions(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let request: ClaimRequest = json_body(&headers, &body)?;
    let owner = parse_owner(&request.owner)?;
    let (due, epoch) = due_to(&state, &owner).await?;
    let blockhash = state.chain.latest_blockhash().await.map_err(chain_unavailable)?;
    let transactions = claims::unsigned_transactions(&due, &owner, blockhash)
        .into_iter()
        .map(|(tx, group)| ClaimTransaction {
            transaction: encode(&tx),
            devices: group.iter().map(|c| c.device.to_string()).collect(),
            amount: group.iter().map(|c| c.amount).sum(),
        })
        .collect();
    Ok(Json(ClaimTransactions { owner: owner.to_string(), epoch, total: due.iter().map(|c| c.amount).sum(), transactions }).into_response())
}

/// Solana Pay, `GET`: the label and icon a wallet shows.
async fn pay_label(State(state): State<AppState>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    Json(PayLabel { label: "OpenVPP rewards".into(), icon: format!("{}/ui/icon.svg", origin(&state, &headers, &uri)) }).into_response()
}

/// Solana Pay, `POST {account}`: a transaction claiming as many of the account's devices as
/// fit one (the wallet signs it as fee payer; the OVPP goes to the account).
async fn pay_transaction(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let request: PayRequest = json_body(&headers, &body)?;
    let owner = parse_owner(&request.account)?;
    let (due, _) = due_to(&state, &owner).await?;
    let blockhash = state.chain.latest_blockhash().await.map_err(chain_unavailable)?;
    let groups = claims::unsigned_transactions(&due, &owner, blockhash);
    let Some((transaction, group)) = groups.first() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "nothing_to_claim", format!("no device of {owner} has OVPP to claim now")));
    };
    let amount: u64 = group.iter().map(|c| c.amount).sum();
    let message = format!(
        "Claim {} OVPP for {} of your {} device(s) with rewards due",
        ovpp_chain::amount::format_ovpp(amount),
        group.len(),
        due.len()
    );
    Ok(Json(PayTransaction { transaction: encode(transaction), message }).into_response())
}
