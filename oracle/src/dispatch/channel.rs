//! The device channel: each device's commands, its signed acks and its preferences.

use ovpp::state::DeviceStatus;

use super::{DispatchError, Dispatcher};
use ovpp_wire::device::DeviceKey;
use ovpp_wire::dispatch::command::{Ack, Command, DeviceSigned, Preferences};
use ovpp_wire::dispatch::view::DeviceCommands;

impl Dispatcher {
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
        match self.registry.get(&prefs.device_key).await.map(|d| d.profile.status) {
            Some(DeviceStatus::Active) => {}
            Some(DeviceStatus::Suspended) => return Err(DispatchError::DeviceNotActive("suspended")),
            Some(DeviceStatus::Retired) => return Err(DispatchError::DeviceNotActive("retired")),
            None => return Err(DispatchError::UnknownDevice),
        }
        if !self.store.save_preferences(&prefs).await? {
            return Err(DispatchError::StalePreferences(prefs.sequence));
        }
        self.state.lock().await.prefs.insert(prefs.device_key, prefs);
        Ok(())
    }
}
