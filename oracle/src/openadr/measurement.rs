//! The oracle's measurement of an event as an OpenADR 3.0.1 report: served by the VTN
//! (`/openadr3/reports/mv-<event id>`) and posted by the VEN to the VTN the event came from.

use serde_json::{json, Value};

use ovpp_wire::dispatch::event::{iso_duration, rfc3339, GridEvent};
use ovpp_wire::dispatch::view::EventReport;

/// The resource of a measurement report that sums the fleet.
pub const AGGREGATE: &str = "AGGREGATED_REPORT";
/// The `clientName` of the oracle's measurement reports.
pub const MEASUREMENT_CLIENT: &str = "ovpp-oracle";
pub const MEASUREMENT_PREFIX: &str = "mv-";

/// The oracle's measurement of `event` as an OpenADR report.
pub fn measurement_report(report: &EventReport, event: &GridEvent, measured_at: i64) -> Value {
    let kwh = |wh: i64| wh as f64 / 1000.0;
    let period = |id: i64| {
        event.intervals.iter().find(|i| i.id == id).map(|i| json!({"start": rfc3339(i.start), "duration": iso_duration(i.end - i.start)}))
    };
    let interval = |id: i64, baseline: i64, metered: i64, delivered: i64| {
        json!({
            "id": id,
            "intervalPeriod": period(id),
            "payloads": [
                {"type": "BASELINE", "values": [kwh(baseline)]},
                {"type": "READING", "values": [kwh(metered)]},
                {"type": "DELTA_USAGE", "values": [kwh(delivered)]},
            ],
        })
    };
    let mut resources: Vec<Value> = report
        .devices
        .iter()
        .map(|d| {
            json!({
                "resourceName": d.device,
                "intervals": d.intervals.iter().map(|i| interval(i.id, i.baseline_wh, i.metered_wh, i.delivered_wh)).collect::<Vec<_>>(),
                // OVPP extensions: how this resource was measured.
                "baselineMethod": d.baseline,
                "baselineNote": d.note,
                "baselineAccuracy": d.accuracy,
                "deviceKind": d.kind,
            })
        })
        .collect();
    // The fleet's sums, per interval.
    let totals = event.intervals.iter().map(|i| {
        let sum = |f: fn(&ovpp_wire::dispatch::view::DeviceInterval) -> i64| {
            report.devices.iter().flat_map(|d| d.intervals.iter().filter(|di| di.id == i.id)).map(f).sum::<i64>()
        };
        interval(i.id, sum(|d| d.baseline_wh), sum(|d| d.metered_wh), sum(|d| d.delivered_wh))
    });
    resources.push(json!({"resourceName": AGGREGATE, "intervals": totals.collect::<Vec<_>>()}));
    json!({
        "id": format!("{MEASUREMENT_PREFIX}{}", event.id),
        "objectType": "REPORT",
        "createdDateTime": rfc3339(measured_at),
        "modificationDateTime": rfc3339(measured_at),
        "programID": event.program_id,
        "eventID": event.id,
        "clientName": MEASUREMENT_CLIENT,
        "reportName": "measurement and verification",
        "payloadDescriptors": [
            {"payloadType": "BASELINE", "readingType": "ESTIMATED", "units": "KWH"},
            {"payloadType": "READING", "readingType": "SUMMED", "units": "KWH"},
            {"payloadType": "DELTA_USAGE", "readingType": "SUMMED", "units": "KWH"},
        ],
        "resources": resources,
    })
}
