//! A fleet simulator: deterministic device keys and physically plausible, signed telemetry
//! for every device kind. It drives the demo and the benchmarks, and everything it sends
//! must pass ingest (tested). Floating point is fine here: nothing on-chain depends on it.

use std::f64::consts::PI;

use ed25519_dalek::SigningKey;
use ovpp::state::{DeviceKind, DeviceStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use ovpp_wire::dispatch::command::{Ack, DeviceSigned};
use ovpp_wire::dispatch::view::{AckAnswer, AckBody, CommandsAnswer};
use ovpp_wire::http::TelemetryAnswer;
use ovpp_wire::telemetry::validate::DeviceProfile;
use ovpp_wire::telemetry::{GridResponse, Reading, SignedBatch, TelemetryBatch};

/// One simulated device: its key, what it declares on-chain, and its evolving state.
pub struct SimDevice {
    pub key: SigningKey,
    pub profile: DeviceProfile,
    pub region: &'static str,
    soc: f64,
    cloud: f64,
    rng: StdRng,
    /// EV: minutes after midnight it arrives home and leaves.
    ev_arrive_min: f64,
    ev_leave_min: f64,
    /// The dispatch command the device follows (W, + deliver / - absorb) until the given time.
    pub dispatch: Option<(i64, i64)>,
}

/// Declared parameters per kind, as a typical installation.
pub fn typical_profile(kind: DeviceKind) -> DeviceProfile {
    let (rated_power_w, energy_capacity_wh) = match kind {
        DeviceKind::Ev => (11_000, 77_000),
        DeviceKind::EvCharger => (11_000, 0),
        DeviceKind::HomeBattery => (5_000, 13_500),
        DeviceKind::CiStorage => (250_000, 500_000),
        DeviceKind::RooftopSolar => (8_000, 0),
        DeviceKind::SmartMeter => (24_000, 0),
        DeviceKind::EnergyManagementSystem => (15_000, 10_000),
    };
    DeviceProfile { kind, status: DeviceStatus::Active, rated_power_w, energy_capacity_wh }
}

/// The kind mix of a residential-heavy fleet, in order of `index % 10`.
const MIX: [DeviceKind; 10] = [
    DeviceKind::RooftopSolar,
    DeviceKind::RooftopSolar,
    DeviceKind::HomeBattery,
    DeviceKind::HomeBattery,
    DeviceKind::Ev,
    DeviceKind::EvCharger,
    DeviceKind::SmartMeter,
    DeviceKind::SmartMeter,
    DeviceKind::EnergyManagementSystem,
    DeviceKind::CiStorage,
];

const REGIONS: [&str; 3] = ["DE-BY", "DE-BW", "DE-NW"];

pub struct Fleet {
    pub devices: Vec<SimDevice>,
    /// Latitude in degrees, for the sun.
    pub latitude: f64,
    /// Longitude in degrees east: solar time = UTC + longitude / 15 h.
    pub longitude: f64,
}

impl Fleet {
    /// `n` devices with keys derived from `seed` (the same seed gives the same keys, so a
    /// registered simulated fleet can be restarted).
    pub fn new(n: usize, seed: u64, latitude: f64, longitude: f64) -> Self {
        let devices = (0..n)
            .map(|i| {
                let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let key = SigningKey::from_bytes(&rng.gen());
                let kind = MIX[i % MIX.len()];
                SimDevice {
                    key,
                    profile: typical_profile(kind),
                    region: REGIONS[i % REGIONS.len()],
                    soc: rng.gen_range(0.3..0.8),
                    cloud: rng.gen_range(0.6..1.0),
                    ev_arrive_min: rng.gen_range(16.5..20.0) * 60.0,
                    ev_leave_min: rng.gen_range(6.5..8.5) * 60.0,
                    dispatch: None,
                    rng,
                }
            })
            .collect();
        Self { devices, latitude, longitude }
    }

    /// One signed batch per device for the interval `[start, start + secs)`; the sequence
    /// is the interval's end, so it only ever grows, across restarts too.
    pub fn tick(&mut self, start: i64, secs: u32) -> Vec<SignedBatch> {
        let readings = self.readings(start, secs);
        self.devices
            .iter()
            .zip(readings)
            .map(|(d, reading)| {
                let batch =
                    TelemetryBatch { device_key: d.device_key(), sequence: (start + i64::from(secs)) as u64, readings: vec![reading] };
                batch.sign(&d.key)
            })
            .collect()
    }

    /// Every device's telemetry of `[from, to)` in `secs` readings, as few signed batches as
    /// ingest takes (`per_batch` readings each): a device's backlog, or the history a new
    /// network starts with. Sequences are each batch's end, as [`Self::tick`]'s.
    pub fn history(&mut self, from: i64, to: i64, secs: u32, per_batch: usize) -> Vec<SignedBatch> {
        let mut readings: Vec<Vec<Reading>> = vec![Vec::new(); self.devices.len()];
        let mut t = from;
        while t < to {
            for (all, reading) in readings.iter_mut().zip(self.readings(t, secs)) {
                all.push(reading);
            }
            t += i64::from(secs);
        }
        let mut batches = Vec::new();
        for (device, all) in self.devices.iter().zip(readings) {
            for chunk in all.chunks(per_batch.max(1)) {
                let end = chunk.last().map_or(0, |r| r.interval_start + i64::from(r.interval_secs));
                let batch = TelemetryBatch { device_key: device.device_key(), sequence: end as u64, readings: chunk.to_vec() };
                batches.push(batch.sign(&device.key));
            }
        }
        batches
    }

    /// Every device's reading for the interval `[start, start + secs)`, unsigned (for a
    /// gateway, which signs and sends them itself).
    pub fn readings(&mut self, start: i64, secs: u32) -> Vec<Reading> {
        let (latitude, longitude) = (self.latitude, self.longitude);
        self.devices
            .iter_mut()
            .map(|d| {
                let celsius = temperature_c(d.region, start + i64::from(secs / 2), longitude);
                d.step(start, secs, latitude, longitude, celsius)
            })
            .collect()
    }
}

/// Clear-sky fraction of peak PV output at `t` (unix s): sun elevation from the day of
/// year and solar time (Cooper's declination), zero at night.
pub fn clear_sky_fraction(t: i64, latitude: f64, longitude: f64) -> f64 {
    // Day of the year: 1970-01-01 was a 1 January, and years average 365.2425 days.
    let day = (t.div_euclid(86_400) as f64).rem_euclid(365.2425);
    let declination = 23.44f64.to_radians() * (2.0 * PI * (284.0 + day) / 365.0).sin();
    let solar_hours = (t.rem_euclid(86_400) as f64 / 3600.0 + longitude / 15.0).rem_euclid(24.0);
    let hour_angle = (solar_hours - 12.0) * 15f64.to_radians();
    let lat = latitude.to_radians();
    let sin_elevation = lat.sin() * declination.sin() + lat.cos() * declination.cos() * hour_angle.cos();
    sin_elevation.max(0.0).powf(1.15)
}

/// Outdoor temperature of `region` at `t` (unix s), °C, at a longitude (solar time): a
/// Central European year (9.5 °C mean, ±9.5 °C, coldest in mid-January), a day (±4 °C,
/// warmest mid-afternoon), and weather that drifts over days, differently per region. It
/// is what the local network feeds the oracle as its weather input.
pub fn temperature_c(region: &str, t: i64, longitude: f64) -> f64 {
    let day = t as f64 / 86_400.0;
    let solar_hours = (t.rem_euclid(86_400) as f64 / 3600.0 + longitude / 15.0).rem_euclid(24.0);
    // 1970-01-01 is day 0; the coldest day is about 15 January.
    let season = -9.5 * (2.0 * PI * (day.rem_euclid(365.2425) - 15.0) / 365.2425).cos();
    let daily = 4.0 * (2.0 * PI * (solar_hours - 9.0) / 24.0).sin();
    let phase = region.bytes().map(f64::from).sum::<f64>();
    let weather = 3.0 * (2.0 * PI * day / 4.3 + phase).sin() + 2.0 * (2.0 * PI * day / 9.1 + 2.0 * phase).sin();
    9.5 + season + daily + weather
}

/// A home's heat pump: 80 W per degree below 15 °C outside.
pub fn heating_w(celsius: f64) -> f64 {
    80.0 * (15.0 - celsius).max(0.0)
}

/// Household load in W at local hour `h`: base load plus morning and evening peaks.
pub fn household_load_w(h: f64) -> f64 {
    let bump = |center: f64, width: f64, height: f64| height * (-((h - center) / width).powi(2)).exp();
    300.0 + bump(7.5, 1.0, 900.0) + bump(19.0, 1.8, 1_700.0) + bump(13.0, 2.0, 300.0)
}

impl SimDevice {
    pub fn device_key(&self) -> ovpp_wire::device::DeviceKey {
        self.key.verifying_key().to_bytes()
    }

    /// What the owner declares on-chain when registering the device.
    pub fn params(&self) -> ovpp::instructions::DeviceParams {
        let mut region = [0u8; 8];
        region[..self.region.len()].copy_from_slice(self.region.as_bytes());
        ovpp::instructions::DeviceParams {
            rated_power_w: self.profile.rated_power_w,
            energy_capacity_wh: self.profile.energy_capacity_wh,
            region,
            location_cell: 0,
        }
    }

    /// The device as the registry knows it once `owner` has registered it on-chain.
    pub fn as_registered(&self, owner: anchor_lang::prelude::Pubkey) -> ovpp_wire::device::RegisteredDevice {
        ovpp_wire::device::RegisteredDevice {
            key: self.device_key(),
            owner,
            profile: self.profile,
            region: self.region.to_string(),
            location_cell: 0,
        }
    }

    fn step(&mut self, start: i64, secs: u32, latitude: f64, longitude: f64, celsius: f64) -> Reading {
        let hours = f64::from(secs) / 3600.0;
        let mid = start + i64::from(secs / 2);
        let local_h = (mid.rem_euclid(86_400) as f64 / 3600.0 + longitude / 15.0).rem_euclid(24.0);
        // Clouds drift as an AR(1) process between 0.15 and 1.
        self.cloud = (0.9 * self.cloud + 0.1 * self.rng.gen_range(0.15..1.0f64)).clamp(0.15, 1.0);
        let rated = self.profile.rated_power_w as f64;
        let capacity = self.profile.energy_capacity_wh as f64;
        let noise = self.rng.gen_range(0.9..1.1);
        let pv_fraction = clear_sky_fraction(mid, latitude, longitude) * self.cloud;
        let mut r = Reading::empty(start, secs);
        // A dispatch set point in force for this interval, relative to what the device would
        // otherwise do: + deliver more (discharge, draw less), - absorb more.
        let setpoint = self.dispatch.filter(|(_, until)| start < *until).map(|(w, _)| w as f64);
        if setpoint.is_some() {
            r.grid_response = GridResponse::FollowingDispatch;
        }
        // Power into (+) or out of (-) storage, and whether the device is home/connected.
        let mut connected = true;
        let storage_w = match self.profile.kind {
            DeviceKind::RooftopSolar => {
                // Curtailed by an absorb set point.
                let pv = (rated * pv_fraction * 0.95 + setpoint.unwrap_or(0.0).min(0.0)).max(0.0);
                let wh = pv * hours;
                r.energy_generated_wh = wh as u32;
                r.energy_exported_wh = wh as u32;
                r.average_power_w = pv as i32;
                None
            }
            DeviceKind::SmartMeter => {
                // A home with 6 kW of PV and a heat pump: net import or export at the connection.
                let net = (household_load_w(local_h) + heating_w(celsius)) * noise - 6_000.0 * pv_fraction;
                let wh = (net.abs() * hours).min(rated * hours);
                if net > 0.0 {
                    r.energy_imported_wh = wh as u32;
                    r.energy_consumed_wh = wh as u32;
                } else {
                    r.energy_exported_wh = wh as u32;
                }
                r.average_power_w = (-net).clamp(-rated, rated) as i32;
                None
            }
            DeviceKind::HomeBattery => {
                // Self-consumption: soak up PV surplus, cover the evening load.
                let surplus = 6_000.0 * pv_fraction - household_load_w(local_h) * noise;
                Some((surplus - setpoint.unwrap_or(0.0)).clamp(-rated, rated))
            }
            DeviceKind::EnergyManagementSystem => {
                let pv = 8_000.0 * pv_fraction;
                r.energy_generated_wh = (pv * hours) as u32;
                let surplus = pv - household_load_w(local_h) * noise;
                Some((surplus - setpoint.unwrap_or(0.0)).clamp(-5_000.0, 5_000.0))
            }
            DeviceKind::CiStorage => {
                // Peak shaving: charge at night, discharge in the evening peak.
                let w = if local_h < 6.0 {
                    0.6 * rated
                } else if (17.0..21.0).contains(&local_h) {
                    -0.8 * rated
                } else {
                    0.0
                };
                Some(w - setpoint.unwrap_or(0.0))
            }
            DeviceKind::Ev | DeviceKind::EvCharger => {
                let minute = local_h * 60.0;
                connected = minute >= self.ev_arrive_min || minute < self.ev_leave_min;
                if !connected {
                    // Driving: the battery (the charger's car's, for a charger) drains while away.
                    self.soc = (self.soc - 0.03 * hours).max(0.1);
                }
                let charging = connected && self.soc < 0.9;
                if self.profile.kind == DeviceKind::EvCharger {
                    let normal = if charging { rated * 0.95 } else { 0.0 };
                    // Delivering means charging less; absorbing, more (while the car has room).
                    let w = match setpoint {
                        Some(sp) if connected && self.soc < 1.0 => (normal - sp).clamp(0.0, rated),
                        _ => normal,
                    };
                    r.energy_consumed_wh = (w * hours) as u32;
                    r.energy_imported_wh = r.energy_consumed_wh;
                    r.average_power_w = -(w as i32);
                    r.flex_down_w = if connected && self.soc < 1.0 { (rated - w) as u32 } else { 0 };
                    r.flex_up_w = w as u32;
                    // The charger follows its own car's state; the sim keeps one per pair.
                    if w > 0.0 {
                        self.soc = (self.soc + w * hours / 77_000.0).min(1.0);
                    }
                    None
                } else if connected {
                    Some(if charging { rated * 0.95 } else { 0.0 } - setpoint.unwrap_or(0.0))
                } else {
                    r.online = false;
                    None
                }
            }
        };
        if let Some(requested_w) = storage_w {
            let (min_soc, max_soc) = (0.1, 1.0);
            let room_wh = (max_soc - self.soc) * capacity;
            let available_wh = (self.soc - min_soc) * capacity;
            // Keep the SoC within limits: limit the energy moved this interval.
            let wh = if requested_w >= 0.0 {
                (requested_w * hours).min(room_wh.max(0.0))
            } else {
                -(-requested_w * hours).min(available_wh.max(0.0))
            };
            self.soc = (self.soc + wh / capacity).clamp(0.0, 1.0);
            let w = wh / hours;
            r.average_power_w = (-w) as i32;
            if wh >= 0.0 {
                r.energy_consumed_wh = wh as u32;
                r.energy_imported_wh = wh as u32;
            } else {
                r.energy_exported_wh = (-wh) as u32;
            }
            let rated_w = if self.profile.kind == DeviceKind::EnergyManagementSystem { 5_000.0 } else { rated };
            r.flex_up_w = if self.soc > min_soc { (rated_w + w.min(0.0)).clamp(0.0, rated_w) as u32 } else { 0 };
            r.flex_down_w = if self.soc < max_soc { (rated_w - w.max(0.0)).clamp(0.0, rated_w) as u32 } else { 0 };
            r.state_of_charge_permille = Some((self.soc * 1000.0).round() as u16);
            r.storage_available_wh = Some((capacity * 0.98) as u32);
        }
        if !connected && self.profile.kind == DeviceKind::Ev {
            r.state_of_charge_permille = Some((self.soc * 1000.0).round() as u16);
        }
        r
    }
}

/// Why a run of the simulator stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the oracle at {url} refused the request: HTTP {status}: {body}")]
    Refused { url: String, status: u16, body: String },
    #[error("the oracle's answer could not be read: {0}")]
    BadAnswer(String),
}

/// What the oracle said of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub accepted: u64,
    pub rejected: u64,
    /// Rejection counts by reason code.
    pub reasons: std::collections::BTreeMap<String, u64>,
}

/// Posts signed batches to an oracle's `POST /v1/telemetry` (binary body). Connection
/// failures, timeouts and 503s are retried with backoff, in order: the retried request
/// holds each device's latest batch, which the oracle answers `already_stored` if it had
/// committed it, so nothing is lost or stored twice.
pub struct Sender {
    http: reqwest::Client,
    /// The dispatching oracle's base URL: commands come from it.
    base: String,
    /// `POST /v1/telemetry` of every oracle the fleet reports to (the dispatching one first):
    /// co-signers recompute epochs from their own copy of the telemetry.
    urls: Vec<String>,
}

const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);

impl Sender {
    pub fn new(oracle_url: &str) -> Self {
        Self::to_all(&[oracle_url.to_string()])
    }

    /// Telemetry to every oracle of `oracle_urls`, commands from the first.
    pub fn to_all(oracle_urls: &[String]) -> Self {
        // A request that hangs is retried like one that failed.
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap_or_default();
        let bases: Vec<String> = oracle_urls.iter().map(|u| u.trim_end_matches('/').to_string()).collect();
        let base = bases.first().cloned().unwrap_or_default();
        Self { http, urls: bases.iter().map(|b| format!("{b}/v1/telemetry")).collect(), base }
    }

    /// Fetches the command in force for every device of `fleet` (`POST /v1/commands`, one
    /// request per 4096 devices), acknowledges each new one with the device's key, and sets
    /// the devices' set points. A device without a command goes back to its own behaviour.
    pub async fn follow_dispatch(&self, fleet: &mut Fleet, acked: &mut std::collections::HashSet<String>) -> Result<usize, SimulateError> {
        let mut following = 0;
        for devices in fleet.devices.chunks_mut(4096) {
            let signing: Vec<&ed25519_dalek::SigningKey> = devices.iter().map(|d| &d.key).collect();
            let request = ovpp_wire::dispatch::command::CommandsRequest::signed(&signing, ovpp_wire::clock::unix_now());
            let keys = request.devices.clone();
            let url = format!("{}/v1/commands", self.base);
            let answer: CommandsAnswer = self.post_json(&url, &request).await?;
            for (device, key) in devices.iter_mut().zip(&keys) {
                let current = answer.devices.get(key).and_then(|d| d.current.as_ref());
                device.dispatch = match current {
                    Some(command) => {
                        if acked.insert(command.id.clone()) {
                            let ack = Ack { device_key: device.device_key(), command_id: command.id.clone(), accept: true };
                            let signature = bs58::encode(ack.sign(&device.key)).into_string();
                            let body = AckBody { command_id: command.id.clone(), accept: true, signature, reason: None };
                            let acked: Result<AckAnswer, _> = self.post_json(&format!("{}/v1/devices/{key}/acks", self.base), &body).await;
                            // The device has its command either way; one lost ack stops no one.
                            if let Err(e) = acked {
                                tracing::warn!(device = %key, error = %e, "could not acknowledge a command");
                            }
                        }
                        following += 1;
                        Some((command.setpoint_w, command.valid_until))
                    }
                    None => None,
                };
            }
        }
        Ok(following)
    }

    async fn post_json<T: serde::de::DeserializeOwned>(&self, url: &str, body: &impl serde::Serialize) -> Result<T, SimulateError> {
        let response = self.http.post(url).json(body).send().await.map_err(|e| SimulateError::BadAnswer(format!("{url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(SimulateError::Refused { url: url.to_string(), status: status.as_u16(), body });
        }
        response.json().await.map_err(|e| SimulateError::BadAnswer(e.to_string()))
    }

    /// Sends `batches` to every oracle; the totals are the dispatching oracle's answer.
    pub async fn send(&self, batches: &[SignedBatch]) -> Result<Sent, SimulateError> {
        let body = ovpp_wire::telemetry::encode_batches(batches);
        let mut first = None;
        for url in &self.urls {
            let sent = self.send_to(url, &body).await?;
            first.get_or_insert(sent);
        }
        Ok(first.unwrap_or_default())
    }

    async fn send_to(&self, url: &str, body: &[u8]) -> Result<Sent, SimulateError> {
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            let response = self.http.post(url).header("content-type", "application/octet-stream").body(body.to_vec()).send().await;
            match response {
                Ok(r) if r.status().is_success() => {
                    let answer: TelemetryAnswer = r.json().await.map_err(|e| SimulateError::BadAnswer(e.to_string()))?;
                    return Ok(Sent::from_answer(&answer));
                }
                Ok(r) if r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    let status = r.status().as_u16();
                    let body = r.text().await.unwrap_or_default();
                    return Err(SimulateError::Refused { url: url.to_string(), status, body });
                }
                Ok(r) => tracing::warn!(status = %r.status(), "oracle unavailable; retrying"),
                Err(e) => {
                    tracing::warn!(error = %e, url = %url, "oracle unreachable; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

impl Sent {
    fn from_answer(answer: &TelemetryAnswer) -> Self {
        let mut sent = Sent { accepted: answer.accepted as u64, rejected: answer.rejected as u64, ..Sent::default() };
        for reason in answer.results.iter().filter_map(|r| r.reason.as_ref()) {
            *sent.reasons.entry(reason.clone()).or_default() += 1;
        }
        sent
    }

    fn add(&mut self, other: Sent) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        for (reason, n) in other.reasons {
            *self.reasons.entry(reason).or_default() += n;
        }
    }
}

/// The simulated clock: interval `k` covers `[start + k * secs, start + (k + 1) * secs)`.
/// Simulated time runs `speed` times faster than the wall clock but never past it (ingest
/// refuses readings from the future), so a run that starts in the past catches up quickly
/// and then follows real time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub start: i64,
    pub interval_secs: u32,
    pub speed: f64,
    /// Stop after the interval that ends at or after this time (`None`: run until stopped).
    pub end: Option<i64>,
}

/// Runs the fleet against an oracle until `clock.end` or until `stop` resolves, sending
/// each interval's batches in requests of `batches_per_request`. Returns the totals.
pub async fn run(
    fleet: &mut Fleet,
    sender: &Sender,
    clock: Clock,
    batches_per_request: usize,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Sent, SimulateError> {
    let wall_start = std::time::Instant::now();
    let mut totals = Sent::default();
    let mut stop = std::pin::pin!(stop);
    let mut start = clock.start;
    let mut acked = std::collections::HashSet::new();
    loop {
        let end = start + i64::from(clock.interval_secs);
        if clock.end.is_some_and(|last| start >= last) {
            return Ok(totals);
        }
        // Devices act on the commands in force as the interval starts (in real time only:
        // a backfill of the past has no commands to follow).
        if wall_wait(start).is_zero() && wall_wait(end) > std::time::Duration::ZERO {
            if let Err(e) = sender.follow_dispatch(fleet, &mut acked).await {
                tracing::warn!(error = %e, "could not fetch dispatch commands; devices keep their own behaviour");
                fleet.devices.iter_mut().for_each(|d| d.dispatch = None);
            }
        }
        // Wait until both the sped-up clock and the wall clock have reached the interval's end.
        let sped_up = std::time::Duration::from_secs_f64((end - clock.start) as f64 / clock.speed.max(1e-6));
        let due = (wall_start + sped_up).max(std::time::Instant::now() + wall_wait(end));
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = &mut stop => return Ok(totals),
        }
        let batches = fleet.tick(start, clock.interval_secs);
        for chunk in batches.chunks(batches_per_request.max(1)) {
            // Stopping mid-interval loses nothing: the next run sends later intervals, and
            // a device's retried batch is recognised as already stored.
            tokio::select! {
                sent = sender.send(chunk) => totals.add(sent?),
                _ = &mut stop => return Ok(totals),
            }
        }
        tracing::info!(
            interval_start = start,
            devices = batches.len(),
            accepted = totals.accepted,
            rejected = totals.rejected,
            reasons = ?totals.reasons,
            "interval sent"
        );
        start = end;
    }
}

/// How long until the wall clock passes `t` (unix s).
fn wall_wait(t: i64) -> std::time::Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0)).saturating_sub(now)
}

/// Writes each device's keypair as `<device key>.json` in Solana's keypair format (the
/// 64 bytes secret || public as a JSON array), readable by the owner only.
pub fn export_keys(fleet: &Fleet, dir: &std::path::Path) -> std::io::Result<usize> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    for device in &fleet.devices {
        let path = dir.join(format!("{}.json", bs58::encode(device.device_key()).into_string()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        // `mode` applies only to a new file; an existing one is tightened too.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(serde_json::to_string(&device.key.to_keypair_bytes().to_vec())?.as_bytes())?;
    }
    Ok(fleet.devices.len())
}
