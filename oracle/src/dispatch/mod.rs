//! Dispatch, by job: grid intake ([`intake`]), the device channel of commands, acks and
//! preferences ([`channel`]), the dispatch round that plans and schedules ([`planner`],
//! with allocation across devices in [`plan`] and [`allocate`] and price-curve schedules in
//! [`schedule`]), measurement against baselines and the co-signer's re-measurement
//! ([`measuring`], [`measure`], [`baseline`]), what it shows ([`views`]) and its tables
//! ([`records`]). The messages are `ovpp_wire::dispatch`. `DISPATCHING.md` documents the
//! API and every rule.
//!
//! The [`Dispatcher`] holds the live state. Its `tick` runs every few seconds: it plans each
//! active power event's current interval (re-planning when the interval changes or a planned
//! device drops out: offline, opted out, refused, or no longer able to hold its set point),
//! schedules storage for price curves, and measures events once their last readings are in.

pub mod allocate;
pub mod baseline;
mod channel;
mod intake;
pub mod measure;
mod measuring;
pub mod plan;
mod planner;
pub mod records;
pub mod regression;
pub mod schedule;
pub mod series;
mod views;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Mutex;

use crate::fleet::Fleet;
use crate::registry::Registry;
use crate::store::{Store, StoreError};
use ovpp_wire::device::DeviceKey;
use ovpp_wire::dispatch::command::{Command, Preferences};
use ovpp_wire::dispatch::event::{EventError, GridEvent, Signal, WireProgram};
use ovpp_wire::dispatch::view::Plan;

/// How long before a power event starts its first interval is planned.
pub const PLAN_LEAD_SECS: i64 = 60;

#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Bearer tokens that may create programs and events; none: the grid API is closed.
    pub grid_tokens: Vec<String>,
    /// Extra planned above the target for non-delivery, basis points [default 1000 = 10 %].
    pub reserve_bps: u32,
    /// How long after an event's end it is measured (late telemetry) [default 300 s].
    pub measure_delay_secs: i64,
    /// Wear cost per kWh moved in price-curve schedules [default 0.02].
    pub wear_per_kwh: f64,
    /// Seconds between dispatch rounds [default 5].
    pub tick_secs: u64,
    /// Whether price schedules are measured and credited: when the scoring rules pay price
    /// response (v2). Under v1 they are not, as before v2 existed, so oracles of a v1
    /// network agree whatever their version.
    pub measure_price_schedules: bool,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            grid_tokens: vec![],
            reserve_bps: 1_000,
            measure_delay_secs: 300,
            wear_per_kwh: 0.02,
            tick_secs: 5,
            measure_price_schedules: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("no event {0}")]
    UnknownEvent(String),
    #[error("program {0:?} already exists")]
    ProgramExists(String),
    #[error("no program {0}")]
    UnknownProgram(String),
    #[error("program {0} has events, kept for their measurement with its baseline: it can be neither deleted nor given another baseline")]
    ProgramInUse(String),
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    #[error("no command {0} for this device, or it was already answered otherwise")]
    UnknownCommand(String),
    #[error("the signature does not verify with the device key")]
    BadSignature,
    #[error("device is not registered")]
    UnknownDevice,
    #[error("device is {0}: it takes no dispatch")]
    DeviceNotActive(&'static str),
    #[error("preferences sequence {0} is not newer than the stored one")]
    StalePreferences(u64),
    #[error("invalid preferences: {0}")]
    InvalidPreferences(String),
    #[error("event record {0} is not a finished event with its own commands")]
    InvalidRecord(String),
    #[error("event {0} is in a program whose baseline {1} this oracle does not know: upgrade it to measure the event")]
    UnknownBaseline(String, String),
    #[error("measuring event {0} failed: {1}")]
    Measuring(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A measured event as another oracle re-measures it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EventRecord {
    pub event: GridEvent,
    pub program: WireProgram,
    pub commands: Vec<(Command, Option<i64>)>,
    /// What the primary measured with besides: the co-signer measures with exactly this.
    #[serde(flatten)]
    pub measured_with: MeasuredWith,
    pub credited_at: i64,
}

/// What a measurement read besides the event, its commands and the devices' readings, kept
/// with its report: inputs like the event itself, which a co-signer takes from the record
/// rather than from its own store (where they may differ or arrive later).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct MeasuredWith {
    /// A price schedule's: power events' commands to its devices over its span, which
    /// override it there (`measure::Inputs::overriding`).
    #[serde(default)]
    pub overriding: Vec<(Command, Option<i64>)>,
    /// The region's hourly temperatures the baselines read (regression).
    #[serde(default)]
    pub temperatures: Vec<ovpp_wire::dispatch::weather::HourlyTemperature>,
}

#[derive(Default)]
struct DeviceHistory {
    /// Measured delivery ratios of the last events, newest last.
    ratios: VecDeque<f64>,
    /// When the device was last asked to serve, per event.
    served: VecDeque<i64>,
}

#[derive(Default)]
struct State {
    programs: BTreeMap<String, WireProgram>,
    events: BTreeMap<String, GridEvent>,
    plans: HashMap<String, Plan>,
    /// Price events scheduled, at their modification time.
    scheduled: HashMap<String, i64>,
    measured: HashSet<String>,
    /// Commands in force or upcoming, per device.
    commands: HashMap<DeviceKey, Vec<Command>>,
    /// Event of each command id (a power event's commands win over a schedule's).
    command_signal: HashMap<String, Signal>,
    prefs: HashMap<DeviceKey, Preferences>,
    refused: HashSet<(String, DeviceKey)>,
    history: HashMap<DeviceKey, DeviceHistory>,
}

pub struct Dispatcher {
    store: Store,
    registry: Arc<Registry>,
    fleet: Arc<Fleet>,
    pub settings: DispatchSettings,
    state: Mutex<State>,
    /// Held while measuring: a co-signer's re-measurement from a record and the rounds'
    /// own measurements never measure one event twice at once.
    measuring: Mutex<()>,
}

impl Dispatcher {
    /// Restores programs, events, live commands, refusals and preferences from the store.
    pub async fn load(
        store: Store,
        registry: Arc<Registry>,
        fleet: Arc<Fleet>,
        settings: DispatchSettings,
        now: i64,
    ) -> Result<Self, StoreError> {
        let dispatcher = Self { store, registry, fleet, settings, state: Mutex::new(State::default()), measuring: Mutex::new(()) };
        dispatcher.sync_from_store(now).await?;
        Ok(dispatcher)
    }

    /// Takes in what the store holds, which other processes sharing it may have written:
    /// programs, events (a changed one is planned afresh), measured events, the commands in
    /// force or upcoming, refusals and preferences. Plans and delivery history stay.
    pub async fn sync_from_store(&self, now: i64) -> Result<(), StoreError> {
        // Read under the lock: every change made here writes the store while holding it (or
        // before taking it), so what is read is never older than what is in memory.
        let mut state = self.state.lock().await;
        let programs = self.store.programs().await?;
        let events = self.store.events().await?;
        let measured = self.store.measured_events().await?;
        let live = self.store.live_commands(now).await?;
        let refused = self.store.refusals(now).await?;
        let prefs = self.store.preferences().await?;
        state.programs = programs.into_iter().map(|r| (r.id, r.program)).collect();
        for event in events {
            if state.events.get(&event.id).is_some_and(|old| old.modified != event.modified || old.cancelled != event.cancelled) {
                state.plans.remove(&event.id);
            }
            state.events.insert(event.id.clone(), event);
        }
        state.measured = measured.into_iter().collect();
        state.commands.clear();
        state.command_signal.clear();
        for command in live {
            if let Some(event) = state.events.get(&command.event_id) {
                let (signal, id, modified) = (event.signal, event.id.clone(), event.modified);
                state.command_signal.insert(command.id.clone(), signal);
                // Taken as scheduled at its current modification only when not known here: a
                // price event modified elsewhere is scheduled afresh by the leader.
                if signal == Signal::Price {
                    state.scheduled.entry(id).or_insert(modified);
                }
            }
            state.commands.entry(command.device_key).or_default().push(command);
        }
        state.refused = refused.into_iter().collect();
        state.prefs = prefs;
        Ok(())
    }
}

/// Drops the event's commands from memory (the store supersedes them in `issue_commands`).
fn drop_commands(state: &mut State, event_id: &str) {
    for commands in state.commands.values_mut() {
        commands.retain(|c| c.event_id != event_id);
    }
}
