//! Claiming without the CLI: the owner connects a browser wallet (any Wallet Standard
//! wallet: Phantom, Solflare, Backpack) and claims every device at once with transactions
//! the oracle builds from its posted proofs; or scans a Solana Pay transaction request with a
//! phone wallet.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::PageQuery;
use crate::server::{ApiError, AppState};

pub async fn show(State(state): State<AppState>, Query(fragment): PageQuery) -> Response {
    let main = r#"<h1>Claim your rewards</h1>
<p>Every device you own earns OVPP each epoch. Connect the wallet that owns them: the oracle builds the claim transactions from the epoch's posted proofs, your wallet shows and simulates them, and you sign. The OVPP goes to your account.</p>
<section id="connect"><h2>With a browser wallet</h2><div class="wallets" id="wallets"></div><p id="wallet-status" class="note"></p></section>
<section id="claim"><div class="cards"><div class="card"><div class="label">Claimable now</div><div class="value" id="claim-total">–</div></div></div>
<p id="claim-devices" class="note">Connect a wallet to see what is due.</p><p><button id="claim-button" disabled>Claim all</button></p><p id="claim-result" class="mono"></p></section>
<section><h2>With a phone wallet (Solana Pay)</h2><div class="qr"><img id="pay-qr" alt="Solana Pay QR code" width="220" height="220"></div><p class="mono" id="pay-link"></p><p class="note">Scan it with a Solana Pay wallet: it asks the oracle for a claim transaction for its account, shows it, and you sign. One scan claims as many devices as fit one transaction; scan again for the rest.</p></section>"#;
    super::page(&state, "Claim", "claim", main.to_string(), None, &fragment)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrQuery {
    data: String,
}

/// A QR code (SVG) of `data`: the Solana Pay link the page builds from its own origin.
pub async fn qr(Query(q): Query<QrQuery>) -> Result<Response, ApiError> {
    if q.data.len() > 512 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "data is at most 512 bytes"));
    }
    let code = qrcode::QrCode::with_error_correction_level(q.data.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.to_string()))?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(220, 220).quiet_zone(true).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
