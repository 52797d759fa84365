//! The dashboard and the wallet pages, served by `ovpp-oracle serve`: HTML rendered here from
//! the same data the JSON API answers with, charts as server-side SVG ([`charts`]), one
//! stylesheet and one small script of our own (`oracle/ui/`, compiled in: nothing is fetched
//! from elsewhere at run time). Each page polls its own fragment (`?fragment=1`) to stay live.

mod charts;
mod claim;
mod device;
mod epochs;
mod events;
mod overview;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::show))
        .route("/ui/events", get(events::list))
        .route("/ui/events/{id}", get(events::show))
        .route("/ui/epochs", get(epochs::list))
        .route("/ui/epochs/{epoch}", get(epochs::show))
        .route("/ui/devices/{key}", get(device::show))
        .route("/ui/claim", get(claim::show))
        .route("/ui/qr.svg", get(claim::qr))
        .route("/ui/app.js", get(|| asset("text/javascript; charset=utf-8", include_str!("../../../ui/app.js"))))
        .route("/ui/style.css", get(|| asset("text/css; charset=utf-8", include_str!("../../../ui/style.css"))))
        .route("/ui/icon.svg", get(|| asset("image/svg+xml", include_str!("../../../ui/icon.svg"))))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// What the pages remember between requests: readings counted a moment ago (the rate), and
/// each running event's live delivery as seen by the pages (the chart while it runs).
#[derive(Default)]
pub struct Live {
    readings: Mutex<VecDeque<(i64, u64)>>,
    deliveries: Mutex<HashMap<String, Vec<(i64, i64)>>>,
}

impl Live {
    /// Readings accepted per second over about the last minute, once there is one.
    fn readings_per_sec(&self, now: i64, accepted: u64) -> Option<f64> {
        let mut samples = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        if samples.back().is_none_or(|(t, _)| *t < now) {
            samples.push_back((now, accepted));
        }
        // Only the last minute counts: a sample from before a long quiet spell would average
        // over hours.
        while samples.len() > 1 && samples.front().is_some_and(|(t, _)| now - t > 60) {
            samples.pop_front();
        }
        let (t0, n0) = *samples.front()?;
        (now - t0 >= 5).then(|| accepted.saturating_sub(n0) as f64 / (now - t0) as f64)
    }

    /// Records `delivery_w` for `event` at `now` (at most one sample every 5 s) and returns
    /// what was recorded so far.
    fn delivery(&self, event: &str, now: i64, delivery_w: Option<i64>) -> Vec<(i64, i64)> {
        let mut all = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        // Events last at most a week: what has not been sampled for a day is done with.
        all.retain(|_, samples| samples.last().is_some_and(|(t, _)| now - t < 86_400));
        let samples = all.entry(event.to_string()).or_default();
        if let Some(w) = delivery_w {
            if samples.last().is_none_or(|(t, _)| now - t >= 5) && samples.len() < 100_000 {
                samples.push((now, w));
            }
        }
        samples.clone()
    }
}

#[derive(Deserialize, Default)]
pub struct Fragment {
    #[serde(default)]
    fragment: Option<u8>,
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `main` (or only `main`, for the live update), polled every
/// `refresh` seconds when given.
fn page(state: &AppState, title: &str, nav: &str, main: String, refresh: Option<u32>, fragment: &Fragment) -> Response {
    // Everything is served from here: no other origin may add script, style or frames.
    // Connections may go elsewhere: a wallet that lives in the page sends to its own RPC.
    const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self' http: https: ws: wss:; frame-ancestors 'none'; \
                       base-uri 'none'; form-action 'none'";
    let csp = [(header::CONTENT_SECURITY_POLICY, CSP)];
    if fragment.fragment == Some(1) {
        return (csp, Html(main)).into_response();
    }
    let link = |href: &str, name: &str, label: &str| {
        let class = if nav == name { r#" class="active""# } else { "" };
        format!(r#"<a href="{href}"{class}>{label}</a>"#)
    };
    let refresh = refresh.map_or(String::new(), |s| format!(r#" data-refresh="{s}""#));
    let html = Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · OpenVPP</title><link rel="icon" href="/ui/icon.svg"><link rel="stylesheet" href="/ui/style.css"><script src="/ui/app.js" defer></script></head><body data-chain="{chain}"><header><a class="brand" href="/"><img src="/ui/icon.svg" alt="">OpenVPP</a>{overview}{events}{epochs}{claim}</header><main{refresh}>{main}</main></body></html>"#,
        title = esc(title),
        chain = esc(&state.wallet_chain),
        overview = link("/", "overview", "Network"),
        events = link("/ui/events", "events", "Events"),
        epochs = link("/ui/epochs", "epochs", "Epochs"),
        claim = link("/ui/claim", "claim", "Claim"),
    ));
    (csp, html).into_response()
}

/// A page's error as HTML (the JSON API keeps its JSON errors).
fn error_page(state: &AppState, e: ApiError, fragment: &Fragment) -> Response {
    let body = e.body().error;
    let main = format!(r#"<h1>{}</h1><p class="error">{}</p>"#, esc(&body.code), esc(&body.message));
    let mut response = page(state, &body.code, "", main, None, fragment);
    *response.status_mut() = e.status;
    response
}

/// OVPP base units (6 decimals) as text.
fn ovpp(base: u64) -> String {
    ovpp_chain::amount::format_ovpp(base)
}

fn kw(w: f64) -> String {
    format!("{:.1} kW", w / 1000.0)
}

/// `hh:mm` UTC.
fn clock(t: i64) -> String {
    format!("{:02}:{:02}", t.rem_euclid(86_400) / 3600, t.rem_euclid(3600) / 60)
}

/// RFC 3339 UTC.
fn time(t: i64) -> String {
    ovpp_wire::dispatch::event::rfc3339(t)
}

/// The pages' query: `?fragment=1` for the live update.
type PageQuery = Query<Fragment>;

fn not_found(what: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}
