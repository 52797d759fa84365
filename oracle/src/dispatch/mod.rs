//! Dispatch: grid events in ([`event`]), allocation across devices ([`plan`],
//! [`allocate`]), price-curve schedules ([`schedule`]), commands out and signed
//! acknowledgements back ([`command`]), and measured delivery against baselines
//! ([`baseline`], [`measure`]). `DISPATCHING.md` documents the API and every rule.
//!
//! The [`Dispatcher`] holds the live state. Its `tick` runs every few seconds: it plans each
//! active power event's current interval (re-planning when the interval changes or a planned
//! device drops out: offline, opted out, refused, or no longer able to hold its set point),
//! schedules storage for price curves, and measures events once their last readings are in.

pub mod allocate;
pub mod baseline;

pub mod measure;
pub mod plan;
pub mod records;
pub mod schedule;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ovpp::state::DeviceKind;
use serde::Serialize;
use tokio::sync::Mutex;

use self::plan::Direction;
use crate::fleet::Fleet;
use crate::registry::Registry;
use crate::store::{Store, StoreError};
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::dispatch::command::{Ack, Command, DeviceSigned, Preferences};
use ovpp_wire::dispatch::event::{Context, EventError, GridEvent, Signal, Status, WireEvent, WireProgram};

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
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self { grid_tokens: vec![], reserve_bps: 1_000, measure_delay_secs: 300, wear_per_kwh: 0.02, tick_secs: 5 }
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
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    #[error("no command {0} for this device, or it was already answered")]
    UnknownCommand(String),
    #[error("the signature does not verify with the device key")]
    BadSignature,
    #[error("device is not registered")]
    UnknownDevice,
    #[error("preferences sequence {0} is not newer than the stored one")]
    StalePreferences(u64),
    #[error("invalid preferences: {0}")]
    InvalidPreferences(String),
    #[error("event record {0} is not a finished event with its own commands")]
    InvalidRecord(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A measured event as another oracle re-measures it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EventRecord {
    pub event: GridEvent,
    pub program: WireProgram,
    pub commands: Vec<(Command, Option<i64>)>,
    pub credited_at: i64,
}

/// The plan for an active power event's current interval.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub revision: u64,
    pub interval_start: i64,
    pub target_w: u64,
    pub planned_w: u64,
    pub shortfall_w: u64,
    pub devices: usize,
    /// What the eligible devices could give when it was made.
    pub capability_w: u64,
    /// Set point per device (signed like commands) and its command id.
    #[serde(skip)]
    pub setpoints: HashMap<DeviceKey, (i64, String)>,
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
}

/// What a device should do now, and what it is scheduled to do.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceCommands {
    pub now: i64,
    /// The command in force: a power event's set point over a schedule's.
    pub current: Option<Command>,
    /// Every command in force or upcoming, in time order.
    pub commands: Vec<Command>,
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
        let mut state = State {
            programs: store.programs().await?.into_iter().collect(),
            events: store.events().await?.into_iter().map(|e| (e.id.clone(), e)).collect(),
            ..State::default()
        };
        state.measured = store.measured_events().await?.into_iter().collect();
        for command in store.live_commands(now).await? {
            if let Some(event) = state.events.get(&command.event_id) {
                state.command_signal.insert(command.id.clone(), event.signal);
                if event.signal == Signal::Price {
                    state.scheduled.insert(event.id.clone(), event.modified);
                }
            }
            state.commands.entry(command.device_key).or_default().push(command);
        }
        state.refused = store.refusals(now).await?.into_iter().collect();
        state.prefs = store.preferences().await?;
        Ok(Self { store, registry, fleet, settings, state: Mutex::new(state) })
    }

    pub fn authorized(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.settings.grid_tokens.iter().any(|g| constant_time_eq(g.as_bytes(), t.as_bytes())))
    }

    pub async fn create_program(&self, program: WireProgram, now: i64) -> Result<(String, WireProgram), DispatchError> {
        let id = program.program_name.trim().to_string();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(DispatchError::InvalidProgram(
                "programName must be 1-64 characters of A-Z a-z 0-9 - _ . (it is the program's id)".into(),
            ));
        }
        if let Some(b) = &program.baseline {
            if baseline::day_matching(b).is_none() {
                return Err(DispatchError::InvalidProgram(format!(
                    "unknown baseline {b:?} (CAISO_10_IN_10, PJM_HIGH_4_OF_5 or NYISO_CBL)"
                )));
            }
        }
        if !self.store.insert_program(&id, &program, now).await? {
            return Err(DispatchError::ProgramExists(id));
        }
        self.state.lock().await.programs.insert(id.clone(), program.clone());
        Ok((id, program))
    }

    pub async fn programs(&self) -> Vec<(String, WireProgram)> {
        self.state.lock().await.programs.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    async fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self.registry.all().await.into_iter().map(|d| d.region).collect();
        regions.sort();
        regions.dedup();
        regions
    }

    /// Validates and stores a new event (or, with `id`, replaces a pending or active one).
    pub async fn put_event(&self, wire: &WireEvent, id: Option<&str>, now: i64) -> Result<GridEvent, DispatchError> {
        let regions = self.regions().await;
        let mut state = self.state.lock().await;
        let created = match id {
            Some(id) => {
                let old = state.events.get(id).ok_or_else(|| DispatchError::UnknownEvent(id.to_string()))?;
                match old.status(now) {
                    s @ (Status::Completed | Status::Cancelled) => return Err(EventError::Final(id.to_string(), s).into()),
                    _ => Some(old.created),
                }
            }
            None => None,
        };
        let id = id.map_or_else(|| format!("evt-{:016x}", rand::random::<u64>()), str::to_string);
        let programs: Vec<String> = state.programs.keys().cloned().collect();
        let others: Vec<GridEvent> = state.events.values().filter(|e| !e.cancelled && e.end() > now).cloned().collect();
        let mut event = wire.validate(&id, &Context { programs: &programs, regions: &regions, others: &others, now })?;
        if let Some(created) = created {
            event.created = created;
        }
        self.store.save_event(&event).await?;
        // A modified event is planned (or scheduled) afresh on the next tick.
        state.plans.remove(&id);
        state.events.insert(id, event.clone());
        Ok(event)
    }

    /// Cancels an event: its commands end now.
    pub async fn cancel_event(&self, id: &str, now: i64) -> Result<GridEvent, DispatchError> {
        let mut state = self.state.lock().await;
        let mut event = state.events.get(id).cloned().ok_or_else(|| DispatchError::UnknownEvent(id.to_string()))?;
        if let s @ (Status::Completed | Status::Cancelled) = event.status(now) {
            return Err(EventError::Final(id.to_string(), s).into());
        }
        event.cancelled = true;
        event.modified = now;
        drop_commands(&mut state, id);
        self.store.issue_commands(id, &[], now).await?;
        self.store.save_event(&event).await?;
        state.plans.remove(id);
        state.events.insert(id.to_string(), event.clone());
        Ok(event)
    }

    pub async fn events(&self) -> Vec<GridEvent> {
        self.state.lock().await.events.values().cloned().collect()
    }

    pub async fn event(&self, id: &str) -> Option<GridEvent> {
        self.state.lock().await.events.get(id).cloned()
    }

    pub async fn plan(&self, id: &str) -> Option<Plan> {
        self.state.lock().await.plans.get(id).cloned()
    }

    pub async fn report(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.store.event_report(id).await
    }

    pub async fn commands_for(&self, device: &DeviceKey, now: i64) -> DeviceCommands {
        self.commands_for_many(std::slice::from_ref(device), now).await.remove(0)
    }

    /// `commands_for` of each of `devices` (a gateway's query), under one lock.
    pub async fn commands_for_many(&self, devices: &[DeviceKey], now: i64) -> Vec<DeviceCommands> {
        let state = self.state.lock().await;
        devices
            .iter()
            .map(|device| {
                let mut commands: Vec<Command> =
                    state.commands.get(device).into_iter().flatten().filter(|c| c.valid_until > now).cloned().collect();
                commands.sort_by(|a, b| (a.valid_from, &a.id).cmp(&(b.valid_from, &b.id)));
                let current = commands
                    .iter()
                    .filter(|c| c.valid_from <= now)
                    .max_by_key(|c| (state.command_signal.get(&c.id).is_some_and(|s| s.is_power()), c.issued_at))
                    .cloned();
                DeviceCommands { now, current, commands }
            })
            .collect()
    }

    /// A device's signed answer to a command. A refusal takes the device out of the event.
    pub async fn ack(&self, ack: &Ack, signature: &[u8; 64], now: i64) -> Result<(), DispatchError> {
        let key = self.registry.verifying_keys(&[ack.device_key]).await.pop().flatten().ok_or(DispatchError::UnknownDevice)?;
        if !ack.verify(&key, signature) {
            return Err(DispatchError::BadSignature);
        }
        if !self.store.ack_command(&ack.command_id, &ack.device_key, ack.accept, signature, now).await? {
            return Err(DispatchError::UnknownCommand(ack.command_id.clone()));
        }
        if !ack.accept {
            let mut state = self.state.lock().await;
            let event =
                state.commands.get(&ack.device_key).into_iter().flatten().find(|c| c.id == ack.command_id).map(|c| c.event_id.clone());
            if let Some(event) = event {
                state.refused.insert((event, ack.device_key));
            }
        }
        Ok(())
    }

    pub async fn set_preferences(&self, prefs: Preferences, signature: &[u8; 64], now: i64) -> Result<(), DispatchError> {
        prefs.check(now).map_err(DispatchError::InvalidPreferences)?;
        let key = self.registry.verifying_keys(&[prefs.device_key]).await.pop().flatten().ok_or(DispatchError::UnknownDevice)?;
        if !prefs.verify(&key, signature) {
            return Err(DispatchError::BadSignature);
        }
        if !self.store.save_preferences(&prefs).await? {
            return Err(DispatchError::StalePreferences(prefs.sequence));
        }
        self.state.lock().await.prefs.insert(prefs.device_key, prefs);
        Ok(())
    }

    /// One round of dispatch work at `now`.
    pub async fn tick(&self, now: i64) -> Result<(), DispatchError> {
        let devices = self.registry.all().await;
        let mut state = self.state.lock().await;
        // Price curves are scheduled as soon as they are posted (day ahead); power events are
        // planned from `PLAN_LEAD_SECS` before they start, so devices hold their commands in time.
        let events: Vec<GridEvent> = state
            .events
            .values()
            .filter(|e| match e.status(now) {
                Status::Active => true,
                Status::Pending => e.signal == Signal::Price || e.start() - now <= PLAN_LEAD_SECS,
                _ => false,
            })
            .cloned()
            .collect();
        for event in &events {
            match event.signal {
                Signal::Price => {
                    if state.scheduled.get(&event.id) != Some(&event.modified) {
                        self.schedule_event(&mut state, event, &devices, now).await?;
                    }
                }
                _ => self.plan_event(&mut state, event, &devices, now).await?,
            }
        }
        state.plans.retain(|id, _| events.iter().any(|e| e.id == *id));
        for commands in state.commands.values_mut() {
            commands.retain(|c| c.valid_until > now);
        }
        state.commands.retain(|_, c| !c.is_empty());
        drop(state);
        self.measure_due(&devices, now).await
    }

    async fn plan_event(&self, state: &mut State, event: &GridEvent, devices: &[RegisteredDevice], now: i64) -> Result<(), DispatchError> {
        let Some(interval) = event.interval_at(now.max(event.start())).copied() else { return Ok(()) };
        let valid_from = now.max(interval.start);
        let direction = if event.signal == Signal::AbsorbSetpoint { Direction::Down } else { Direction::Up };
        let default_prefs = Preferences::default();
        let in_region: Vec<&RegisteredDevice> = devices.iter().filter(|d| d.region == event.region).collect();
        let latest = self.fleet.latest_readings(in_region.iter().map(|d| &d.key)).await;
        let region: Vec<_> = in_region.into_iter().zip(latest).collect();
        let weights: Vec<u32> = region.iter().map(|(d, _)| reliability(state, &d.key, now)).collect();
        // A device following this event's set point offers its flexibility on top of it.
        let holding = |key: &DeviceKey, latest: &Option<ovpp_wire::telemetry::Reading>| -> u64 {
            let following = latest.as_ref().is_some_and(|r| r.grid_response == ovpp_wire::telemetry::GridResponse::FollowingDispatch);
            let current = state.plans.get(&event.id).and_then(|p| p.setpoints.get(key)).map_or(0, |(w, _)| w.unsigned_abs());
            current * u64::from(following)
        };
        let eligible = plan::candidates(
            region.iter().zip(&weights).filter(|((d, _), _)| !state.refused.contains(&(event.id.clone(), d.key))).map(
                |((d, latest), w)| (*d, latest.as_ref(), state.prefs.get(&d.key).unwrap_or(&default_prefs), *w, holding(&d.key, latest)),
            ),
            direction,
            now,
            interval.end,
        );
        let target_w = match event.signal {
            Signal::ImportCapacityLimit => {
                // The region's metered net import, without what this event's devices are doing for it now.
                let import: i64 = region
                    .iter()
                    .filter_map(|(_, r)| r.as_ref())
                    .filter(|r| crate::fleet::is_online(r, now))
                    .map(|r| -i64::from(r.average_power_w))
                    .sum();
                let helping: i64 = state.plans.get(&event.id).map_or(0, |p| p.setpoints.values().map(|(w, _)| *w).sum());
                (import + helping - interval.value).max(0) as u64
            }
            _ => interval.value.max(0) as u64,
        };
        let capability_w: u64 = eligible.iter().map(|c| c.capacity_w).sum();
        if let Some(plan) = state.plans.get(&event.id) {
            let capable: HashMap<DeviceKey, u64> = eligible.iter().map(|c| (c.device, c.capacity_w)).collect();
            let holds = plan.interval_start == interval.start
                && plan.target_w == target_w
                && plan.setpoints.iter().all(|(k, (w, _))| capable.get(k).is_some_and(|&c| c >= w.unsigned_abs()))
                // A plan short of its goal is redone once the fleet can give noticeably more.
                && !(u128::from(plan.planned_w) < allocate::goal(target_w, self.settings.reserve_bps) && capability_w > plan.capability_w + plan.capability_w / 100);
            if holds {
                return Ok(());
            }
        }
        let allocation = allocate::allocate(&eligible, target_w, self.settings.reserve_bps);
        let revision = state.plans.get(&event.id).map_or(1, |p| p.revision + 1);
        drop_commands(state, &event.id);
        let commands: Vec<Command> = allocation
            .set_points
            .iter()
            .map(|(key, w)| Command::new(&event.id, revision, *key, valid_from, interval.end, direction.sign() * *w as i64, now))
            .collect();
        self.store.issue_commands(&event.id, &commands, now).await?;
        let setpoints = commands.iter().map(|c| (c.device_key, (c.setpoint_w, c.id.clone()))).collect();
        let first_time: Vec<DeviceKey> = commands
            .iter()
            .filter(|c| !state.plans.get(&event.id).is_some_and(|p| p.setpoints.contains_key(&c.device_key)))
            .map(|c| c.device_key)
            .collect();
        for key in first_time {
            let served = &mut state.history.entry(key).or_default().served;
            served.push_back(now);
            while served.len() > 32 {
                served.pop_front();
            }
        }
        tracing::info!(
            event = %event.id, revision, target_w, planned_w = allocation.planned_w, shortfall_w = allocation.shortfall_w,
            devices = commands.len(), "dispatch planned"
        );
        for c in commands {
            state.command_signal.insert(c.id.clone(), event.signal);
            state.commands.entry(c.device_key).or_default().push(c);
        }
        state.plans.insert(
            event.id.clone(),
            Plan {
                revision,
                interval_start: interval.start,
                target_w,
                planned_w: allocation.planned_w,
                shortfall_w: allocation.shortfall_w,
                devices: allocation.set_points.len(),
                capability_w,
                setpoints,
            },
        );
        Ok(())
    }

    /// Price curve: a schedule for every storage device of the region that is online.
    async fn schedule_event(
        &self,
        state: &mut State,
        event: &GridEvent,
        devices: &[RegisteredDevice],
        now: i64,
    ) -> Result<(), DispatchError> {
        drop_commands(state, &event.id);
        let remaining: Vec<_> = event.intervals.iter().filter(|i| i.end > now).copied().collect();
        let slot_secs = remaining.first().map_or(0, |i| i.end - i.start);
        let mut commands = Vec::new();
        if remaining.iter().all(|i| i.end - i.start == slot_secs) && slot_secs > 0 {
            let prices: Vec<f64> = remaining.iter().map(|i| i.value as f64 / 1e6).collect();
            let default_prefs = Preferences::default();
            let in_region: Vec<&RegisteredDevice> = devices.iter().filter(|d| d.region == event.region).collect();
            let latest = self.fleet.latest_readings(in_region.iter().map(|d| &d.key)).await;
            for (device, latest) in in_region.into_iter().zip(latest) {
                let Some(latest) = latest else { continue };
                let prefs = state.prefs.get(&device.key).unwrap_or(&default_prefs);
                let Some(storage) = storage_model(device, &latest, prefs, &remaining, now, self.settings.wear_per_kwh) else { continue };
                match schedule::schedule(&storage, &prices, slot_secs) {
                    Ok(s) => {
                        for (interval, w) in remaining.iter().zip(s.setpoints_w) {
                            if w != 0 {
                                commands.push(Command::new(
                                    &event.id,
                                    event.modified as u64,
                                    device.key,
                                    interval.start.max(now),
                                    interval.end,
                                    w,
                                    now,
                                ));
                            }
                        }
                    }
                    Err(e) => tracing::debug!(device = %bs58::encode(device.key).into_string(), error = %e, "no schedule"),
                }
            }
        } else {
            tracing::warn!(event = %event.id, "price curve with unequal intervals: not scheduled");
        }
        self.store.issue_commands(&event.id, &commands, now).await?;
        tracing::info!(event = %event.id, commands = commands.len(), "price schedule issued");
        for c in commands {
            state.command_signal.insert(c.id.clone(), Signal::Price);
            state.commands.entry(c.device_key).or_default().push(c);
        }
        state.scheduled.insert(event.id.clone(), event.modified);
        Ok(())
    }

    /// Measures the power events that ended at least `measure_delay_secs` ago.
    async fn measure_due(&self, devices: &[RegisteredDevice], now: i64) -> Result<(), DispatchError> {
        let due: Vec<GridEvent> = {
            let state = self.state.lock().await;
            state
                .events
                .values()
                .filter(|e| e.signal.is_power() && !state.measured.contains(&e.id) && e.end() + self.settings.measure_delay_secs <= now)
                .filter(|e| !e.cancelled || e.modified > e.start())
                .cloned()
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        let by_key: HashMap<DeviceKey, RegisteredDevice> = devices.iter().map(|d| (d.key, d.clone())).collect();
        for event in due {
            let credited_at = event.end() + self.settings.measure_delay_secs;
            self.measure_event(&event, &by_key, credited_at, now).await?;
        }
        Ok(())
    }

    /// Measures one event from the stored readings and commands, stores its report and the
    /// deliveries it pays (credited at `credited_at`), and updates the devices' reliability.
    async fn measure_event(
        &self,
        event: &GridEvent,
        devices: &HashMap<DeviceKey, RegisteredDevice>,
        credited_at: i64,
        now: i64,
    ) -> Result<(), DispatchError> {
        let method = {
            let state = self.state.lock().await;
            state
                .programs
                .get(&event.program_id)
                .and_then(|p| p.baseline.as_deref())
                .and_then(baseline::day_matching)
                .unwrap_or(baseline::CAISO_10_IN_10)
        };
        let commands = self.store.event_commands(&event.id).await?;
        let uses_days = commands.iter().any(|(c, _)| devices.get(&c.device_key).is_some_and(|d| measure::uses_day_matching(d.kind())));
        let lookback = if uses_days { measure::lookback_secs(&method) } else { baseline::METER_BEFORE_SECS };
        let readings = self.store.readings_between(event.start() - lookback, event.end()).await?;
        let event_days: std::collections::BTreeSet<i64> = {
            let state = self.state.lock().await;
            state
                .events
                .values()
                .filter(|e| {
                    e.region == event.region && e.signal.is_power() && e.id != event.id && !(e.cancelled && e.modified <= e.start())
                })
                .flat_map(|e| e.start().div_euclid(86_400)..=(e.end() - 1).div_euclid(86_400))
                .collect()
        };
        let (report, paid) = measure::measure(event, &commands, devices, &readings, &method, &event_days);
        let mut body = serde_json::to_value(&report).expect("report serializes");
        body["credited_at"] = serde_json::json!(credited_at);
        self.store.save_event_report(&event.id, &body, &paid, credited_at, now).await?;
        tracing::info!(event = %event.id, target_wh = report.target_wh, delivered_wh = report.delivered_wh, "event measured");
        let mut state = self.state.lock().await;
        for device in report.devices.iter().filter(|d| d.commanded_wh > 0) {
            let ratios = &mut state.history.entry(device.key).or_default().ratios;
            ratios.push_back(device.delivery_ratio.clamp(0.0, 1.0));
            while ratios.len() > 10 {
                ratios.pop_front();
            }
        }
        state.measured.insert(event.id.clone());
        Ok(())
    }

    /// What another oracle needs to re-measure the events credited in `[start, end)`: each
    /// event as validated, its program, every command it issued, and its credit time.
    pub async fn records_credited(&self, start: i64, end: i64) -> Result<Vec<EventRecord>, DispatchError> {
        let mut out = Vec::new();
        for (id, credited_at) in self.store.events_credited(start, end).await? {
            let (event, program) = {
                let state = self.state.lock().await;
                let Some(event) = state.events.get(&id).cloned() else { continue };
                let Some(program) = state.programs.get(&event.program_id).cloned() else { continue };
                (event, program)
            };
            let commands = self.store.event_commands(&id).await?;
            out.push(EventRecord { event, program, commands, credited_at });
        }
        Ok(out)
    }

    /// A co-signer re-measures the primary's event with its own readings (the primary's
    /// numbers are never copied): the event and its commands are stored as they were, then
    /// measured here exactly as the primary measures. Events already measured are skipped.
    pub async fn remeasure(&self, record: &EventRecord, now: i64) -> Result<(), DispatchError> {
        if self.state.lock().await.measured.contains(&record.event.id) {
            return Ok(());
        }
        if record.event.end() > now || record.commands.iter().any(|(c, _)| c.event_id != record.event.id) {
            return Err(DispatchError::InvalidRecord(record.event.id.clone()));
        }
        self.store.insert_program(&record.event.program_id, &record.program, now).await?;
        self.store.save_event(&record.event).await?;
        self.store.import_commands(&record.commands).await?;
        {
            let mut state = self.state.lock().await;
            state.programs.entry(record.event.program_id.clone()).or_insert_with(|| record.program.clone());
            state.events.insert(record.event.id.clone(), record.event.clone());
        }
        let devices: HashMap<DeviceKey, RegisteredDevice> = self.registry.all().await.into_iter().map(|d| (d.key, d)).collect();
        self.measure_event(&record.event, &devices, record.credited_at, now).await
    }

    /// Events with their status, live plan, and report once measured.
    pub async fn view(&self, now: i64) -> Vec<serde_json::Value> {
        let (events, plans) = {
            let state = self.state.lock().await;
            (state.events.values().cloned().collect::<Vec<_>>(), state.plans.clone())
        };
        let mut out = Vec::new();
        for event in events.iter().filter(|e| e.end() + 86_400 > now) {
            let mut entry = serde_json::json!({
                "id": event.id, "programID": event.program_id, "eventName": event.event_name, "region": event.region,
                "type": event.signal.name(), "start": event.start(), "end": event.end(), "status": event.status(now),
            });
            if let Some(plan) = plans.get(&event.id) {
                entry["plan"] = serde_json::to_value(plan).unwrap_or_default();
                entry["live_delivery_w"] = serde_json::json!(self.live_delivery(event, plan).await);
            }
            if let Ok(Some(report)) = self.store.event_report(&event.id).await {
                entry["report"] = serde_json::json!({
                    "target_wh": report["target_wh"], "delivered_wh": report["delivered_wh"], "delivery_ratio": report["delivery_ratio"],
                });
            }
            out.push(entry);
        }
        out
    }

    /// A live estimate: each planned device's latest power against its average before the
    /// event (meter before), in the event's direction. The report measures it properly.
    async fn live_delivery(&self, event: &GridEvent, plan: &Plan) -> i64 {
        let sign = if event.signal == Signal::AbsorbSetpoint { -1 } else { 1 };
        let mut total = 0i64;
        for key in plan.setpoints.keys() {
            let recent = self.fleet.recent(key).await;
            let Some(latest) = recent.first().filter(|r| r.interval_start >= event.start()) else { continue };
            let before: Vec<i64> = recent
                .iter()
                .filter(|r| r.interval_start < event.start() && r.interval_start >= event.start() - baseline::METER_BEFORE_SECS)
                .map(|r| i64::from(r.average_power_w))
                .collect();
            if before.is_empty() {
                continue;
            }
            let rate = before.iter().sum::<i64>() / before.len() as i64;
            total += sign * (i64::from(latest.average_power_w) - rate);
        }
        total
    }

    /// Flexibility per region the fleet can offer at each of the next `horizons_h` hours.
    /// Storage (batteries, C&I, EMS) is held at its latest state, limited by its energy above
    /// reserve (up) or its room (down) over the horizon. What follows a daily rhythm (PV,
    /// EVs and their chargers, meters) offers what it offered at the same time yesterday
    /// (persistence), if it was online then.
    pub async fn forecast(&self, now: i64, horizons_h: &[i64]) -> Result<BTreeMap<String, Vec<serde_json::Value>>, StoreError> {
        let devices = self.registry.all().await;
        let prefs = self.state.lock().await.prefs.clone();
        let default_prefs = Preferences::default();
        let mut yesterday: Vec<HashMap<DeviceKey, ovpp_wire::telemetry::Reading>> = Vec::with_capacity(horizons_h.len());
        for h in horizons_h {
            let at = now + h * 3600 - 86_400;
            let mut nearest: HashMap<DeviceKey, ovpp_wire::telemetry::Reading> = HashMap::new();
            for r in self.store.readings_between(at - FORECAST_MATCH_SECS, at + FORECAST_MATCH_SECS).await? {
                let closer =
                    nearest.get(&r.device_key).is_none_or(|n| (r.reading.interval_start - at).abs() < (n.interval_start - at).abs());
                if closer {
                    nearest.insert(r.device_key, r.reading);
                }
            }
            yesterday.push(nearest);
        }
        let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let latest_readings = self.fleet.latest_readings(devices.iter().map(|d| &d.key)).await;
        for (device, latest) in devices.iter().zip(latest_readings) {
            let p = prefs.get(&device.key).unwrap_or(&default_prefs);
            // Stationary storage keeps its state; EVs come and go with a daily rhythm.
            let held = plan::is_storage(device.kind()) && device.kind() != DeviceKind::Ev;
            let entry = out.entry(device.region.clone()).or_insert_with(|| vec![(0, 0); horizons_h.len()]);
            for ((slot, h), then) in entry.iter_mut().zip(horizons_h).zip(&yesterday) {
                let at = now + h * 3600;
                let (reading, from, until) = if held {
                    (latest, now, at)
                } else {
                    // Yesterday's reading, as if it had just been sent at the horizon.
                    let shifted = then
                        .get(&device.key)
                        .map(|r| ovpp_wire::telemetry::Reading { interval_start: at - i64::from(r.interval_secs), ..*r });
                    (shifted, at, at + 3600)
                };
                if p.opted_out(at) {
                    continue;
                }
                slot.0 += plan::capability(device, reading.as_ref(), p, Direction::Up, from, until, 0);
                slot.1 += plan::capability(device, reading.as_ref(), p, Direction::Down, from, until, 0);
            }
        }
        Ok(out
            .into_iter()
            .map(|(region, values)| {
                let rows = values
                    .into_iter()
                    .zip(horizons_h)
                    .map(|((up, down), h)| serde_json::json!({"hours": h, "flex_up_w": up, "flex_down_w": down}))
                    .collect();
                (region, rows)
            })
            .collect())
    }
}

/// How far from the same time yesterday a reading may be to stand for it in the forecast.
const FORECAST_MATCH_SECS: i64 = 900;

/// Drops the event's commands from memory (the store supersedes them in `issue_commands`).
fn drop_commands(state: &mut State, event_id: &str) {
    for commands in state.commands.values_mut() {
        commands.retain(|c| c.event_id != event_id);
    }
}

fn reliability(state: &State, key: &DeviceKey, now: i64) -> u32 {
    let history = state.history.get(key);
    let ratio = history.filter(|h| !h.ratios.is_empty()).map(|h| h.ratios.iter().sum::<f64>() / h.ratios.len() as f64);
    let recent = history.map_or(0, |h| h.served.iter().filter(|&&t| t > now - 86_400).count());
    plan::reliability_ppm(ratio, recent)
}

/// The storage model of a device for price schedules (storage kinds and EVs with a state of
/// charge), or `None` for devices that cannot shift energy.
fn storage_model(
    device: &RegisteredDevice,
    latest: &ovpp_wire::telemetry::Reading,
    prefs: &Preferences,
    slots: &[ovpp_wire::dispatch::event::EventInterval],
    now: i64,
    wear: f64,
) -> Option<schedule::Storage> {
    let kind = device.kind();
    if !plan::is_storage(kind) || !crate::fleet::is_online(latest, now) || prefs.opted_out(now) {
        return None;
    }
    let soc = latest.state_of_charge_permille?;
    let usable = u64::from(latest.storage_available_wh.unwrap_or(device.profile.energy_capacity_wh as u32));
    let needs = match (kind, prefs.departure) {
        (DeviceKind::Ev, Some(departure)) => slots
            .iter()
            .position(|s| s.end >= departure)
            .map(|i| (i + 1, usable * u64::from(prefs.departure_soc_permille.min(1000)) / 1000)),
        _ => None,
    };
    Some(schedule::Storage {
        capacity_wh: usable,
        power_w: device.profile.rated_power_w,
        stored_wh: usable * u64::from(soc.min(1000)) / 1000,
        reserve_wh: usable * u64::from(prefs.reserve_soc_permille.min(1000)) / 1000,
        efficiency: 0.95,
        wear_per_kwh: wear,
        can_discharge: kind != DeviceKind::Ev,
        needs,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
