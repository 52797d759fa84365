//! Every HTTP body reads back as what was written, with its optional parts present and
//! absent: what the server writes, the CLI, co-signers, gateways and the simulator read.

use std::collections::BTreeMap;
use std::fmt::Debug;

use ovpp::protocol::RewardLeaf;
use ovpp_wire::dispatch::command::Command;
use ovpp_wire::dispatch::event::Status;
use ovpp_wire::dispatch::view::{
    AckAnswer, AckBody, BaselineAccuracy, CommandsAnswer, DeviceCommands, DeviceDelivery, DeviceInterval, EventReport, EventView,
    ForecastPoint, IntervalDelivery, Plan, ReportTotals,
};
use ovpp_wire::http::{
    BatchResult, BatchStatus, DeviceReadings, DeviceView, EpochSignature, EpochView, ErrorBody, FleetGroup, FleetSummary, FleetView,
    Health, Rewards, SignatureRecorded, TelemetryAnswer,
};
use ovpp_wire::telemetry::{GridResponse, Reading};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
    let text = serde_json::to_string(&value).expect("serializes");
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} does not read back: {e}"));
    assert_eq!(back, value, "{text}");
}

fn reading() -> Reading {
    Reading {
        interval_start: 1_790_000_000,
        interval_secs: 300,
        energy_generated_wh: 10,
        energy_consumed_wh: 20,
        energy_imported_wh: 30,
        energy_exported_wh: 0,
        average_power_w: -120,
        state_of_charge_permille: Some(500),
        storage_available_wh: None,
        flex_up_w: 1_000,
        flex_down_w: 2_000,
        grid_response: GridResponse::FollowingDispatch,
        online: true,
    }
}

#[test]
fn error_health_and_telemetry_answers() {
    round_trip(ErrorBody::new("unknown_device", "no registered device x"));
    round_trip(Health { status: "ok".into(), leader: true, dead_tasks: vec![], error: None });
    round_trip(Health {
        status: "failing".into(),
        leader: false,
        dead_tasks: vec!["dispatch".into()],
        error: Some(ErrorBody::new("task_stopped", "x").error),
    });
    round_trip(TelemetryAnswer {
        accepted: 1,
        rejected: 1,
        results: vec![
            BatchResult { status: BatchStatus::Accepted, reason: None, message: None },
            BatchResult { status: BatchStatus::Rejected, reason: Some("bad_signature".into()), message: Some("m".into()) },
        ],
    });
    // The documented shape, not only a self-consistent one.
    let error = serde_json::to_value(ErrorBody::new("c", "m")).unwrap();
    assert_eq!(error, serde_json::json!({"error": {"code": "c", "message": "m"}}));
}

#[test]
fn device_fleet_epoch_and_reward_views() {
    let device = DeviceView {
        device_key: "k".into(),
        owner: "o".into(),
        kind: "home_battery".into(),
        status: "active".into(),
        region: "DE-BY".into(),
        rated_power_w: 5_000,
        energy_capacity_wh: 10_000,
        readings_visible: false,
        readings: None,
    };
    round_trip(device.clone());
    round_trip(DeviceView {
        readings_visible: true,
        readings: Some(DeviceReadings { online: true, latest: Some(reading()), recent_readings: vec![reading()] }),
        ..device
    });
    let group = FleetGroup { devices: 3, devices_online: 2, soc_histogram: [0, 1, 0, 0, 1], ..FleetGroup::default() };
    let summary = FleetSummary {
        as_of: 5,
        totals: group.clone(),
        by_region: BTreeMap::from([("DE-BY".into(), group.clone())]),
        by_kind: BTreeMap::from([("ev".into(), group)]),
    };
    let event = EventView {
        id: "evt-1".into(),
        program_id: "p".into(),
        event_name: None,
        region: "DE-BY".into(),
        signal: "IMPORT_CAPACITY_LIMIT".into(),
        start: 1,
        end: 2,
        status: Status::Active,
        plan: None,
        live_delivery_w: None,
        report: None,
    };
    let plan = Plan { revision: 2, target_w: 100, planned_w: 110, devices: 3, ..Plan::default() };
    let full_event = EventView {
        event_name: Some("shed".into()),
        plan: Some(plan),
        live_delivery_w: Some(-5),
        report: Some(ReportTotals { target_wh: 10, delivered_wh: 9, delivery_ratio: 0.9 }),
        ..event.clone()
    };
    let forecast = BTreeMap::from([("DE-BY".into(), vec![ForecastPoint { hours: 1, flex_up_w: 2, flex_down_w: 3 }])]);
    round_trip(FleetView { summary, events: vec![event, full_event], forecast });
    let epoch = EpochView {
        epoch: 3,
        start_ts: 0,
        end_ts: 120,
        emission: 10,
        cumulative_total: 30,
        leaf_count: 2,
        root: "00".into(),
        report_hash: "11".into(),
        closed_at: 121,
        posted: false,
        posted_at: None,
        posted_signature: None,
        signatures: None,
    };
    round_trip(epoch.clone());
    round_trip(EpochView {
        posted: true,
        posted_at: Some(130),
        posted_signature: Some("sig".into()),
        signatures: Some(vec![EpochSignature { signer: "a".into(), signature: "b".into() }]),
        ..epoch
    });
    round_trip(SignatureRecorded { epoch: 3, signer: "a".into(), status: "recorded".into() });
    let leaf = RewardLeaf { epoch: 3, cumulative_amount: 7, reputation_bps: 5_000, ..RewardLeaf::default() };
    round_trip(Rewards { device_key: "k".into(), epoch: 3, root: "00".into(), leaf, proof: vec!["22".into()], chain_last_epoch: 4 });
}

#[test]
fn dispatch_answers_and_reports() {
    let command = Command {
        id: "c1".into(),
        event_id: "evt-1".into(),
        device_key: [7; 32],
        valid_from: 1,
        valid_until: 2,
        setpoint_w: -3_000,
        issued_at: 0,
    };
    let commands = DeviceCommands { now: 1, current: Some(command.clone()), commands: vec![command] };
    round_trip(CommandsAnswer {
        now: 1,
        devices: BTreeMap::from([("k".into(), commands), ("idle".into(), DeviceCommands { now: 1, current: None, commands: vec![] })]),
    });
    round_trip(AckBody { command_id: "c1".into(), accept: true, signature: "s".into(), reason: None });
    round_trip(AckBody { command_id: "c1".into(), accept: false, signature: "s".into(), reason: Some("charger offline".into()) });
    round_trip(AckAnswer { command_id: "c1".into(), accepted: false });
    let bare = DeviceDelivery {
        device: "k".into(),
        kind: "ev".into(),
        baseline: "METER_BEFORE".into(),
        note: None,
        baseline_days: vec![],
        adjustment: None,
        commanded_wh: 10,
        delivered_wh: 8,
        paid_wh: 8,
        delivery_ratio: 0.8,
        intervals: vec![],
        accuracy: None,
    };
    let full = DeviceDelivery {
        note: Some("n".into()),
        baseline_days: vec![20_000],
        adjustment: Some(1.1),
        intervals: vec![DeviceInterval { id: 0, baseline_wh: 20, metered_wh: 12, delivered_wh: 8 }],
        accuracy: Some(BaselineAccuracy { days: 10, rrmse: 0.12, bias: -0.01 }),
        ..bare.clone()
    };
    let report = EventReport {
        event_id: "evt-1".into(),
        program_id: "p".into(),
        region: "DE-BY".into(),
        signal: "IMPORT_CAPACITY_LIMIT".into(),
        start: 1,
        end: 2,
        load_baseline: "CAISO_10_IN_10".into(),
        target_wh: 10,
        commanded_wh: 11,
        delivered_wh: 9,
        delivery_ratio: 0.9,
        intervals: vec![IntervalDelivery { id: 0, start: 1, end: 2, target_w: 1, commanded_w: 1, delivered_w: 1 }],
        devices: vec![bare, full],
        credited_at: 300,
    };
    round_trip(report.clone());
    // As the public sees it: no devices.
    round_trip(EventReport { devices: vec![], ..report });
}
