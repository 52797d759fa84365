//! Measuring events once their last readings are in, and the co-signer's re-measurement
//! of another oracle's events from its own readings.

use std::collections::HashMap;

use super::{baseline, measure, DispatchError, Dispatcher, EventRecord, MeasuredWith};
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::dispatch::command::Command;
use ovpp_wire::dispatch::event::GridEvent;
use ovpp_wire::dispatch::view::EventReport;

impl Dispatcher {
    /// Measures the events that ended at least `measure_delay_secs` ago: power events, and
    /// price schedules when the rules pay them.
    pub(super) async fn measure_due(&self, devices: &[RegisteredDevice], now: i64) -> Result<(), DispatchError> {
        let _measuring = self.measuring.lock().await;
        let due: Vec<GridEvent> = {
            let state = self.state.lock().await;
            state
                .events
                .values()
                .filter(|e| !state.measured.contains(&e.id) && e.end() + self.settings.measure_delay_secs <= now)
                .filter(|e| e.signal.is_power() || self.settings.measure_price_schedules)
                .filter(|e| !e.cancelled || e.modified > e.start())
                .cloned()
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        let by_key: HashMap<DeviceKey, RegisteredDevice> = devices.iter().map(|d| (d.key, d.clone())).collect();
        for event in due {
            // Measured elsewhere (another process on this database, or from a record).
            if self.store.event_report(&event.id).await?.is_some() {
                self.state.lock().await.measured.insert(event.id.clone());
                continue;
            }
            // Credited when measured (normally its end plus the delay): a measurement that
            // came late never changes an epoch that may have closed already.
            let credited_at = (event.end() + self.settings.measure_delay_secs).max(now);
            self.measure_event(&event, &by_key, None, credited_at, now).await?;
        }
        Ok(())
    }

    /// Measures one event from the stored readings and commands (and, from a co-signer's
    /// record, what the primary measured with; else what the store holds now), stores its
    /// report and the deliveries it pays (credited at `credited_at`), and updates the
    /// devices' reliability.
    async fn measure_event(
        &self,
        event: &GridEvent,
        devices: &HashMap<DeviceKey, RegisteredDevice>,
        given: Option<&MeasuredWith>,
        credited_at: i64,
        now: i64,
    ) -> Result<(), DispatchError> {
        let method = {
            let state = self.state.lock().await;
            match state.programs.get(&event.program_id).and_then(|p| p.baseline.clone()) {
                None => baseline::LoadMethod::Fixed(baseline::CAISO_10_IN_10),
                // A program names a method this oracle does not know (another oracle's newer
                // rules): measuring it with another would pay differently, so it is not measured.
                Some(name) => baseline::LoadMethod::named(&name).ok_or_else(|| DispatchError::UnknownBaseline(event.id.clone(), name))?,
            }
        };
        let commands = self.store.event_commands(&event.id).await?;
        let uses_days = commands.iter().any(|(c, _)| devices.get(&c.device_key).is_some_and(|d| measure::uses_day_matching(d.kind())));
        let lookback = if uses_days { measure::lookback_secs(&method) } else { baseline::METER_BEFORE_SECS };
        let measured_with = match given {
            Some(given) => given.clone(),
            None => MeasuredWith {
                overriding: self.overriding(event, &commands).await?,
                temperatures: match uses_days && method.uses_temperatures() {
                    true => self.store.temperatures(&event.region, event.start() - lookback, event.end()).await?,
                    false => Vec::new(),
                },
            },
        };
        let temperatures = measured_with.temperatures.iter().map(|h| (h.start, h.celsius)).collect();
        // The commanded devices' history: rolled-up daily profiles, and readings for the rest.
        let mut commanded: Vec<DeviceKey> = commands.iter().map(|(c, _)| c.device_key).collect();
        commanded.sort_unstable();
        commanded.dedup();
        let readings: Vec<crate::readings::StoredReading> = self
            .store
            .load_history(&commanded, event.start() - lookback, event.end())
            .await?
            .into_iter()
            .flat_map(|(key, loads)| loads.into_iter().map(move |l| l.as_reading(key)))
            .collect();
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
        // CPU-bound (a most-accurate baseline tests every method on every device): off the runtime.
        let (report, paid) = {
            let owned = event.clone();
            let overriding = measured_with.overriding.clone();
            let inputs = measure::Inputs { commands, overriding, devices: devices.clone(), readings, method, event_days, temperatures };
            tokio::task::spawn_blocking(move || measure::measure(&owned, &inputs))
                .await
                .map_err(|e| DispatchError::Measuring(event.id.clone(), e.to_string()))?
        };
        let report = EventReport { credited_at, ..report };
        self.store.save_event_report(&event.id, &report, &paid, &measured_with, credited_at, now).await?;
        tracing::info!(event = %event.id, target_wh = report.target_wh, delivered_wh = report.delivered_wh, "event measured");
        let mut state = self.state.lock().await;
        // Reliability (how much of a power event's command a device delivers) weighs power
        // dispatch; a price schedule's measurement says little about that.
        for device in report.devices.iter().filter(|d| d.commanded_wh > 0 && event.signal.is_power()) {
            let mut key = [0u8; 32];
            if bs58::decode(&device.device).onto(&mut key).ok() != Some(32) {
                continue; // written here from a 32-byte key, so never
            }
            let ratios = &mut state.history.entry(key).or_default().ratios;
            ratios.push_back(device.delivery_ratio.clamp(0.0, 1.0));
            while ratios.len() > 10 {
                ratios.pop_front();
            }
        }
        state.measured.insert(event.id.clone());
        Ok(())
    }

    /// A price schedule's overriding commands: power events' commands to its devices over
    /// its span; none for a power event.
    async fn overriding(
        &self,
        event: &GridEvent,
        commands: &[(Command, Option<i64>)],
    ) -> Result<Vec<(Command, Option<i64>)>, DispatchError> {
        if event.signal.is_power() {
            return Ok(Vec::new());
        }
        let mut devices: Vec<DeviceKey> = commands.iter().map(|(c, _)| c.device_key).collect();
        devices.sort_unstable();
        devices.dedup();
        let overlapping = self.store.commands_overlapping(&event.id, &devices, event.start(), event.end()).await?;
        let state = self.state.lock().await;
        Ok(overlapping.into_iter().filter(|(c, _)| state.events.get(&c.event_id).is_some_and(|e| e.signal.is_power())).collect())
    }

    /// What another oracle needs to re-measure the events credited in `[start, end)`: each
    /// event as validated, its program, every command it issued, what the measurement read
    /// besides (a price schedule's overriding commands, temperatures), and its credit time.
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
            let measured_with = self.store.measured_with(&id).await?;
            out.push(EventRecord { event, program, commands, measured_with, credited_at });
        }
        Ok(out)
    }

    /// A co-signer re-measures the primary's event with its own readings (the primary's
    /// numbers are never copied): the event and its commands are stored as they were, then
    /// measured here exactly as the primary measured, with what the record says it measured
    /// with besides. Events already measured are skipped.
    pub async fn remeasure(&self, record: &EventRecord, now: i64) -> Result<(), DispatchError> {
        let _measuring = self.measuring.lock().await;
        if self.state.lock().await.measured.contains(&record.event.id) || self.store.event_report(&record.event.id).await?.is_some() {
            return Ok(());
        }
        check_record(record, now)?;
        self.store.insert_program(&record.event.program_id, &record.program, now).await?;
        self.store.save_event(&record.event).await?;
        self.store.import_commands(&record.commands).await?;
        {
            let mut state = self.state.lock().await;
            state.programs.entry(record.event.program_id.clone()).or_insert_with(|| record.program.clone());
            state.events.insert(record.event.id.clone(), record.event.clone());
        }
        let devices: HashMap<DeviceKey, RegisteredDevice> = self.registry.all().await.into_iter().map(|d| (d.key, d)).collect();
        self.measure_event(&record.event, &devices, Some(&record.measured_with), record.credited_at, now).await
    }
}

/// A record a co-signer can measure: the event over, its commands its own, overriding
/// commands only for a price schedule, of other events, to its devices and over its span
/// (they only lower what it pays), and well-formed temperatures.
fn check_record(record: &EventRecord, now: i64) -> Result<(), DispatchError> {
    let event = &record.event;
    let devices: std::collections::HashSet<DeviceKey> = record.commands.iter().map(|(c, _)| c.device_key).collect();
    let overriding_ok = record.measured_with.overriding.iter().all(|(c, _)| {
        !event.signal.is_power()
            && c.event_id != event.id
            && devices.contains(&c.device_key)
            && c.valid_from < event.end()
            && c.valid_until > event.start()
    });
    let weather = ovpp_wire::dispatch::weather::TemperatureSeries { hours: record.measured_with.temperatures.clone() };
    if event.end() > now || record.commands.iter().any(|(c, _)| c.event_id != event.id) || !overriding_ok || weather.validate().is_err() {
        return Err(DispatchError::InvalidRecord(event.id.clone()));
    }
    Ok(())
}
