//! Retention of raw readings: the leader prunes readings older than the operator's
//! `--keep-readings-days`, but never what is still needed: the open epoch and every epoch
//! not yet posted (a co-signer recomputes from them), and the baseline lookback of every
//! event still to be measured. Daily load profiles (`loads`) of the pruned days go too. The horizon is a day boundary, so SQLite (deleting a range) and
//! PostgreSQL (dropping the day partitions) keep the same readings.

use std::time::Duration;

use crate::dispatch::baseline;
use crate::dispatch::measure::lookback_secs;
use crate::leader::Leadership;
use crate::store::{Store, StoreError};
use ovpp_wire::clock::unix_now;

/// The longest any baseline looks back before an event (day matching; the readings of the
/// event itself are after its start).
pub fn longest_lookback_secs() -> i64 {
    lookback_secs(&baseline::LoadMethod::MostAccurate)
}

/// The fewest days `--keep-readings-days` may be: a new event's baseline needs that much.
pub fn min_keep_days() -> i64 {
    (longest_lookback_secs() + 86_399) / 86_400
}

/// Readings starting before the returned time may be removed: `now - keep_secs`, held back
/// by what is still needed, rounded down to a day boundary.
pub async fn horizon(store: &Store, keep_secs: i64, now: i64) -> Result<i64, StoreError> {
    let mut horizon = now - keep_secs;
    // The open epoch starts where the last stored one ended (not at the ingest fence, which
    // moves before an epoch being closed is stored); unposted epochs are still to be
    // co-signed.
    horizon = horizon.min(store.epochs(1).await?.first().map_or(i64::MIN, |e| e.end_ts));
    if let Some(oldest) = store.oldest_unposted_epoch_start().await? {
        horizon = horizon.min(oldest);
    }
    // Events still to be measured (power events not cancelled before they started; price
    // events are never measured).
    let measured: std::collections::HashSet<String> = store.measured_events().await?.into_iter().collect();
    for event in store.events().await? {
        let measurable = event.signal.is_power() && (!event.cancelled || event.modified > event.start());
        if measurable && !measured.contains(&event.id) {
            horizon = horizon.min(event.start() - longest_lookback_secs());
        }
    }
    Ok(horizon.div_euclid(86_400).saturating_mul(86_400))
}

/// Prunes now and then every hour, on the leader; a failure is logged and retried.
pub async fn run(store: Store, leader: std::sync::Arc<Leadership>, keep_days: i64) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        if !leader.is_leader() {
            continue;
        }
        let now = unix_now();
        let pruned = async {
            let horizon = horizon(&store, keep_days * 86_400, now).await?;
            store.prune_readings(horizon).await.map(|n| (horizon, n))
        };
        match pruned.await {
            Ok((horizon, n)) => tracing::info!(horizon, removed = n, "pruned readings"),
            Err(e) => tracing::warn!(error = %e, "pruning readings failed; retrying in an hour"),
        }
    }
}
