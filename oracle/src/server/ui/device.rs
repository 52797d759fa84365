//! A device's page: what is public (its registry entry and on-chain credit record) for
//! anyone; for its owner, signed in with the wallet (or the device key, or a grid operator),
//! its readings over the last day, commands and acknowledgements, and rewards earned
//! against claimed per epoch.

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::charts::{self, Series};
use super::{clock, esc, kw, not_found, ovpp, time, PageQuery};
use crate::server::auth::Caller;
use crate::server::{parse_key, ApiError, AppState};
use ovpp::protocol::device_address;
use ovpp::state::Device;
use ovpp_wire::clock::unix_now;
use ovpp_wire::device::kind_name;

pub async fn show(State(state): State<AppState>, Path(key): Path<String>, caller: Caller, Query(fragment): PageQuery) -> Response {
    match main_of(&state, &key, caller).await {
        // Live only once signed in: polling would wipe the sign-in buttons.
        Ok((main, private)) => {
            let mut page = super::page(&state, &format!("Device {key}"), "", main, private.then_some(10), &fragment);
            page.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            page
        }
        Err(e) => super::error_page(&state, e, &fragment),
    }
}

/// The page's content, and whether it holds the owner's private data.
async fn main_of(state: &AppState, key: &str, caller: Caller) -> Result<(String, bool), ApiError> {
    let device_key = parse_key(key)?;
    let device = state.registry.get(&device_key).await.ok_or_else(|| not_found(format!("no registered device {key}")))?;
    let address = device_address(&anchor_lang::prelude::Pubkey::new_from_array(device_key)).0;
    let on_chain: Option<Device> = ovpp_chain::accounts::read(state.chain.as_ref(), &address, "Device")
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", e.to_string()))?;
    let mut main = format!(
        r#"<h1>{} <span class="mono">{}</span></h1><table><tr><th>owner</th><td class="mono" id="owner">{}</td></tr><tr><th>region</th><td>{}</td></tr><tr><th>rated power</th><td>{}</td></tr><tr><th>storage</th><td>{:.1} kWh</td></tr><tr><th>status</th><td>{}</td></tr></table>"#,
        esc(kind_name(device.kind())),
        esc(key),
        device.owner,
        esc(&device.region),
        kw(device.profile.rated_power_w as f64),
        device.profile.energy_capacity_wh as f64 / 1000.0,
        format!("{:?}", device.profile.status).to_lowercase(),
    );
    if let Some(d) = &on_chain {
        main += &format!(
            r#"<h2>Credit record (on-chain)</h2><div class="cards"><div class="card"><div class="label">Reputation</div><div class="value">{:.1} %</div></div><div class="card"><div class="label">Epochs active</div><div class="value">{}</div></div><div class="card"><div class="label">Fault epochs</div><div class="value">{}</div></div><div class="card"><div class="label">Energy delivered</div><div class="value">{:.1} kWh</div></div><div class="card"><div class="label">Flexibility delivered</div><div class="value">{:.1} kWh</div></div><div class="card"><div class="label">Claimed</div><div class="value" id="claimed" data-amount="{}">{}</div></div></div><p class="note">As of the leaf of epoch {} (updated at each claim).</p>"#,
            f64::from(d.credit.reputation_bps) / 100.0,
            d.credit.epochs_active,
            d.credit.faults,
            d.contribution.energy_delivered_wh as f64 / 1000.0,
            d.contribution.flexibility_delivered_wh as f64 / 1000.0,
            d.claimed,
            ovpp(d.claimed),
            d.credit.as_of_epoch,
        );
    }
    if !caller.speaks_for_device(&device_key, Some(&device.owner.to_bytes())) {
        main += r#"<h2>Your device's data</h2><p class="note">Readings, commands and rewards are for the device's owner: sign in with the owner's wallet (a message it signs; no transaction).</p><div id="sign-in"><div class="wallets" id="wallets"></div><p id="wallet-status" class="note"></p></div>"#;
        return Ok((main, false));
    }
    let now = unix_now();
    let readings = state.store.device_readings(&device_key, now - 86_400, now + 60).await?;
    let power: Vec<(f64, f64)> =
        readings.iter().map(|r| (r.reading.interval_start as f64, f64::from(r.reading.average_power_w) / 1000.0)).collect();
    let soc: Vec<(f64, f64)> = readings
        .iter()
        .filter_map(|r| r.reading.state_of_charge_permille.map(|s| (r.reading.interval_start as f64, f64::from(s) / 10.0)))
        .collect();
    main += &format!(
        r#"<h2>Readings, last 24 hours</h2><p class="note" id="readings" data-count="{}">{} readings; power is + export, - import.</p><div class="grid2"><div class="chart">{}</div>{}</div>"#,
        readings.len(),
        readings.len(),
        charts::lines("power-chart", &[Series { name: "power", colour: "#0f6e4f", points: power }], "kW", |t| clock(t as i64)),
        if soc.is_empty() {
            String::new()
        } else {
            format!(
                r#"<div class="chart">{}</div>"#,
                charts::lines("soc-chart", &[Series { name: "state of charge", colour: "#b4541a", points: soc }], "%", |t| clock(t as i64))
            )
        },
    );
    let commands = state.store.device_commands(&device_key, now - 86_400, 50).await?;
    main += r#"<h2>Commands, last 24 hours</h2><table id="commands"><tr><th>from (UTC)</th><th>until</th><th class="num">set point</th><th>event</th><th>answer</th></tr>"#;
    for (c, accepted, acked_at) in &commands {
        let answer = match (accepted, acked_at) {
            (Some(true), Some(at)) => format!("accepted {}", clock(*at)),
            (Some(false), Some(at)) => format!("refused {}", clock(*at)),
            _ => "no answer".to_string(),
        };
        main += &format!(
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td><a href="/ui/events/{e}">{e}</a></td><td>{}</td></tr>"#,
            time(c.valid_from),
            clock(c.valid_until),
            kw(c.setpoint_w as f64),
            esc(&answer),
            e = esc(&c.event_id),
        );
    }
    if commands.is_empty() {
        main += r#"<tr><td colspan="5" class="note">None.</td></tr>"#;
    }
    main += "</table>";
    // Earned: the leaf's cumulative amount in each epoch closed here; claimed: what the
    // chain has minted for it (known now, not per epoch: drawn at the last epoch).
    let earned = state.store.device_earnings(&device_key, 30).await?;
    let claimed = on_chain.as_ref().map_or(0, |d| d.claimed);
    let series = [
        Series { name: "earned", colour: "#0f6e4f", points: earned.iter().map(|(e, a)| (*e as f64, *a as f64 / 1e6)).collect() },
        Series {
            name: "claimed",
            colour: "#b4541a",
            points: earned.last().map(|(e, _)| vec![(*e as f64, claimed as f64 / 1e6)]).unwrap_or_default(),
        },
    ];
    main += &format!(
        r#"<h2>Rewards: earned and claimed</h2><div class="chart">{}</div><p class="note">Cumulative OVPP by epoch; claimed is what the chain has minted for it so far. <a href="/ui/claim">Claim</a></p>"#,
        charts::lines("rewards-chart", &series, "OVPP", |e| format!("epoch {e:.0}"))
    );
    Ok((main, true))
}
