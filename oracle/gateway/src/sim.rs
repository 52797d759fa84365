//! The project's simulated fleet as one more adapter: the same readings as
//! `ovpp-simulator`, but signed, buffered and sent by the gateway, and its set points
//! applied through the gateway's command loop. The local network runs its fleet this way.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use ovpp_simulator::Fleet;
use ovpp_wire::clock::unix_now;

use crate::adapter::{Adapter, Refusal, SetPoint, Sink};
use crate::config::{DeviceSpec, SimulatorConfig};
use crate::store::Record;

pub struct SimAdapter {
    fleet: Mutex<Fleet>,
    interval_secs: u32,
    /// The first reading's start [default: the interval the adapter starts in].
    start: Option<i64>,
}

/// `sim-<index>`: the device's place in the fleet (its key follows from the seed).
fn name(index: usize) -> String {
    format!("sim-{index}")
}

fn index(name: &str) -> Option<usize> {
    name.strip_prefix("sim-")?.parse().ok()
}

impl SimAdapter {
    pub fn new(fleet: Fleet, interval_secs: u32) -> Self {
        Self { fleet: Mutex::new(fleet), interval_secs, start: None }
    }

    /// Readings from `start` on (the local network goes on from its replayed past).
    pub fn starting_at(self, start: i64) -> Self {
        Self { start: Some(start), ..self }
    }

    pub fn from_config(c: &SimulatorConfig) -> Self {
        Self::new(Fleet::new(c.devices, c.seed, c.latitude, c.longitude), c.interval_secs)
    }
}

#[async_trait]
impl Adapter for SimAdapter {
    fn devices(&self) -> Vec<DeviceSpec> {
        let fleet = self.fleet.lock().expect("not poisoned");
        fleet
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| DeviceSpec {
                name: name(i),
                kind: d.profile.kind,
                rated_power_w: d.profile.rated_power_w,
                energy_capacity_wh: d.profile.energy_capacity_wh,
                region: d.region.to_string(),
            })
            .collect()
    }

    fn own_keys(&self) -> Vec<(String, SigningKey)> {
        let fleet = self.fleet.lock().expect("not poisoned");
        fleet.devices.iter().enumerate().map(|(i, d)| (name(i), d.key.clone())).collect()
    }

    async fn run(self: Arc<Self>, sink: Sink) -> anyhow::Result<()> {
        let secs = i64::from(self.interval_secs);
        let mut start = self.start.unwrap_or_else(|| unix_now().div_euclid(secs) * secs);
        loop {
            // A reading is made once its interval has passed.
            let wait = (start + secs - unix_now()).max(0) as u64;
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            let readings = self.fleet.lock().expect("not poisoned").readings(start, self.interval_secs);
            let records = readings
                .into_iter()
                .enumerate()
                .map(|(i, reading)| Record { device: name(i), reading: Some(reading), cursor: None })
                .collect();
            sink.record(records).await?;
            start += secs;
        }
    }

    async fn apply(&self, device: &str, setpoint: Option<&SetPoint>) -> Result<(), Refusal> {
        let mut fleet = self.fleet.lock().expect("not poisoned");
        let d = index(device).and_then(|i| fleet.devices.get_mut(i)).ok_or_else(|| Refusal(format!("no simulated device {device}")))?;
        d.dispatch = setpoint.map(|s| (s.setpoint_w, s.valid_until));
        Ok(())
    }

    fn connected(&self, _device: &str) -> bool {
        true
    }
}
