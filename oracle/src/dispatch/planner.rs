//! The dispatch round (`tick`): plans each active power event's current interval within
//! device limits, schedules storage for price curves, and measures what is due.

use std::collections::HashMap;

use ovpp::state::DeviceKind;

use super::plan::Direction;
use super::{allocate, drop_commands, plan, schedule, DispatchError, Dispatcher, State, PLAN_LEAD_SECS};
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::dispatch::command::{Command, Preferences};
use ovpp_wire::dispatch::event::{GridEvent, Signal, Status};
use ovpp_wire::dispatch::view::Plan;

impl Dispatcher {
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
