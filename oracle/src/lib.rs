//! OpenVPP oracle (crate `ovpp-oracle`).
//!
//! Built so far: the signed telemetry wire format and ingest rules ([`telemetry`]), the
//! chain interface ([`chain`]), the device registry synced from chain ([`registry`]),
//! durable storage ([`store`]), the ingest pipeline ([`ingest`]), the fleet view
//! ([`fleet`]), metrics and the HTTP API ([`server`]). Still to come (oracle issues):
//! dispatch, measurement, scoring, epoch close and relaying.

pub mod chain;
pub mod config;
pub mod epoch;
pub mod fleet;
pub mod ingest;
pub mod metrics;
pub mod registry;
pub mod relay;
pub mod score;
pub mod server;
pub mod service;
pub mod simulate;
pub mod store;
pub mod telemetry;

pub use ovpp::{merkle, protocol};
