//! Measuring events once their last readings are in, and the co-signer's re-measurement
//! of another oracle's events from its own readings.

use std::collections::HashMap;

use super::{baseline, measure, DispatchError, Dispatcher, EventRecord};
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use ovpp_wire::dispatch::command::Command;
use ovpp_wire::dispatch::event::GridEvent;
use ovpp_wire::dispatch::view::EventReport;

impl Dispatcher {
    /// Measures the events (power events and price schedules) that ended at least
    /// `measure_delay_secs` ago.
    pub(super) async fn measure_due(&self, devices: &[RegisteredDevice], now: i64) -> Result<(), DispatchError> {
        let due: Vec<GridEvent> = {
            let state = self.state.lock().await;
            state
                .events
                .values()
                .filter(|e| !state.measured.contains(&e.id) && e.end() + self.settings.measure_delay_secs <= now)
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
            match state.programs.get(&event.program_id).and_then(|p| p.baseline.clone()) {
                None => baseline::LoadMethod::Fixed(baseline::CAISO_10_IN_10),
                // A program names a method this oracle does not know (another oracle's newer
                // rules): measuring it with another would pay differently, so it is not measured.
                Some(name) => baseline::LoadMethod::named(&name).ok_or_else(|| DispatchError::UnknownBaseline(event.id.clone(), name))?,
            }
        };
        let commands = self.store.event_commands(&event.id).await?;
        let overriding = self.overriding(event, &commands).await?;
        let uses_days = commands.iter().any(|(c, _)| devices.get(&c.device_key).is_some_and(|d| measure::uses_day_matching(d.kind())));
        let lookback = if uses_days { measure::lookback_secs(&method) } else { baseline::METER_BEFORE_SECS };
        let temperatures = match uses_days && method.uses_temperatures() {
            true => self.store.temperature_map(&event.region, event.start() - lookback, event.end()).await?,
            false => Default::default(),
        };
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
            let inputs = measure::Inputs { commands, overriding, devices: devices.clone(), readings, method, event_days, temperatures };
            tokio::task::spawn_blocking(move || measure::measure(&owned, &inputs))
                .await
                .map_err(|e| DispatchError::Measuring(event.id.clone(), e.to_string()))?
        };
        let report = EventReport { credited_at, ..report };
        self.store.save_event_report(&event.id, &report, &paid, credited_at, now).await?;
        tracing::info!(event = %event.id, target_wh = report.target_wh, delivered_wh = report.delivered_wh, "event measured");
        let mut state = self.state.lock().await;
        for device in report.devices.iter().filter(|d| d.commanded_wh > 0) {
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

    /// A price schedule's overriding commands (other events' commands to its devices over
    /// its span); none for a power event.
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
        Ok(self.store.commands_overlapping(&event.id, &devices, event.start(), event.end()).await?)
    }

    /// What another oracle needs to re-measure the events credited in `[start, end)`: each
    /// event as validated, its program, every command it issued (and, for a price schedule,
    /// the commands that overrode it), and its credit time.
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
            let overriding = self.overriding(&event, &commands).await?;
            // The region's temperatures over what a regression may have read (the most any
            // baseline looks back): weather is an input, like the event.
            let lookback = measure::lookback_secs(&baseline::LoadMethod::MostAccurate);
            let temperatures = self.store.temperatures(&event.region, event.start() - lookback, event.end()).await?;
            out.push(EventRecord { event, program, commands, overriding, temperatures, credited_at });
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
        if record.event.end() > now
            || record.commands.iter().any(|(c, _)| c.event_id != record.event.id)
            || record.overriding.iter().any(|(c, _)| c.event_id == record.event.id)
        {
            return Err(DispatchError::InvalidRecord(record.event.id.clone()));
        }
        self.store.insert_program(&record.event.program_id, &record.program, now).await?;
        self.store.save_event(&record.event).await?;
        self.store.import_commands(&record.commands).await?;
        // Overriding commands come from the primary (they only lower what the schedule pays),
        // and so does the weather it measured with (an input, like the event itself).
        self.store.import_commands(&record.overriding).await?;
        let weather = ovpp_wire::dispatch::weather::TemperatureSeries { hours: record.temperatures.clone() };
        weather.validate().map_err(|_| DispatchError::InvalidRecord(record.event.id.clone()))?;
        self.store.put_temperatures(&record.event.region, &weather.hours).await?;
        {
            let mut state = self.state.lock().await;
            state.programs.entry(record.event.program_id.clone()).or_insert_with(|| record.program.clone());
            state.events.insert(record.event.id.clone(), record.event.clone());
        }
        let devices: HashMap<DeviceKey, RegisteredDevice> = self.registry.all().await.into_iter().map(|d| (d.key, d)).collect();
        self.measure_event(&record.event, &devices, record.credited_at, now).await
    }
}
