//! The epochs' tables: closed epochs, their leaves and reports, the oracle signatures
//! collected and what the chain posted; and the aggregate over stored telemetry that feeds
//! scoring.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use ovpp_wire::device::DeviceKey;

use crate::store::{key_from_text, key_to_text, statement_chunks, Store, StoreError};

/// A closed epoch as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    pub epoch: u64,
    pub start_ts: i64,
    pub end_ts: i64,
    pub emission: u64,
    pub cumulative_total: u64,
    pub leaf_count: u64,
    pub root: [u8; 32],
    pub report_hash: [u8; 32],
    pub closed_at: i64,
    /// The confirmed `post_epoch` transaction (unknown when a restarted relayer found the
    /// epoch already on-chain).
    pub posted_signature: Option<String>,
    /// When the epoch was seen posted on-chain; `None` while not posted.
    pub posted_at: Option<i64>,
}

fn hash_from_hex(table: &'static str, text: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| StoreError::Corrupt { table, detail: format!("bad hash {text}") })?;
    Ok(out)
}

fn epoch_from_row(row: &sqlx::any::AnyRow) -> Result<EpochRecord, StoreError> {
    Ok(EpochRecord {
        epoch: row.try_get::<i64, _>("epoch")? as u64,
        start_ts: row.try_get("start_ts")?,
        end_ts: row.try_get("end_ts")?,
        emission: row.try_get::<i64, _>("emission")? as u64,
        cumulative_total: row.try_get::<i64, _>("cumulative_total")? as u64,
        leaf_count: row.try_get::<i64, _>("leaf_count")? as u64,
        root: hash_from_hex("epochs", &row.try_get::<String, _>("root")?)?,
        report_hash: hash_from_hex("epochs", &row.try_get::<String, _>("report_hash")?)?,
        closed_at: row.try_get("closed_at")?,
        posted_signature: row.try_get("posted_signature")?,
        posted_at: row.try_get("posted_at")?,
    })
}

/// `SELECT <every EpochRecord column> FROM epochs <rest>` (sqlx wants static SQL).
macro_rules! select_epochs {
    ($rest:literal) => {
        concat!(
            "SELECT epoch, start_ts, end_ts, emission, cumulative_total, leaf_count, root, report_hash, closed_at, posted_signature, \
             posted_at FROM epochs ",
            $rest
        )
    };
}

impl Store {
    /// Per-device sums over the readings whose interval starts in `[start, end)` and the
    /// batches rejected (each once) whose receipt here was in `[start, end)`: the inputs of
    /// scoring. Read from the epoch's accumulators when they hold all of its readings,
    /// otherwise summed over the readings (the same numbers either way).
    /// With `cutoff`, only devices in it count, and of each only the batches up to its
    /// sequence there (a co-signer recomputing exactly what the primary used).
    pub async fn epoch_inputs(
        &self,
        start: i64,
        end: i64,
        stress_hours_utc: [u8; 2],
        cutoff: Option<&HashMap<DeviceKey, u64>>,
    ) -> Result<HashMap<DeviceKey, ovpp_wire::score::EpochInputs>, StoreError> {
        let accumulated = match self.accumulated_inputs(start, end, stress_hours_utc).await? {
            // A cutoff at or past every device's last accumulated batch selects all of it.
            Some(sums) => match cutoff {
                None => Some(sums),
                Some(cutoff) => {
                    let kept: HashMap<_, _> = sums.into_iter().filter(|(key, _)| cutoff.contains_key(key)).collect();
                    kept.iter().all(|(key, s)| cutoff[key] >= s.through_sequence as u64).then_some(kept)
                }
            },
            None => None,
        };
        let mut out = match accumulated {
            Some(sums) => sums.into_iter().map(|(key, s)| Ok((key, s.inputs()?))).collect::<Result<HashMap<_, _>, StoreError>>()?,
            None => self.sum_readings(start, end, stress_hours_utc, cutoff).await?,
        };
        self.add_rejections_and_delivery(&mut out, start, end, cutoff).await?;
        Ok(out)
    }

    /// `epoch_inputs` summed over the readings, never from accumulators (what the
    /// accumulators are checked against).
    pub async fn epoch_inputs_from_readings(
        &self,
        start: i64,
        end: i64,
        stress_hours_utc: [u8; 2],
        cutoff: Option<&HashMap<DeviceKey, u64>>,
    ) -> Result<HashMap<DeviceKey, ovpp_wire::score::EpochInputs>, StoreError> {
        let mut out = self.sum_readings(start, end, stress_hours_utc, cutoff).await?;
        self.add_rejections_and_delivery(&mut out, start, end, cutoff).await?;
        Ok(out)
    }

    async fn sum_readings(
        &self,
        start: i64,
        end: i64,
        stress_hours_utc: [u8; 2],
        cutoff: Option<&HashMap<DeviceKey, u64>>,
    ) -> Result<HashMap<DeviceKey, ovpp_wire::score::EpochInputs>, StoreError> {
        // sqlx wants static SQL: the same aggregate over all readings, or joined to the cutoff.
        macro_rules! aggregate {
            ($from:literal) => {
                concat!(
                    "SELECT r.device_key AS device_key, \
                       CAST(SUM(r.interval_secs) AS BIGINT) AS covered_secs, \
                       CAST(SUM(CASE WHEN r.online <> 0 THEN r.interval_secs ELSE 0 END) AS BIGINT) AS online_secs, \
                       CAST(SUM(r.energy_generated_wh) AS BIGINT) AS generated_wh, \
                       CAST(SUM(CASE WHEN r.energy_exported_wh > r.energy_generated_wh \
                         THEN r.energy_exported_wh - r.energy_generated_wh ELSE 0 END) AS BIGINT) AS discharged_wh, \
                       CAST(SUM(CASE WHEN r.online <> 0 AND r.storage_available_wh IS NOT NULL \
                         THEN r.storage_available_wh * r.interval_secs ELSE 0 END) AS BIGINT) AS storage_wh_secs, \
                       CAST(SUM(CASE WHEN r.online <> 0 AND r.interval_start % 86400 >= $3 AND r.interval_start % 86400 < $4 \
                         THEN (r.flex_up_w + r.flex_down_w) * r.interval_secs ELSE 0 END) AS BIGINT) AS stress_flex_w_secs, \
                       CAST(SUM(CASE WHEN r.grid_response = 3 THEN 1 ELSE 0 END) AS BIGINT) AS fault_intervals, \
                       COUNT(DISTINCT r.batch_sequence) AS accepted_batches, \
                       MAX(r.batch_sequence) AS through_sequence ",
                    $from,
                    " GROUP BY r.device_key"
                )
            };
        }
        let mut conn = self.pool.acquire().await?;
        let query = match cutoff {
            None => sqlx::query(aggregate!("FROM readings r WHERE r.interval_start >= $1 AND r.interval_start < $2")),
            Some(cutoff) => {
                sqlx::query("CREATE TEMP TABLE IF NOT EXISTS epoch_cutoff (device_key TEXT PRIMARY KEY, through BIGINT NOT NULL)")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM epoch_cutoff").execute(&mut *conn).await?;
                let rows: Vec<(&DeviceKey, &u64)> = cutoff.iter().collect();
                for chunk in statement_chunks(&rows, 256) {
                    let sql = format!("INSERT INTO epoch_cutoff (device_key, through) VALUES {}", self.backend.values(chunk.len(), 2, 0));
                    let insert = chunk
                        .iter()
                        .fold(sqlx::query(AssertSqlSafe(sql)), |q, (key, through)| q.bind(key_to_text(key)).bind(**through as i64));
                    insert.execute(&mut *conn).await?;
                }
                sqlx::query(aggregate!(
                    "FROM readings r JOIN epoch_cutoff c ON r.device_key = c.device_key \
                     WHERE r.interval_start >= $1 AND r.interval_start < $2 AND r.batch_sequence <= c.through"
                ))
            }
        };
        let rows = query
            .bind(start)
            .bind(end)
            .bind(i64::from(stress_hours_utc[0]) * 3600)
            .bind(i64::from(stress_hours_utc[1]) * 3600)
            .fetch_all(&mut *conn)
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            let col = |name: &str| -> Result<u64, StoreError> {
                u64::try_from(row.try_get::<i64, _>(name)?)
                    .map_err(|_| StoreError::Corrupt { table: "readings", detail: format!("negative {name}") })
            };
            let inputs = ovpp_wire::score::EpochInputs {
                covered_secs: col("covered_secs")?,
                online_secs: col("online_secs")?,
                generated_wh: col("generated_wh")?,
                discharged_wh: col("discharged_wh")?,
                storage_available_wh_hours: col("storage_wh_secs")? / 3600,
                stress_flex_wh: col("stress_flex_w_secs")? / 3600,
                fault_intervals: col("fault_intervals")?,
                demand_response_wh: 0, // from dr_deliveries below
                price_response_wh: None,
                accepted_batches: col("accepted_batches")?,
                rejected_batches: 0,
                through_sequence: row.try_get::<i64, _>("through_sequence")? as u64,
            };
            out.insert(key_from_text("readings", &row.try_get::<String, _>("device_key")?)?, inputs);
        }
        Ok(out)
    }

    /// Adds the epoch's rejected batches and measured demand response to `out`.
    async fn add_rejections_and_delivery(
        &self,
        out: &mut HashMap<DeviceKey, ovpp_wire::score::EpochInputs>,
        start: i64,
        end: i64,
        cutoff: Option<&HashMap<DeviceKey, u64>>,
    ) -> Result<(), StoreError> {
        let rejections = sqlx::query(
            "SELECT device_key, CAST(COUNT(*) AS BIGINT) AS n FROM rejected_batches WHERE received_at >= $1 AND received_at < $2 GROUP BY device_key",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        for row in &rejections {
            let key = key_from_text("rejected_batches", &row.try_get::<String, _>("device_key")?)?;
            if cutoff.is_some_and(|c| !c.contains_key(&key)) {
                continue;
            }
            // Rejections of devices with no accepted reading in the epoch count too.
            out.entry(key).or_default().rejected_batches = row.try_get::<i64, _>("n")? as u64;
        }
        // Measured demand and price response of events credited in the epoch (dispatch's reports).
        for (key, wh) in self.responses_wh(start, end).await? {
            if let Some(inputs) = out.get_mut(&key) {
                inputs.demand_response_wh = wh.demand;
                inputs.price_response_wh = Some(wh.price);
            }
        }
        Ok(())
    }

    /// Per device, the highest batch sequence among readings of `[start, end)` that arrived
    /// here by `deadline`: what a report of that epoch must not leave out.
    pub async fn timely_sequences(&self, start: i64, end: i64, deadline: i64) -> Result<HashMap<DeviceKey, u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_key, MAX(batch_sequence) AS through FROM readings \
             WHERE interval_start >= $1 AND interval_start < $2 AND received_at <= $3 GROUP BY device_key",
        )
        .bind(start)
        .bind(end)
        .bind(deadline)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((key_from_text("readings", &row.try_get::<String, _>("device_key")?)?, row.try_get::<i64, _>("through")? as u64)))
            .collect()
    }

    /// Stores a closed epoch and its leaves in one transaction. Closing the same epoch
    /// again with the same result is a no-op; with another result it is refused.
    pub async fn save_epoch(&self, closed: &crate::epoch::ClosedEpoch, closed_at: i64) -> Result<(), StoreError> {
        let h = &closed.header;
        if let Some(existing) = self.epoch(h.epoch).await? {
            return if existing.report_hash == closed.report_hash {
                Ok(())
            } else {
                Err(StoreError::Conflict(format!("epoch {} is already closed with another report", h.epoch)))
            };
        }
        let mut tx = self.writes.begin().await?;
        sqlx::query(
            "INSERT INTO epochs (epoch, start_ts, end_ts, emission, cumulative_total, leaf_count, root, report_hash, report, closed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(h.epoch as i64)
        .bind(h.start_ts)
        .bind(h.end_ts)
        .bind(h.emission as i64)
        .bind(h.cumulative_total as i64)
        .bind(h.leaf_count as i64)
        .bind(hex::encode(closed.root))
        .bind(hex::encode(closed.report_hash))
        .bind(String::from_utf8_lossy(&closed.report).into_owned())
        .bind(closed_at)
        .execute(&mut *tx)
        .await?;
        // A stored epoch's inputs are fixed: ingest refuses its intervals from now on (an
        // imported epoch too).
        self.move_fence(&mut tx, h.end_ts).await?;
        for (index, (key, leaf)) in closed.leaves().iter().enumerate() {
            sqlx::query(
                "INSERT INTO epoch_leaves (epoch, leaf_index, device_key, cumulative_amount, reputation_bps, epochs_active, faults, \
                 energy_delivered_wh, flexibility_delivered_wh) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(h.epoch as i64)
            .bind(index as i64)
            .bind(key_to_text(key))
            .bind(leaf.cumulative_amount as i64)
            .bind(i64::from(leaf.reputation_bps))
            .bind(i64::from(leaf.epochs_active))
            .bind(i64::from(leaf.faults))
            .bind(leaf.energy_delivered_wh as i64)
            .bind(leaf.flexibility_delivered_wh as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn epoch(&self, epoch: u64) -> Result<Option<EpochRecord>, StoreError> {
        let row = sqlx::query(select_epochs!("WHERE epoch = $1")).bind(epoch as i64).fetch_optional(&self.pool).await?;
        row.as_ref().map(epoch_from_row).transpose()
    }

    /// Closed epochs, newest first.
    pub async fn epochs(&self, limit: i64) -> Result<Vec<EpochRecord>, StoreError> {
        let rows = sqlx::query(select_epochs!("ORDER BY epoch DESC LIMIT $1")).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(epoch_from_row).collect()
    }

    /// Closed epochs not yet seen posted on-chain, oldest first.
    pub async fn unposted_epochs(&self) -> Result<Vec<u64>, StoreError> {
        let rows = sqlx::query("SELECT epoch FROM epochs WHERE posted_at IS NULL ORDER BY epoch").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get::<i64, _>("epoch")? as u64)).collect()
    }

    /// Where the oldest closed epoch not yet seen posted starts.
    pub async fn oldest_unposted_epoch_start(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(start_ts) FROM epochs WHERE posted_at IS NULL").fetch_one(&self.pool).await?)
    }

    pub async fn epoch_report(&self, epoch: u64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT report FROM epochs WHERE epoch = $1")
            .bind(epoch as i64)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get("report")))
    }

    /// The leaves of `epoch` in leaf order.
    pub async fn epoch_leaves(&self, epoch: u64) -> Result<Vec<(DeviceKey, ovpp::protocol::RewardLeaf)>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM epoch_leaves WHERE epoch = $1 ORDER BY leaf_index").bind(epoch as i64).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let corrupt = |name: &str| StoreError::Corrupt { table: "epoch_leaves", detail: name.to_string() };
                let leaf = ovpp::protocol::RewardLeaf {
                    epoch,
                    cumulative_amount: row.try_get::<i64, _>("cumulative_amount")? as u64,
                    reputation_bps: u16::try_from(row.try_get::<i64, _>("reputation_bps")?).map_err(|_| corrupt("reputation_bps"))?,
                    epochs_active: u32::try_from(row.try_get::<i64, _>("epochs_active")?).map_err(|_| corrupt("epochs_active"))?,
                    faults: u32::try_from(row.try_get::<i64, _>("faults")?).map_err(|_| corrupt("faults"))?,
                    energy_delivered_wh: row.try_get::<i64, _>("energy_delivered_wh")? as u64,
                    flexibility_delivered_wh: row.try_get::<i64, _>("flexibility_delivered_wh")? as u64,
                };
                Ok((key_from_text("epoch_leaves", &row.try_get::<String, _>("device_key")?)?, leaf))
            })
            .collect()
    }

    /// One device's cumulative amount in each of the last `limit` epochs closed here that
    /// have a leaf for it, oldest first.
    pub async fn device_earnings(&self, device: &DeviceKey, limit: i64) -> Result<Vec<(u64, u64)>, StoreError> {
        let rows = sqlx::query("SELECT epoch, cumulative_amount FROM epoch_leaves WHERE device_key = $1 ORDER BY epoch DESC LIMIT $2")
            .bind(key_to_text(device))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("epoch")? as u64, r.try_get::<i64, _>("cumulative_amount")? as u64)))
            .collect::<Result<_, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    /// Records an oracle's signature for an epoch (idempotent).
    pub async fn add_epoch_signature(&self, epoch: u64, signer: &[u8; 32], signature: &[u8; 64]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO epoch_signatures (epoch, signer, signature) VALUES ($1, $2, $3) ON CONFLICT (epoch, signer) DO NOTHING")
            .bind(epoch as i64)
            .bind(key_to_text(signer))
            .bind(bs58::encode(signature).into_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    pub async fn epoch_signatures(&self, epoch: u64) -> Result<Vec<([u8; 32], [u8; 64])>, StoreError> {
        let rows = sqlx::query("SELECT signer, signature FROM epoch_signatures WHERE epoch = $1 ORDER BY signer")
            .bind(epoch as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let signer = key_from_text("epoch_signatures", &row.try_get::<String, _>("signer")?)?;
                let text: String = row.try_get("signature")?;
                let mut signature = [0u8; 64];
                match bs58::decode(&text).onto(&mut signature) {
                    Ok(64) => Ok((signer, signature)),
                    _ => Err(StoreError::Corrupt { table: "epoch_signatures", detail: format!("bad signature {text}") }),
                }
            })
            .collect()
    }

    pub async fn mark_epoch_posted(&self, epoch: u64, signature: Option<&str>, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE epochs SET posted_signature = $1, posted_at = $2 WHERE epoch = $3")
            .bind(signature)
            .bind(at)
            .bind(epoch as i64)
            .execute(&self.writes)
            .await?;
        Ok(())
    }
}
