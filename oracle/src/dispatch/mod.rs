//! Dispatch: answering grid needs with the fleet. So far the allocation step
//! ([`allocate`]); grid events in, commands to devices and measurement against baselines
//! come with the rest of the dispatch issue.

pub mod allocate;
