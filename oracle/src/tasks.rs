//! The oracle's long-running background work (ingest writer, registry sync, dispatch, epoch
//! job), spawned by name so that one that stops, by a panic or by returning, is seen: the
//! health check fails naming it and `ovpp_task_up{task}` drops to 0, instead of the oracle
//! answering "ok" while it no longer writes, dispatches or closes epochs.

use std::future::Future;
use std::sync::Mutex;

use tokio::task::JoinHandle;

#[derive(Default)]
pub struct Tasks {
    running: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Tasks {
    pub fn spawn(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(async move {
            work.await;
            tracing::error!(task = name, "background task returned; the oracle is unhealthy");
        });
        self.lock().push((name, handle));
    }

    /// Every task by name, with whether it still runs.
    pub fn status(&self) -> Vec<(&'static str, bool)> {
        self.lock().iter().map(|(name, handle)| (*name, !handle.is_finished())).collect()
    }

    /// The tasks that stopped.
    pub fn dead(&self) -> Vec<&'static str> {
        self.status().into_iter().filter(|(_, up)| !up).map(|(name, _)| name).collect()
    }

    /// Stops every task (at shutdown, once no request is in flight) and waits for them.
    pub async fn stop(&self) {
        let handles: Vec<_> = self.lock().drain(..).collect();
        for (_, handle) in &handles {
            handle.abort();
        }
        for (name, handle) in handles {
            if let Err(e) = handle.await {
                if e.is_panic() {
                    tracing::warn!(task = name, "task had panicked");
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, JoinHandle<()>)>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
