//! OpenVPP oracle (crate `ovpp-oracle`).
//!
//! Built so far: the signed telemetry wire format and the ingest rules ([`telemetry`]).
//! Still to come (oracle issues): the HTTP ingest service and durable storage, registry
//! sync from the chain, the fleet view, dispatch, measurement, scoring, epoch close and
//! relaying. The shared on-chain definitions are re-exported from the program crate.

pub mod telemetry;

pub use ovpp::{merkle, protocol};
