//! Which of the oracle processes sharing one database does the work only one may do: the
//! dispatch rounds (planning, scheduling, measuring), epoch close, signing and relaying,
//! and pruning. With SQLite there is one process, always the leader. With PostgreSQL the
//! leader is whoever holds a session advisory lock on its own connection; when that process
//! dies its connection closes, the server releases the lock, and another process takes it
//! within `POLL` (fail-over). Everything the leader does is idempotent in the database or on
//! chain (an epoch closed twice must have the same report; a posted epoch is not posted
//! again), so a brief overlap while a lost connection is noticed does no harm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection};

use crate::store::Store;

/// How often a follower tries for the lock, and the leader checks it still holds it.
pub const POLL: Duration = Duration::from_secs(2);
/// How long the leader waits for its connection to answer before it stops leading.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Leadership {
    leader: AtomicBool,
}

impl Leadership {
    /// The only process of its database.
    pub fn sole() -> Self {
        Self { leader: AtomicBool::new(true) }
    }

    /// One of several: a follower until [`Leadership::run`] wins the lock.
    pub fn contended() -> Self {
        Self { leader: AtomicBool::new(false) }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Contends for the lock forever (PostgreSQL).
    pub async fn run(&self, store: Store) {
        let mut held: Option<AnyConnection> = None;
        loop {
            match held.as_mut() {
                None => match try_lock(&store.url).await {
                    Ok(Some(conn)) => {
                        tracing::info!("this oracle process is now the leader (dispatch, epochs, relaying, pruning)");
                        held = Some(conn);
                        self.leader.store(true, Ordering::SeqCst);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "could not contend for leadership; retrying"),
                },
                Some(conn) => {
                    // A half-open connection may never answer: a ping that takes too long
                    // counts as lost (the server ends the session, and the lock, by itself).
                    let alive = match tokio::time::timeout(PING_TIMEOUT, conn.ping()).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer to a ping within {PING_TIMEOUT:?}")),
                    };
                    if let Err(e) = alive {
                        self.leader.store(false, Ordering::SeqCst);
                        held = None;
                        tracing::warn!(error = %e, "lost the leader's database connection: following until the lock is won again");
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A connection holding the leader lock, or `None` when another process holds it.
async fn try_lock(url: &str) -> Result<Option<AnyConnection>, sqlx::Error> {
    let mut conn = AnyConnection::connect(url).await?;
    // Two-key form (class 2, id 1): apart from ingest's per-device locks (class 1) and
    // partition creation (class 2, id 0).
    let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(2, 1)").fetch_one(&mut conn).await?;
    if won {
        Ok(Some(conn))
    } else {
        conn.close().await?;
        Ok(None)
    }
}
