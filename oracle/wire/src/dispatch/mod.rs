//! Dispatch messages: grid programs and events (OpenADR 3 shaped, [`event`]) and the device
//! channel: commands, signed acks and preferences ([`command`]); and what the oracle shows of it ([`view`]).

pub mod command;
pub mod event;
pub mod view;
pub mod weather;
