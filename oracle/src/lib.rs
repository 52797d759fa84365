//! OpenVPP oracle (crate `ovpp-oracle`).
//!
//! The signed telemetry wire format and ingest rules ([`telemetry`]), the chain interface
//! ([`chain`]), the device registry synced from chain ([`registry`]), durable storage
//! ([`store`]), the ingest pipeline ([`ingest`]), the fleet view ([`fleet`]), metrics and
//! the HTTP API ([`server`]), dispatch of grid events and measurement against baselines
//! ([`dispatch`]), OpenADR 3 as a VTN for grid operators and a VEN of utilities' VTNs
//! ([`openadr`]), the fleet simulator ([`simulate`]), contribution scoring ([`score`]),
//! epoch close and co-signing ([`epoch`]), the relayer ([`relay`]) and the epoch work of a
//! running oracle ([`epoch_job`]), all supervised by name ([`tasks`]).

pub mod accumulate;
pub mod claims;
pub mod config;
pub mod dispatch;
pub mod epoch;
pub mod epoch_job;
pub mod fleet;
pub mod ingest;
pub mod leader;
pub mod loads;
pub mod metrics;
pub mod openadr;
pub mod readings;
pub mod registry;
pub mod relay;
pub mod retention;
pub mod server;
pub mod service;
pub mod sessions;
pub mod store;
pub mod tasks;
pub mod weather;
