//! Which devices ingest trusts: those registered and active on-chain, with their declared
//! parameters from the chain. Synced by scanning `Device` accounts where the chain allows
//! it, looked up on first sight of an unknown key, and refreshed periodically, so a device
//! registered a second ago is accepted and a retired one is refused after the next refresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anchor_lang::prelude::Pubkey;
use anchor_lang::AccountDeserialize;
use ed25519_dalek::VerifyingKey;
use ovpp::protocol::device_address;
use ovpp::state::Device;
use ovpp_wire::device::{DeviceKey, RegisteredDevice};
use tokio::sync::RwLock;

use ovpp_chain::{Chain, ChainAccount, ChainError};

pub mod db;

/// The device in a `Device` account, refusing accounts not owned by the program.
pub fn device_from_account(account: &ChainAccount) -> Option<RegisteredDevice> {
    if account.owner != ovpp::ID {
        return None;
    }
    Device::try_deserialize(&mut account.data.as_slice()).ok().map(|d| RegisteredDevice::from_device(&d))
}

/// The key as a curve point, refusing keys that do not decompress or have small order.
fn decompress(key: &DeviceKey) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(key).ok().filter(|k| !k.is_weak())
}

/// How long an unknown key is remembered as unknown, so a flood of batches from
/// unregistered keys costs one chain lookup per key per minute, not one per batch.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);

pub struct Registry {
    chain: Arc<dyn Chain>,
    devices: RwLock<HashMap<DeviceKey, RegisteredDevice>>,
    /// Registered devices' keys, decompressed once (ingest verifies with them).
    verifying: RwLock<HashMap<DeviceKey, VerifyingKey>>,
    unknown: RwLock<HashMap<DeviceKey, Instant>>,
}

impl Registry {
    pub fn new(chain: Arc<dyn Chain>, cached: Vec<RegisteredDevice>) -> Self {
        Self {
            chain,
            verifying: RwLock::new(cached.iter().filter_map(|d| Some((d.key, decompress(&d.key)?))).collect()),
            devices: RwLock::new(cached.into_iter().map(|d| (d.key, d)).collect()),
            unknown: RwLock::new(HashMap::new()),
        }
    }

    /// The decompressed key of each registered device among `keys` (`None` for others).
    pub async fn verifying_keys(&self, keys: &[DeviceKey]) -> Vec<Option<VerifyingKey>> {
        let verifying = self.verifying.read().await;
        keys.iter().map(|k| verifying.get(k).copied()).collect()
    }

    pub async fn get(&self, key: &DeviceKey) -> Option<RegisteredDevice> {
        self.devices.read().await.get(key).cloned()
    }

    pub async fn all(&self) -> Vec<RegisteredDevice> {
        self.devices.read().await.values().cloned().collect()
    }

    /// Looks up on-chain the keys not known yet (and not recently found unknown).
    /// Returns the devices found, to be persisted.
    pub async fn resolve(&self, keys: &[DeviceKey]) -> Result<Vec<RegisteredDevice>, ChainError> {
        let missing: Vec<DeviceKey> = {
            let devices = self.devices.read().await;
            let unknown = self.unknown.read().await;
            let mut missing: Vec<DeviceKey> = keys
                .iter()
                .filter(|k| !devices.contains_key(*k) && unknown.get(*k).is_none_or(|at| at.elapsed() > NEGATIVE_TTL))
                .copied()
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if missing.is_empty() {
            return Ok(vec![]);
        }
        let found = self.fetch(&missing).await?;
        let mut unknown = self.unknown.write().await;
        for key in &missing {
            if !found.iter().any(|d| d.key == *key) {
                unknown.insert(*key, Instant::now());
            }
        }
        self.insert(&found).await;
        Ok(found)
    }

    /// Re-reads every device by a filtered program scan. Returns the current set.
    pub async fn refresh(&self) -> Result<Vec<RegisteredDevice>, ChainError> {
        let accounts = self.chain.scan(&ovpp::ID, &[ovpp::client::device_discriminator_filter()]).await?;
        let fresh: Vec<RegisteredDevice> = accounts.iter().filter_map(|(_, a)| device_from_account(a)).collect();
        self.insert(&fresh).await;
        Ok(fresh)
    }

    async fn fetch(&self, keys: &[DeviceKey]) -> Result<Vec<RegisteredDevice>, ChainError> {
        let addresses: Vec<Pubkey> = keys.iter().map(|k| device_address(&Pubkey::new_from_array(*k)).0).collect();
        let accounts = self.chain.get_accounts(&addresses).await?;
        Ok(accounts.iter().flatten().filter_map(device_from_account).collect())
    }

    async fn insert(&self, devices: &[RegisteredDevice]) {
        let fresh: Vec<(DeviceKey, VerifyingKey)> = {
            let verifying = self.verifying.read().await;
            devices.iter().filter(|d| !verifying.contains_key(&d.key)).filter_map(|d| Some((d.key, decompress(&d.key)?))).collect()
        };
        self.verifying.write().await.extend(fresh);
        let mut map = self.devices.write().await;
        for device in devices {
            map.insert(device.key, device.clone());
        }
    }
}
