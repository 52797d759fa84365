//! The network at a glance: devices online by region (the map) and kind, flexibility now
//! and forecast, readings per second, the latest epochs.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use axum::extract::{Query, State};
use axum::response::Response;

use super::charts::{self, Series, TileMap};
use super::{esc, kw, ovpp, PageQuery};
use crate::server::AppState;
use ovpp_wire::clock::unix_now;

/// The local network's map: Germany's states (regions are codes; the map is data).
fn map() -> &'static TileMap {
    static MAP: OnceLock<TileMap> = OnceLock::new();
    MAP.get_or_init(|| serde_json::from_str(include_str!("../../../ui/regions/de.json")).expect("oracle/ui/regions/de.json parses"))
}

async fn main_of(state: &AppState) -> Result<String, crate::server::ApiError> {
    let now = unix_now();
    let devices = state.registry.all().await;
    let summary = state.fleet.summary(&devices, now).await;
    let forecast = state.dispatch.forecast(now, &[1, 2, 4]).await?;
    let epochs = state.store.epochs(5).await?;
    let rate = state.ui.readings_per_sec(now, state.metrics.readings_accepted.load(Ordering::Relaxed));
    let posted = epochs.iter().find(|e| e.posted_at.is_some()).map_or("none yet".to_string(), |e| format!("epoch {}", e.epoch));
    let t = &summary.totals;
    let mut main = format!(
        r#"<h1>Network</h1><div class="cards">
<div class="card" id="card-online"><div class="label">Devices online</div><div class="value" data-online="{}" data-devices="{}">{} / {}</div></div>
<div class="card" id="card-rate"><div class="label">Readings per second</div><div class="value">{}</div></div>
<div class="card" id="card-up"><div class="label">Flexibility up now</div><div class="value" data-w="{}">{}</div></div>
<div class="card" id="card-down"><div class="label">Flexibility down now</div><div class="value" data-w="{}">{}</div></div>
<div class="card" id="card-epoch"><div class="label">Last epoch posted</div><div class="value">{}</div></div></div>"#,
        t.devices_online,
        t.devices,
        t.devices_online,
        t.devices,
        rate.map_or("…".to_string(), |r| format!("{r:.1}")),
        t.flex_up_w,
        kw(t.flex_up_w as f64),
        t.flex_down_w,
        kw(t.flex_down_w as f64),
        esc(&posted),
    );
    let counts: BTreeMap<String, (u64, u64)> = summary.by_region.iter().map(|(r, g)| (r.clone(), (g.devices_online, g.devices))).collect();
    let mapped: Vec<&str> = map().tiles.iter().map(|t| t.code.as_str()).collect();
    let elsewhere: Vec<String> =
        counts.iter().filter(|(r, _)| !mapped.contains(&r.as_str())).map(|(r, (o, d))| format!("{} {o}/{d}", esc(r))).collect();
    main += &format!(
        r#"<div class="grid2"><section><h2>Devices online by region</h2><div class="chart">{}</div>{}</section>"#,
        charts::tile_map("region-map", map(), &counts),
        if elsewhere.is_empty() { String::new() } else { format!(r#"<p class="note">Elsewhere: {}</p>"#, elsewhere.join(", ")) }
    );
    // Flexibility: now (0 h) and the forecast, all regions together.
    let mut up = vec![(0.0, t.flex_up_w as f64 / 1000.0)];
    let mut down = vec![(0.0, t.flex_down_w as f64 / 1000.0)];
    for hours in [1, 2, 4] {
        let point = |f: fn(&ovpp_wire::dispatch::view::ForecastPoint) -> u64| -> f64 {
            forecast.values().flat_map(|p| p.iter().filter(|p| p.hours == hours)).map(f).sum::<u64>() as f64 / 1000.0
        };
        up.push((hours as f64, point(|p| p.flex_up_w)));
        down.push((hours as f64, point(|p| p.flex_down_w)));
    }
    let series = [Series { name: "up", colour: "#0f6e4f", points: up }, Series { name: "down", colour: "#b4541a", points: down }];
    main += &format!(
        r#"<section><h2>Flexibility now and forecast</h2><div class="chart">{}</div><p class="note">kW the fleet can offer, now and 1, 2, 4 hours ahead.</p></section></div>"#,
        charts::lines("flex-forecast", &series, "kW", |h| if h == 0.0 { "now".into() } else { format!("+{h:.0} h") })
    );
    main += r#"<h2>By kind</h2><table id="by-kind"><tr><th>kind</th><th class="num">devices</th><th class="num">online</th><th class="num">flexibility up</th><th class="num">flexibility down</th><th class="num">generation</th><th class="num">load</th></tr>"#;
    for (kind, g) in &summary.by_kind {
        main += &format!(
            r#"<tr data-kind="{}"><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(kind),
            esc(kind),
            g.devices,
            g.devices_online,
            kw(g.flex_up_w as f64),
            kw(g.flex_down_w as f64),
            kw(g.generation_w as f64),
            kw(g.load_w as f64)
        );
    }
    main += "</table><h2>Latest epochs</h2><table><tr><th>epoch</th><th class=\"num\">emission</th><th class=\"num\">leaves</th><th>posted</th></tr>";
    for e in &epochs {
        main += &format!(
            r#"<tr><td><a href="/ui/epochs/{0}">{0}</a></td><td class="num">{1}</td><td class="num">{2}</td><td>{3}</td></tr>"#,
            e.epoch,
            ovpp(e.emission),
            e.leaf_count,
            if e.posted_at.is_some() { "yes" } else { "not yet" }
        );
    }
    main += "</table>";
    Ok(main)
}

pub async fn show(State(state): State<AppState>, Query(fragment): PageQuery) -> Response {
    match main_of(&state).await {
        Ok(main) => super::page(&state, "Network", "overview", main, Some(5), &fragment),
        Err(e) => super::error_page(&state, e, &fragment),
    }
}
