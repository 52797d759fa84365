//! Dispatch messages: grid programs and events (OpenADR 3 shaped, [`event`]) and the device
//! channel: commands, signed acks and preferences ([`command`]).

pub mod command;
pub mod event;
