//! Epochs: what each paid (emission, leaves, root, report hash, signers, the posting
//! transaction), its report to download, and how the rewards went by kind and region.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::charts;
use super::{esc, not_found, ovpp, time, PageQuery};
use crate::server::{ApiError, AppState};
use ovpp_wire::report::ReportLine;

pub async fn list(State(state): State<AppState>, Query(fragment): PageQuery) -> Response {
    let epochs = match state.store.epochs(100).await {
        Ok(e) => e,
        Err(e) => return super::error_page(&state, e.into(), &fragment),
    };
    let mut main = String::from(
        r#"<h1>Epochs</h1><table id="epochs"><tr><th>epoch</th><th>span (UTC)</th><th class="num">emission</th><th class="num">leaves</th><th>posted</th></tr>"#,
    );
    for e in &epochs {
        main += &format!(
            r#"<tr data-epoch="{0}"><td><a href="/ui/epochs/{0}">{0}</a></td><td>{1} – {2}</td><td class="num">{3}</td><td class="num">{4}</td><td>{5}</td></tr>"#,
            e.epoch,
            time(e.start_ts),
            time(e.end_ts),
            ovpp(e.emission),
            e.leaf_count,
            e.posted_at.map_or("not yet".to_string(), time)
        );
    }
    if epochs.is_empty() {
        main += r#"<tr><td colspan="5" class="note">No epoch closed yet.</td></tr>"#;
    }
    main += "</table>";
    super::page(&state, "Epochs", "epochs", main, Some(10), &fragment)
}

pub async fn show(State(state): State<AppState>, Path(epoch): Path<u64>, Query(fragment): PageQuery) -> Response {
    match main_of(&state, epoch).await {
        Ok(main) => super::page(&state, &format!("Epoch {epoch}"), "epochs", main, Some(10), &fragment),
        Err(e) => super::error_page(&state, e, &fragment),
    }
}

async fn main_of(state: &AppState, epoch: u64) -> Result<String, ApiError> {
    let record = state.store.epoch(epoch).await?.ok_or_else(|| not_found(format!("epoch {epoch} is not closed here")))?;
    let signatures = state.store.epoch_signatures(epoch).await?;
    let report = state.store.epoch_report(epoch).await?.unwrap_or_default();
    let lines: Vec<ReportLine> = report.lines().skip(1).filter_map(|l| serde_json::from_str(l).ok()).collect();
    let paid: u64 = lines.iter().map(|l| l.amount).sum();
    let signers: Vec<String> =
        signatures.iter().map(|(signer, _)| format!(r#"<li class="mono">{}</li>"#, bs58::encode(signer).into_string())).collect();
    let posted = match (&record.posted_signature, record.posted_at) {
        (Some(signature), Some(at)) => format!(r#"{} in <span class="mono" id="posting">{}</span>"#, time(at), esc(signature)),
        (None, Some(at)) => format!("{} (found posted; transaction not recorded here)", time(at)),
        _ => "not yet".to_string(),
    };
    let mut main = format!(
        r#"<h1>Epoch {epoch}</h1><div class="cards">
<div class="card"><div class="label">Emission</div><div class="value">{}</div></div>
<div class="card"><div class="label">Paid to devices</div><div class="value" id="paid" data-amount="{paid}">{}</div></div>
<div class="card"><div class="label">Leaves</div><div class="value">{}</div></div>
<div class="card"><div class="label">Signatures here</div><div class="value">{}</div></div></div>
<table><tr><th>span (UTC)</th><td>{} – {}</td></tr><tr><th>Merkle root</th><td class="mono">{}</td></tr><tr><th>report hash</th><td class="mono">{}</td></tr><tr><th>posted</th><td>{posted}</td></tr><tr><th>report</th><td><a href="/v1/epochs/{epoch}/report" download="epoch-{epoch}.jsonl">epoch-{epoch}.jsonl</a> (JSON lines; recompute it with <span class="mono">oracle/tools/verify_report.py</span>)</td></tr></table>
<h2>Signers</h2><ul>{}</ul>"#,
        ovpp(record.emission),
        ovpp(paid),
        record.leaf_count,
        signatures.len(),
        time(record.start_ts),
        time(record.end_ts),
        hex::encode(record.root),
        hex::encode(record.report_hash),
        if signers.is_empty() { "<li>none here</li>".to_string() } else { signers.join("") },
    );
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_region: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.amount > 0) {
        *by_kind.entry(line.kind.clone()).or_default() += line.amount;
        let mut key = [0u8; 32];
        let region = match bs58::decode(&line.device_key).onto(&mut key) {
            Ok(32) => state.registry.get(&key).await.map_or("unknown".to_string(), |d| d.region),
            _ => "unknown".to_string(),
        };
        *by_region.entry(region).or_default() += line.amount;
    }
    let bars = |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| (k.clone(), *v as f64 / 1e6)).collect::<Vec<_>>();
    main += &format!(
        r#"<div class="grid2"><section><h2>Rewards by kind</h2><div class="chart">{}</div></section><section><h2>Rewards by region</h2><div class="chart">{}</div></section></div>"#,
        charts::bars("rewards-by-kind", &bars(&by_kind), "OVPP", |v| format!("{v:.2} OVPP")),
        charts::bars("rewards-by-region", &bars(&by_region), "OVPP", |v| format!("{v:.2} OVPP")),
    );
    Ok(main)
}
