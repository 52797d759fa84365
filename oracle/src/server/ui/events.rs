//! Grid events: each one's target, plan and live delivery per interval while it runs, then
//! its measurement: baseline against metered per group of devices, delivered share, who was
//! paid. Groups are device kinds of at least three devices (fewer are merged): a single
//! device's delivery says whether its household was home, and this page is public.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::charts::{self, Series};
use super::{clock, esc, kw, not_found, time, PageQuery};
use crate::server::{ApiError, AppState};
use ovpp_wire::clock::unix_now;
use ovpp_wire::dispatch::event::{GridEvent, Signal, Status};
use ovpp_wire::dispatch::view::EventReport;

/// Fewest devices a group shown on a public page may have.
const MIN_GROUP: usize = 3;

fn status_of(status: Status, measured: bool) -> &'static str {
    match (status, measured) {
        (_, true) => "measured",
        (Status::Pending, _) => "pending",
        (Status::Active, _) => "active",
        (Status::Completed, _) => "completed",
        (Status::Cancelled, _) => "cancelled",
    }
}

pub async fn list(State(state): State<AppState>, Query(fragment): PageQuery) -> Response {
    let now = unix_now();
    let mut main = String::from(
        r#"<h1>Events</h1><table id="events"><tr><th>event</th><th>region</th><th>type</th><th>start (UTC)</th><th>end</th><th>status</th><th class="num">delivered</th></tr>"#,
    );
    let mut views = state.dispatch.view(now).await;
    views.sort_by_key(|v| std::cmp::Reverse(v.start));
    for v in &views {
        let status = status_of(v.status, v.report.is_some());
        let delivered = match (&v.report, v.live_delivery_w) {
            (Some(r), _) => format!("{:.0} % of target", r.delivery_ratio * 100.0),
            (None, Some(w)) => format!("{} now", kw(w as f64)),
            _ => String::new(),
        };
        main += &format!(
            r#"<tr data-event="{id}"><td><a href="/ui/events/{id}">{name}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class="status {status}">{status}</span></td><td class="num">{}</td></tr>"#,
            esc(&v.region),
            esc(&v.signal),
            time(v.start),
            clock(v.end),
            esc(&delivered),
            id = esc(&v.id),
            name = esc(v.event_name.as_deref().unwrap_or(&v.id)),
        );
    }
    if views.is_empty() {
        main += r#"<tr><td colspan="7" class="note">No event in the last day.</td></tr>"#;
    }
    main += "</table>";
    super::page(&state, "Events", "events", main, Some(5), &fragment)
}

pub async fn show(State(state): State<AppState>, Path(id): Path<String>, Query(fragment): PageQuery) -> Response {
    match main_of(&state, &id).await {
        Ok(main) => super::page(&state, &format!("Event {id}"), "events", main, Some(5), &fragment),
        Err(e) => super::error_page(&state, e, &fragment),
    }
}

async fn main_of(state: &AppState, id: &str) -> Result<String, ApiError> {
    let now = unix_now();
    let event = state.dispatch.event(id).await.ok_or_else(|| not_found(format!("no event {id}")))?;
    let report = state.dispatch.report(id).await.map_err(crate::dispatch::DispatchError::from)?;
    let view = state.dispatch.event_view(id, now).await;
    let status = status_of(event.status(now), report.is_some());
    let samples = state.ui.delivery(id, now, view.as_ref().and_then(|v| v.live_delivery_w).filter(|_| status == "active"));
    let mut main = format!(
        r#"<h1>{}</h1><p><span class="status {status}" id="event-status" data-status="{status}">{status}</span> {} in {} · program {} · {} to {} UTC</p>"#,
        esc(event.event_name.as_deref().unwrap_or(id)),
        esc(event.signal.name()),
        esc(&event.region),
        esc(&event.program_id),
        time(event.start()),
        clock(event.end()),
    );
    if let Some(plan) = view.as_ref().and_then(|v| v.plan.as_ref()) {
        main += &format!(
            r#"<div class="cards"><div class="card"><div class="label">Target now</div><div class="value">{}</div></div><div class="card"><div class="label">Planned</div><div class="value" id="planned" data-w="{}">{}</div></div><div class="card"><div class="label">Devices</div><div class="value">{}</div></div><div class="card"><div class="label">Delivering now</div><div class="value" id="live" data-w="{}">{}</div></div></div>"#,
            kw(plan.target_w as f64),
            plan.planned_w,
            kw(plan.planned_w as f64),
            plan.devices,
            view.as_ref().and_then(|v| v.live_delivery_w).unwrap_or(0),
            kw(view.as_ref().and_then(|v| v.live_delivery_w).unwrap_or(0) as f64),
        );
    }
    main += &format!(r#"<h2>Per interval</h2><div class="chart">{}</div>"#, interval_chart(&event, report.as_ref(), &samples));
    match &report {
        Some(r) => main += &measurement(r),
        None => main += r#"<p class="note" id="measurement">Measured once it has ended and its last readings are in.</p>"#,
    }
    Ok(main)
}

/// Target, commanded and delivered average power per interval (kW): the report's once
/// measured; before, the event's targets and the live delivery the pages saw.
fn interval_chart(event: &GridEvent, report: Option<&EventReport>, samples: &[(i64, i64)]) -> String {
    let kw = |w: i64| w as f64 / 1000.0;
    let series: Vec<Series> = match report {
        Some(r) => vec![
            Series { name: "target", colour: "#5d6a63", points: r.intervals.iter().map(|i| (i.start as f64, kw(i.target_w))).collect() },
            Series {
                name: "commanded",
                colour: "#b4541a",
                points: r.intervals.iter().map(|i| (i.start as f64, kw(i.commanded_w))).collect(),
            },
            Series {
                name: "delivered",
                colour: "#0f6e4f",
                points: r.intervals.iter().map(|i| (i.start as f64, kw(i.delivered_w))).collect(),
            },
        ],
        None => {
            let mut live: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for (t, w) in samples {
                if let Some(i) = event.intervals.iter().find(|i| (i.start..i.end).contains(t)) {
                    let entry = live.entry(i.start).or_default();
                    (entry.0, entry.1) = (entry.0 + w, entry.1 + 1);
                }
            }
            let mut series = Vec::new();
            if event.signal != Signal::Price {
                let points = event.intervals.iter().map(|i| (i.start as f64, kw(i.value))).collect();
                series.push(Series { name: "target", colour: "#5d6a63", points });
            }
            let points = live.iter().map(|(start, (sum, n))| (*start as f64, kw(sum / n))).collect();
            series.push(Series { name: "delivered (live)", colour: "#0f6e4f", points });
            series
        }
    };
    charts::lines("interval-chart", &series, "kW", |t| clock(t as i64))
}

/// The measurement: totals, then per group of devices (kinds of at least [`MIN_GROUP`]).
fn measurement(r: &EventReport) -> String {
    let mut out = format!(
        r#"<h2>Measurement</h2><div class="cards" id="measurement"><div class="card"><div class="label">Target</div><div class="value" data-wh="{}">{:.1} kWh</div></div><div class="card"><div class="label">Delivered</div><div class="value" data-wh="{}">{:.1} kWh</div></div><div class="card"><div class="label">Delivered share</div><div class="value" data-ratio="{}">{:.0} %</div></div><div class="card"><div class="label">Load baseline</div><div class="value">{}</div></div></div>"#,
        r.target_wh,
        r.target_wh as f64 / 1000.0,
        r.delivered_wh,
        r.delivered_wh as f64 / 1000.0,
        r.delivery_ratio,
        r.delivery_ratio * 100.0,
        esc(&r.load_baseline),
    );
    // (devices, baseline, metered, delivered, paid Wh, devices paid) per kind.
    let mut groups: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    for d in &r.devices {
        let g = groups.entry(d.kind.clone()).or_default();
        g[0] += 1;
        g[1] += d.intervals.iter().map(|i| i.baseline_wh).sum::<i64>();
        g[2] += d.intervals.iter().map(|i| i.metered_wh).sum::<i64>();
        g[3] += d.delivered_wh;
        g[4] += d.paid_wh as i64;
        g[5] += i64::from(d.paid_wh > 0);
    }
    // Kinds of fewer than MIN_GROUP devices are merged; a merged rest still that small joins
    // the smallest group shown (left out, the totals less the groups would reveal it).
    let add = |to: &mut [i64; 6], g: [i64; 6]| to.iter_mut().zip(g).for_each(|(a, b)| *a += b);
    let mut shown: BTreeMap<String, [i64; 6]> = BTreeMap::new();
    let mut rest = [0i64; 6];
    for (kind, g) in groups {
        if g[0] as usize >= MIN_GROUP {
            shown.insert(kind, g);
        } else {
            add(&mut rest, g);
        }
    }
    if rest[0] as usize >= MIN_GROUP {
        shown.insert("other kinds".to_string(), rest);
    } else if rest[0] > 0 {
        if let Some(smallest) = shown.iter().min_by_key(|(_, g)| g[0]).map(|(k, _)| k.clone()) {
            let g = shown.remove(&smallest).unwrap_or_default();
            let mut merged = g;
            add(&mut merged, rest);
            shown.insert(format!("{smallest} and other kinds"), merged);
        }
    }
    out += r#"<h2>By group of devices</h2><table id="groups"><tr><th>group</th><th class="num">devices</th><th class="num">baseline</th><th class="num">metered</th><th class="num">delivered</th><th class="num">paid</th><th class="num">devices paid</th></tr>"#;
    for (name, g) in &shown {
        out += &format!(
            r#"<tr data-group="{}"><td>{}</td><td class="num">{}</td><td class="num">{:.2} kWh</td><td class="num">{:.2} kWh</td><td class="num">{:.2} kWh</td><td class="num">{:.2} kWh</td><td class="num">{}</td></tr>"#,
            esc(name),
            esc(name),
            g[0],
            g[1] as f64 / 1000.0,
            g[2] as f64 / 1000.0,
            g[3] as f64 / 1000.0,
            g[4] as f64 / 1000.0,
            g[5]
        );
    }
    if shown.is_empty() {
        out +=
            &format!(r#"<tr><td colspan="7" class="note">Fewer than {MIN_GROUP} devices per group: only the totals are public.</td></tr>"#);
    }
    out += "</table>";
    out
}
