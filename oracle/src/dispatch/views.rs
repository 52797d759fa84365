//! What dispatch shows: plans, event views and reports, and the flexibility forecast.

use std::collections::{BTreeMap, HashMap};

use ovpp::state::DeviceKind;

use super::plan::Direction;
use super::{baseline, plan, Dispatcher};
use crate::store::StoreError;
use ovpp_wire::device::DeviceKey;
use ovpp_wire::dispatch::command::Preferences;
use ovpp_wire::dispatch::event::{GridEvent, Signal};
use ovpp_wire::dispatch::view::{EventReport, EventView, Forecast, ForecastPoint, Plan, ReportTotals};

impl Dispatcher {
    pub async fn plan(&self, id: &str) -> Option<Plan> {
        self.state.lock().await.plans.get(id).cloned()
    }

    pub async fn report(&self, id: &str) -> Result<Option<EventReport>, StoreError> {
        self.store.event_report(id).await
    }

    /// Events with their status, live plan, and report once measured.
    pub async fn view(&self, now: i64) -> Vec<EventView> {
        let (events, plans) = {
            let state = self.state.lock().await;
            (state.events.values().cloned().collect::<Vec<_>>(), state.plans.clone())
        };
        let mut out = Vec::new();
        for event in events.iter().filter(|e| e.end() + 86_400 > now) {
            out.push(self.view_of(event, plans.get(&event.id), now).await);
        }
        out
    }

    /// One event's view (any event, however old), if it is known.
    pub async fn event_view(&self, id: &str, now: i64) -> Option<EventView> {
        let (event, plan) = {
            let state = self.state.lock().await;
            (state.events.get(id).cloned()?, state.plans.get(id).cloned())
        };
        Some(self.view_of(&event, plan.as_ref(), now).await)
    }

    async fn view_of(&self, event: &GridEvent, plan: Option<&Plan>, now: i64) -> EventView {
        let live_delivery_w = match plan {
            Some(plan) => Some(self.live_delivery(event, plan).await),
            None => None,
        };
        let report = self.store.event_report(&event.id).await.ok().flatten().map(|r| ReportTotals {
            target_wh: r.target_wh,
            delivered_wh: r.delivered_wh,
            delivery_ratio: r.delivery_ratio,
        });
        EventView {
            id: event.id.clone(),
            program_id: event.program_id.clone(),
            event_name: event.event_name.clone(),
            region: event.region.clone(),
            signal: event.signal.name().into(),
            start: event.start(),
            end: event.end(),
            status: event.status(now),
            plan: plan.cloned(),
            live_delivery_w,
            report,
        }
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
    pub async fn forecast(&self, now: i64, horizons_h: &[i64]) -> Result<Forecast, StoreError> {
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
                    .map(|((up, down), &hours)| ForecastPoint { hours, flex_up_w: up, flex_down_w: down })
                    .collect();
                (region, rows)
            })
            .collect())
    }
}

/// How far from the same time yesterday a reading may be to stand for it in the forecast.
const FORECAST_MATCH_SECS: i64 = 900;
