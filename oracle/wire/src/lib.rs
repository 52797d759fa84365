//! `ovpp-wire`: every message between OpenVPP's off-chain parts, defined once. Signed
//! telemetry and the published ingest rules ([`telemetry`]), devices as the network knows
//! them ([`device`]), grid events, commands, acks and preferences ([`dispatch`]), OpenADR 3 reports,
//! subscriptions, VENs and resources ([`openadr`]), signed HTTP
//! requests ([`auth`]), the bodies of the oracle's HTTP answers ([`http`]), the published
//! scoring rules ([`score`]) and epoch report ([`report`]), what wallets exchange to sign in
//! and claim ([`wallet`]), and the clock every message
//! counts in ([`clock`]). The on-chain byte contracts stay in
//! `ovpp::protocol`; this crate builds on them.

pub mod auth;
pub mod clock;
pub mod device;
pub mod dispatch;
pub mod http;
pub mod openadr;
pub mod report;
pub mod score;
pub mod telemetry;
pub mod wallet;
