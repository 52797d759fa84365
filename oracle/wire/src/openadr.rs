//! OpenADR 3.0.1 objects besides programs and events ([`crate::dispatch::event`]): reports,
//! subscriptions, VENs and resources, with the spec's field names. Optional fields take
//! `null` as absent (OpenADR clients write every unset field as `null`); the VTN-provisioned
//! `id`, `objectType`, times and `venID` are ignored on input.

use serde::{Deserialize, Serialize};

use crate::dispatch::event::{IntervalPeriod, ValuesMap, WireInterval};

/// A report of a VEN (or of the oracle's measurement) on an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireReport {
    #[serde(rename = "programID")]
    pub program_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub client_name: String,
    #[serde(default)]
    pub report_name: Option<String>,
    #[serde(default)]
    pub payload_descriptors: Option<Vec<ReportPayloadDescriptor>>,
    pub resources: Vec<ReportResource>,
}

/// How to read a report's payloads of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportPayloadDescriptor {
    pub payload_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<i64>,
}

/// One resource's intervals in a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResource {
    pub resource_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_period: Option<IntervalPeriod>,
    pub intervals: Vec<WireInterval>,
}

/// A subscription: what to notify, where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSubscription {
    pub client_name: String,
    #[serde(rename = "programID")]
    pub program_id: String,
    pub object_operations: Vec<ObjectOperation>,
    #[serde(default)]
    pub targets: Option<Vec<ValuesMap>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOperation {
    /// `PROGRAM`, `EVENT`, `REPORT`, `SUBSCRIPTION`, `VEN`, `RESOURCE`.
    pub objects: Vec<String>,
    /// `READ`, `CREATE`, `UPDATE`, `DELETE`.
    pub operations: Vec<String>,
    pub callback_url: String,
    /// Sent back as `Authorization: Bearer` with each notification (always served, `null` when unset).
    #[serde(default)]
    pub bearer_token: Option<String>,
}

/// A VEN as registered at a VTN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireVen {
    pub ven_name: String,
    #[serde(default)]
    pub attributes: Option<Vec<ValuesMap>>,
    #[serde(default)]
    pub targets: Option<Vec<ValuesMap>>,
    /// Resources registered with the VEN (created as resource objects of their own).
    #[serde(default, skip_serializing)]
    pub resources: Option<Vec<WireResource>>,
}

/// A resource (a device or system) of a VEN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireResource {
    pub resource_name: String,
    #[serde(default)]
    pub attributes: Option<Vec<ValuesMap>>,
    #[serde(default)]
    pub targets: Option<Vec<ValuesMap>>,
}

/// The object types a subscription may name.
pub const OBJECT_TYPES: [&str; 6] = ["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"];
/// The operations a subscription may name: 3.0.1's, and 3.0.0's HTTP verbs (which clients
/// built on 3.0.0's models, such as `openadr3-client` 2.4, still write).
pub const OPERATIONS: [&str; 7] = ["READ", "CREATE", "UPDATE", "DELETE", "GET", "POST", "PUT"];
