//! Grid intake: programs and events from grid operators, validated and stored.

use super::{baseline, drop_commands, DispatchError, Dispatcher};
use ovpp_wire::dispatch::event::{Context, EventError, EventSource, GridEvent, Status, WireEvent, WireProgram};

impl Dispatcher {
    pub async fn create_program(&self, program: WireProgram, now: i64) -> Result<(String, WireProgram), DispatchError> {
        let id = program.program_name.clone();
        check_program(&program)?;
        if !self.store.insert_program(&id, &program, now).await? {
            return Err(DispatchError::ProgramExists(id));
        }
        self.state.lock().await.programs.insert(id.clone(), program.clone());
        Ok((id, program))
    }

    /// Replaces a program (its name is its id and stays).
    pub async fn update_program(&self, id: &str, program: WireProgram, now: i64) -> Result<WireProgram, DispatchError> {
        check_program(&program)?;
        if program.program_name != id {
            return Err(DispatchError::InvalidProgram(format!("programName is the program's id ({id}) and cannot change")));
        }
        let mut state = self.state.lock().await;
        let old_baseline = state.programs.get(id).map(|p| p.baseline.clone());
        if old_baseline.as_ref().is_some_and(|b| *b != program.baseline) && state.events.values().any(|e| e.program_id == id) {
            // Events measure with the program's baseline: one measured and re-measured by a
            // co-signer must see the same.
            return Err(DispatchError::ProgramInUse(id.to_string()));
        }
        if !self.store.update_program(id, &program, now).await? {
            return Err(DispatchError::UnknownProgram(id.to_string()));
        }
        state.programs.insert(id.to_string(), program.clone());
        Ok(program)
    }

    /// Deletes a program without events.
    pub async fn delete_program(&self, id: &str) -> Result<(), DispatchError> {
        let mut state = self.state.lock().await;
        if !self.store.delete_program(id).await? {
            return Err(if self.store.program(id).await?.is_some() {
                DispatchError::ProgramInUse(id.to_string())
            } else {
                DispatchError::UnknownProgram(id.to_string())
            });
        }
        state.programs.remove(id);
        Ok(())
    }

    pub async fn programs(&self) -> Vec<(String, WireProgram)> {
        self.state.lock().await.programs.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub async fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self.registry.all().await.into_iter().map(|d| d.region).collect();
        regions.sort();
        regions.dedup();
        regions
    }

    /// Validates and stores a new event (or, with `id`, replaces a pending or active one).
    pub async fn put_event(&self, wire: &WireEvent, id: Option<&str>, now: i64) -> Result<GridEvent, DispatchError> {
        match id {
            Some(id) => self.store_event(wire, id, Write::Modify, now).await,
            None => {
                let id = format!("evt-{:016x}", rand::random::<u64>());
                self.store_event(wire, &id, Write::Create, now).await
            }
        }
    }

    /// Creates the event `id`, or replaces it while pending or active: an event another VTN
    /// sent, with where it came from.
    pub async fn import_event(&self, wire: &WireEvent, id: &str, source: EventSource, now: i64) -> Result<GridEvent, DispatchError> {
        self.store_event(wire, id, Write::Import(source), now).await
    }

    async fn store_event(&self, wire: &WireEvent, id: &str, write: Write, now: i64) -> Result<GridEvent, DispatchError> {
        let regions = self.regions().await;
        let mut state = self.state.lock().await;
        let created = match state.events.get(id) {
            Some(old) => {
                if let s @ (Status::Completed | Status::Cancelled) = old.status(now) {
                    return Err(EventError::Final(id.to_string(), s).into());
                }
                if old.program_id != wire.program_id {
                    return Err(EventError::Invalid(format!("programID cannot change (the event is in {})", old.program_id)).into());
                }
                if old.source.as_ref().map(|s| &s.vtn) != write.source().map(|s| &s.vtn) {
                    return Err(EventError::Invalid(format!("event {id} came from another VTN, which alone changes it")).into());
                }
                Some(old.created)
            }
            None if !matches!(write, Write::Modify) => None,
            None => return Err(DispatchError::UnknownEvent(id.to_string())),
        };
        let id = id.to_string();
        let programs: Vec<String> = state.programs.keys().cloned().collect();
        let others: Vec<GridEvent> = state.events.values().filter(|e| !e.cancelled && e.end() > now).cloned().collect();
        let mut event = wire.validate(&id, &Context { programs: &programs, regions: &regions, others: &others, now })?;
        if let Some(created) = created {
            event.created = created;
        }
        event.source = write.source().cloned();
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
}

/// A program's name is its id: the spec's objectID (1-128 of A-Z a-z 0-9 _ -).
fn check_program(program: &WireProgram) -> Result<(), DispatchError> {
    let name = &program.program_name;
    if name.is_empty() || name.len() > 128 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(DispatchError::InvalidProgram(
            "programName must be 1-128 characters of A-Z a-z 0-9 - _ (it is the program's id)".into(),
        ));
    }
    if let Some(b) = &program.baseline {
        if baseline::LoadMethod::named(b).is_none() {
            let names: Vec<&str> =
                baseline::DAY_MATCHING.iter().map(|m| m.name).chain([super::regression::NAME, baseline::MOST_ACCURATE]).collect();
            return Err(DispatchError::InvalidProgram(format!("unknown baseline {b:?} (one of {})", names.join(", "))));
        }
    }
    Ok(())
}

/// How an event is written: a grid operator's change to an existing one, a new one, or one
/// taken from another VTN (created or replaced, with where it came from).
enum Write {
    Modify,
    Create,
    Import(EventSource),
}

impl Write {
    fn source(&self) -> Option<&EventSource> {
        match self {
            Write::Import(source) => Some(source),
            _ => None,
        }
    }
}
