//! The gateway's settings: one TOML file (README "Connect a real charger"), then `OVPP_*`
//! environment variables and flags for the few settings that differ per run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ovpp::state::DeviceKind;
use serde::Deserialize;

/// `ovpp-gateway.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys (one file per device, 0600) and the reading buffer [default: ./ovpp-gateway].
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Oracles that receive every reading; commands come from the first (the dispatching
    /// oracle), the others are co-signers, which recompute epochs from their own copy.
    #[serde(default = "default_oracles")]
    pub oracle_urls: Vec<String>,
    /// `/metrics` and `/v1/status` [default: 127.0.0.1:9101].
    #[serde(default = "default_status_listen")]
    pub status_listen: SocketAddr,
    /// Seconds between sends of the buffered readings [default: 5].
    #[serde(default = "default_send_secs")]
    pub send_secs: u64,
    /// Seconds between fetches of the devices' commands [default: 5].
    #[serde(default = "default_command_secs")]
    pub command_poll_secs: u64,
    #[serde(default)]
    pub ocpp: Option<OcppConfig>,
    #[serde(default)]
    pub simulator: Option<SimulatorConfig>,
    /// Smart meters read from their own interface (`[[meters]]`).
    #[serde(default)]
    pub meters: Vec<MeterConfig>,
    /// Inverters, batteries and meters over SunSpec Modbus TCP (`[[sunspec]]`).
    #[serde(default)]
    pub sunspec: Vec<SunSpecConfig>,
}

/// A SunSpec device on Modbus TCP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunSpecConfig {
    pub name: String,
    pub kind: SunSpecKind,
    /// `host:port` (Modbus TCP, usually port 502).
    pub address: String,
    /// Modbus unit id [default: 1].
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// ISO 3166 region of the site, as registered on-chain: `DE-BY`.
    pub region: String,
    /// Rated power, W (an inverter's nameplate, a battery's inverter, a meter's connection).
    pub power_w: u64,
    /// A battery's usable capacity, Wh.
    #[serde(default)]
    pub capacity_wh: u64,
    /// Seconds between polls [default: 10].
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// Length of a reading, s [default: 60].
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SunSpecKind {
    /// A PV inverter (models 101-103, curtailed through 123): `rooftop-solar`.
    Solar,
    /// A battery (storage model 124, power from its inverter model): `home-battery`.
    Battery,
    /// A meter (models 201-204): `smart-meter`.
    Meter,
}

/// A smart meter: a site's grid connection, read from the meter's P1 port (DSMR) or
/// optical interface (SML), through a TCP bridge (ser2net, a networked IR reader) or a
/// serial device the system has set up (`stty -F /dev/ttyUSB0 115200 raw`, or 9600 for SML).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterConfig {
    /// The device's name in this gateway (its key file, its status line).
    pub name: String,
    pub protocol: MeterProtocol,
    /// `host:port` of a TCP bridge to the meter's interface.
    #[serde(default)]
    pub address: Option<String>,
    /// Or a serial device (or any file that streams the meter's bytes).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// ISO 3166 region of the site, as registered on-chain: `DE-BY`.
    pub region: String,
    /// The connection's rating, W (the main fuse: 3 x 25 A is about 17 kW).
    pub power_w: u64,
    /// Length of a reading, s [default: 60]; the meter's telegrams (every 1 to 10 s) are
    /// interpolated onto that grid.
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MeterProtocol {
    /// DSMR P1 telegrams (4.x, 5.x; Belgian e-MUCS).
    Dsmr,
    /// SML 1.04 frames (German smart meters).
    Sml,
}

/// The OCPP-J server (the gateway is the chargers' CSMS).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcppConfig {
    /// Where chargers connect: `ws://<listen>/ocpp/<charger id>` [default: 0.0.0.0:9000].
    #[serde(default = "default_ocpp_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain and key: `wss://` (OCPP security profile 2). Without them,
    /// plain `ws://` with Basic auth (profile 1), for a site network only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Heartbeat interval told to chargers at boot, seconds [default: 60].
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u32,
    /// Length of a reading, seconds: readings cover `[k * interval, (k + 1) * interval)`,
    /// as the oracle measures events on that grid [default: 60]. Chargers should send meter
    /// values at least this often while charging (1.6 `MeterValueSampleInterval`, 2.0.1
    /// `SampledDataCtrlr.TxUpdatedInterval`); readings wait for the sample after them.
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
    /// Seconds a charger has to answer a call (SetChargingProfile) [default: 30].
    #[serde(default = "default_call_timeout")]
    pub call_timeout_secs: u64,
    #[serde(default)]
    pub chargers: Vec<ChargerConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargerConfig {
    /// The charge point identity (the last part of its CSMS URL).
    pub id: String,
    /// HTTP Basic password (OCPP security profiles 1 and 2), at least 16 characters.
    pub password: String,
    /// ISO 3166 region of the site, as registered on-chain: `DE-BY`.
    pub region: String,
    /// Rated power, W.
    pub power_w: u64,
    /// Limits in charging profiles: `W` or `A` (per phase, at 230 V) [default: W].
    #[serde(default)]
    pub rate_unit: RateUnit,
    /// Phases, for limits in amperes [default: 3].
    #[serde(default = "default_phases")]
    pub phases: u32,
    /// The EV behind the charger, as its own device (SoC, plugged in) when it is known.
    #[serde(default)]
    pub ev: Option<EvConfig>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum RateUnit {
    #[default]
    W,
    A,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvConfig {
    /// Usable battery capacity, Wh.
    pub capacity_wh: u64,
    /// The car's maximum charging power, W [default: the charger's].
    #[serde(default)]
    pub power_w: Option<u64>,
}

/// The project's simulated fleet as one more adapter (the local network runs through it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    pub devices: usize,
    /// Key seed: the same seed gives the same device keys (`ovpp-simulator --seed`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_sim_interval")]
    pub interval_secs: u32,
    #[serde(default = "default_latitude")]
    pub latitude: f64,
    #[serde(default = "default_longitude")]
    pub longitude: f64,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("ovpp-gateway")
}
fn default_oracles() -> Vec<String> {
    vec!["http://127.0.0.1:8787".into()]
}
fn default_status_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9101))
}
fn default_send_secs() -> u64 {
    5
}
fn default_command_secs() -> u64 {
    5
}
fn default_ocpp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9000))
}
fn default_heartbeat() -> u32 {
    60
}
fn default_interval() -> u32 {
    60
}
fn default_call_timeout() -> u64 {
    30
}
fn default_unit_id() -> u8 {
    1
}
fn default_poll() -> u64 {
    10
}
fn default_phases() -> u32 {
    3
}
fn default_seed() -> u64 {
    1
}
fn default_sim_interval() -> u32 {
    60
}
fn default_latitude() -> f64 {
    48.14
}
fn default_longitude() -> f64 {
    11.58
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// The smallest Basic auth password accepted (OCPP 2.0.1 A00.FR.205: 16 to 40 characters).
const MIN_PASSWORD: usize = 16;

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the gateway config {}", path.display()))?;
        let config: Config = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        config.check()?;
        Ok(config)
    }

    /// What TOML cannot say: names unique, passwords long enough, limits sane.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.oracle_urls.is_empty() {
            bail!("oracle_urls is empty: give at least the dispatching oracle's URL");
        }
        if !(1..=3600).contains(&self.send_secs) || !(1..=3600).contains(&self.command_poll_secs) {
            bail!("send_secs and command_poll_secs must be 1 ..= 3600");
        }
        if let Some(ocpp) = &self.ocpp {
            if ocpp.tls_cert.is_some() != ocpp.tls_key.is_some() {
                bail!("[ocpp] needs both tls_cert and tls_key, or neither");
            }
            if !(10..=3600).contains(&ocpp.interval_secs) || 3600 % ocpp.interval_secs != 0 {
                bail!("[ocpp] interval_secs must divide an hour and be 10 ..= 3600 (a reading's length)");
            }
            let mut seen = std::collections::HashSet::new();
            for c in &ocpp.chargers {
                if c.id.is_empty() || c.id.len() > 48 || c.id.contains('/') {
                    bail!("charger id {:?} must be 1 to 48 characters without '/' (OCPP identity)", c.id);
                }
                if !seen.insert(c.id.as_str()) {
                    bail!("charger id {} is configured twice", c.id);
                }
                if c.password.len() < MIN_PASSWORD || c.password.len() > 40 {
                    bail!("charger {}: the password must be 16 to 40 characters (OCPP security profile 1)", c.id);
                }
                if c.power_w == 0 || c.phases == 0 || c.phases > 3 {
                    bail!("charger {}: power_w must be above 0 and phases 1 ..= 3", c.id);
                }
                if c.region.is_empty() || c.region.len() > 8 {
                    bail!("charger {}: region must be an ISO 3166 code of at most 8 bytes (DE-BY)", c.id);
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for m in &self.meters {
            if m.name.is_empty() || m.name.len() > 48 || !names.insert(m.name.as_str()) {
                bail!("meter name {:?} must be 1 to 48 characters and unique", m.name);
            }
            if m.address.is_some() == m.path.is_some() {
                bail!("meter {}: give either address (host:port of a TCP bridge) or path (a serial device)", m.name);
            }
            if !(10..=3600).contains(&m.interval_secs) || 3600 % m.interval_secs != 0 {
                bail!("meter {}: interval_secs must divide an hour and be 10 ..= 3600", m.name);
            }
            if m.power_w == 0 || m.region.is_empty() || m.region.len() > 8 {
                bail!("meter {}: power_w must be above 0 and region an ISO 3166 code of at most 8 bytes (DE-BY)", m.name);
            }
        }
        for d in &self.sunspec {
            if d.name.is_empty() || d.name.len() > 48 || !names.insert(d.name.as_str()) {
                bail!("device name {:?} must be 1 to 48 characters and unique", d.name);
            }
            if !(10..=3600).contains(&d.interval_secs) || 3600 % d.interval_secs != 0 || !(1..=3600).contains(&d.poll_secs) {
                bail!("{}: interval_secs must divide an hour and be 10 ..= 3600, poll_secs 1 ..= 3600", d.name);
            }
            if d.power_w == 0 || d.region.is_empty() || d.region.len() > 8 {
                bail!("{}: power_w must be above 0 and region an ISO 3166 code of at most 8 bytes (DE-BY)", d.name);
            }
            if (d.kind == SunSpecKind::Battery) != (d.capacity_wh > 0) {
                bail!("{}: a battery needs capacity_wh, and only a battery has one", d.name);
            }
        }
        if let Some(sim) = &self.simulator {
            if !(10..=3600).contains(&sim.interval_secs) {
                bail!("[simulator] interval_secs must be 10 ..= 3600");
            }
        }
        Ok(())
    }
}

/// A device the gateway serves, as its owner declares it on-chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Unique in the gateway: a charger's id, `<charger id>/ev` for its car.
    pub name: String,
    pub kind: DeviceKind,
    pub rated_power_w: u64,
    pub energy_capacity_wh: u64,
    pub region: String,
}
