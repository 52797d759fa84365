//! Dispatch's durable state in the oracle's database (migration 0006): programs, events,
//! commands and acknowledgements, preferences, event reports and measured deliveries.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use crate::store::{key_from_text, key_to_text, statement_chunks, Store, StoreError};
use ovpp_wire::device::DeviceKey;
use ovpp_wire::dispatch::command::{Command, Preferences};
use ovpp_wire::dispatch::event::{GridEvent, Signal, WireProgram};
use ovpp_wire::dispatch::view::EventReport;

/// A stored program with its times.
#[derive(Clone, Debug)]
pub struct ProgramRow {
    pub id: String,
    pub program: WireProgram,
    pub created: i64,
    pub modified: i64,
}

fn program_from_row(r: &sqlx::any::AnyRow) -> Result<ProgramRow, StoreError> {
    let created: i64 = r.try_get("created_at")?;
    Ok(ProgramRow {
        id: r.try_get("id")?,
        program: serde_json::from_str(&r.try_get::<String, _>("body")?).map_err(|e| corrupt("grid_programs", e))?,
        created,
        modified: r.try_get::<Option<i64>, _>("modified_at")?.unwrap_or(created),
    })
}

fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, detail: e.to_string() }
}

impl Store {
    pub async fn insert_program(&self, id: &str, program: &WireProgram, at: i64) -> Result<bool, StoreError> {
        let body = serde_json::to_string(program).map_err(|e| corrupt("grid_programs", e))?;
        let done = sqlx::query(
            "INSERT INTO grid_programs (id, body, created_at, modified_at) VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(body)
        .bind(at)
        .execute(&self.writes)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a program's body; false when there is no such program.
    pub async fn update_program(&self, id: &str, program: &WireProgram, at: i64) -> Result<bool, StoreError> {
        let body = serde_json::to_string(program).map_err(|e| corrupt("grid_programs", e))?;
        let done = sqlx::query("UPDATE grid_programs SET body = $1, modified_at = $2 WHERE id = $3")
            .bind(body)
            .bind(at)
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a program that no event refers to; false when some event does.
    pub async fn delete_program(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM grid_programs WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM grid_events WHERE program_id = $1)")
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn programs(&self) -> Result<Vec<ProgramRow>, StoreError> {
        let rows = sqlx::query("SELECT id, body, created_at, modified_at FROM grid_programs ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(program_from_row).collect()
    }

    /// One program as stored (another process sharing the database may have written it).
    pub async fn program(&self, id: &str) -> Result<Option<ProgramRow>, StoreError> {
        let row = sqlx::query("SELECT id, body, created_at, modified_at FROM grid_programs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(program_from_row).transpose()
    }

    /// Inserts or replaces an event (modify and cancel rewrite it).
    pub async fn save_event(&self, event: &GridEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| corrupt("grid_events", e))?;
        sqlx::query(
            "INSERT INTO grid_events (id, program_id, region, start_at, end_at, cancelled, body) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET region = excluded.region, start_at = excluded.start_at, end_at = excluded.end_at, \
             cancelled = excluded.cancelled, body = excluded.body",
        )
        .bind(&event.id)
        .bind(&event.program_id)
        .bind(&event.region)
        .bind(event.start())
        .bind(event.end())
        .bind(i64::from(event.cancelled))
        .bind(body)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    /// One event as stored (another process sharing the database may have written it).
    pub async fn event(&self, id: &str) -> Result<Option<GridEvent>, StoreError> {
        let row = sqlx::query("SELECT body FROM grid_events WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| serde_json::from_str(&r.try_get::<String, _>("body")?).map_err(|e| corrupt("grid_events", e))).transpose()
    }

    pub async fn events(&self) -> Result<Vec<GridEvent>, StoreError> {
        let rows = sqlx::query("SELECT body FROM grid_events ORDER BY start_at, id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| serde_json::from_str(&r.try_get::<String, _>("body")?).map_err(|e| corrupt("grid_events", e))).collect()
    }

    /// Ends the event's commands still in force at `at` and records `commands` in their
    /// place, in one transaction.
    pub async fn issue_commands(&self, event_id: &str, commands: &[Command], at: i64) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("UPDATE dispatch_commands SET superseded_at = $1 WHERE event_id = $2 AND superseded_at IS NULL AND valid_until > $1")
            .bind(at)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        for chunk in commands.chunks(256) {
            let sql = format!(
                "INSERT INTO dispatch_commands (id, event_id, device_key, valid_from, valid_until, setpoint_w, issued_at) VALUES {} \
                 ON CONFLICT (id) DO NOTHING",
                self.backend.values(chunk.len(), 7, 0)
            );
            let insert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, c| {
                q.bind(c.id.as_str())
                    .bind(c.event_id.as_str())
                    .bind(key_to_text(&c.device_key))
                    .bind(c.valid_from)
                    .bind(c.valid_until)
                    .bind(c.setpoint_w)
                    .bind(c.issued_at)
            });
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Commands not superseded, valid until after `after`.
    pub async fn live_commands(&self, after: i64) -> Result<Vec<Command>, StoreError> {
        let rows = sqlx::query("SELECT * FROM dispatch_commands WHERE superseded_at IS NULL AND valid_until > $1 ORDER BY valid_from, id")
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(command_from_row).collect()
    }

    /// Records another oracle's commands of an event as they were (for re-measuring it).
    pub async fn import_commands(&self, commands: &[(Command, Option<i64>)]) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        for (c, superseded) in commands {
            sqlx::query(
                "INSERT INTO dispatch_commands (id, event_id, device_key, valid_from, valid_until, setpoint_w, issued_at, superseded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&c.id)
            .bind(&c.event_id)
            .bind(key_to_text(&c.device_key))
            .bind(c.valid_from)
            .bind(c.valid_until)
            .bind(c.setpoint_w)
            .bind(c.issued_at)
            .bind(*superseded)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every command an event issued, superseded or not, with when it was superseded.
    pub async fn event_commands(&self, event_id: &str) -> Result<Vec<(Command, Option<i64>)>, StoreError> {
        let rows = sqlx::query("SELECT * FROM dispatch_commands WHERE event_id = $1 ORDER BY issued_at, id")
            .bind(event_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((command_from_row(r)?, r.try_get::<Option<i64>, _>("superseded_at")?))).collect()
    }

    /// Commands of events other than `event_id` to `devices` in force at some time in
    /// `[start, end)` (issued, in force before they were superseded, not refused by the
    /// device), with when each was superseded.
    pub async fn commands_overlapping(
        &self,
        event_id: &str,
        devices: &[DeviceKey],
        start: i64,
        end: i64,
    ) -> Result<Vec<(Command, Option<i64>)>, StoreError> {
        let keys: Vec<String> = devices.iter().map(key_to_text).collect();
        let mut out = Vec::new();
        for chunk in statement_chunks(&keys, 256) {
            let sql = format!(
                "SELECT * FROM dispatch_commands WHERE event_id <> {} AND valid_from < {} AND valid_until > {} \
                 AND (superseded_at IS NULL OR (superseded_at > {} AND superseded_at > valid_from)) \
                 AND (accepted IS NULL OR accepted = 1) AND device_key IN {} ORDER BY issued_at, id",
                self.backend.param(1),
                self.backend.param(2),
                self.backend.param(3),
                self.backend.param(4),
                self.backend.values(1, chunk.len(), 4)
            );
            let query =
                chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)).bind(event_id).bind(end).bind(start).bind(start), |q, k| q.bind(k));
            for r in query.fetch_all(&self.pool).await? {
                out.push((command_from_row(&r)?, r.try_get::<Option<i64>, _>("superseded_at")?));
            }
        }
        Ok(out)
    }

    /// A device's commands valid at some time since `since`, newest first (at most `limit`),
    /// each with the device's answer (`Some(true)` accepted, `Some(false)` refused) and when.
    pub async fn device_commands(
        &self,
        device: &DeviceKey,
        since: i64,
        limit: i64,
    ) -> Result<Vec<(Command, Option<bool>, Option<i64>)>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM dispatch_commands WHERE device_key = $1 AND valid_until > $2 ORDER BY valid_from DESC, id LIMIT $3")
                .bind(key_to_text(device))
                .bind(since)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let accepted: Option<i64> = r.try_get("accepted")?;
                Ok((command_from_row(r)?, accepted.map(|a| a == 1), r.try_get("acked_at")?))
            })
            .collect()
    }

    /// Records a device's answer; `false` if the command is unknown or was answered
    /// otherwise. The same answer again (a restarted gateway resending) is taken, as a
    /// retried telemetry batch is: the first one stays recorded.
    pub async fn ack_command(&self, id: &str, device: &DeviceKey, accept: bool, signature: &[u8; 64], at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE dispatch_commands SET accepted = $1, ack_signature = $2, acked_at = $3 WHERE id = $4 AND device_key = $5 AND accepted IS NULL",
        )
        .bind(i64::from(accept))
        .bind(bs58::encode(signature).into_string())
        .bind(at)
        .bind(id)
        .bind(key_to_text(device))
        .execute(&self.writes)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let recorded: Option<Option<i64>> = sqlx::query_scalar("SELECT accepted FROM dispatch_commands WHERE id = $1 AND device_key = $2")
            .bind(id)
            .bind(key_to_text(device))
            .fetch_optional(&self.pool)
            .await?;
        Ok(recorded.flatten() == Some(i64::from(accept)))
    }

    /// Devices that refused a command of each event still running after `after`.
    pub async fn refusals(&self, after: i64) -> Result<Vec<(String, DeviceKey)>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT event_id, device_key FROM dispatch_commands WHERE accepted = 0 AND valid_until > $1")
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("event_id")?, key_from_text("dispatch_commands", &r.try_get::<String, _>("device_key")?)?)))
            .collect()
    }

    /// Stores preferences if their sequence is newer than the stored one; `false` if not.
    pub async fn save_preferences(&self, prefs: &Preferences) -> Result<bool, StoreError> {
        let body = serde_json::to_string(prefs).map_err(|e| corrupt("device_preferences", e))?;
        let done = sqlx::query(
            "INSERT INTO device_preferences (device_key, sequence, body) VALUES ($1, $2, $3) \
             ON CONFLICT (device_key) DO UPDATE SET sequence = excluded.sequence, body = excluded.body \
             WHERE excluded.sequence > device_preferences.sequence",
        )
        .bind(key_to_text(&prefs.device_key))
        .bind(prefs.sequence as i64)
        .bind(body)
        .execute(&self.writes)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn preferences(&self) -> Result<HashMap<DeviceKey, Preferences>, StoreError> {
        let rows = sqlx::query("SELECT body FROM device_preferences").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let p: Preferences =
                    serde_json::from_str(&r.try_get::<String, _>("body")?).map_err(|e| corrupt("device_preferences", e))?;
                Ok((p.device_key, p))
            })
            .collect()
    }

    /// Stores an event's report and what each device is paid for, per interval, credited at
    /// `credited_at`.
    pub async fn save_event_report(
        &self,
        event_id: &str,
        report: &EventReport,
        deliveries: &[(DeviceKey, i64, u64)],
        measured_with: &super::MeasuredWith,
        credited_at: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        let response = if report.signal == Signal::Price.name() { "price" } else { "demand" };
        let mut tx = self.writes.begin().await?;
        sqlx::query(
            "INSERT INTO event_reports (event_id, measured_at, credited_at, body, inputs) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (event_id) DO UPDATE SET measured_at = excluded.measured_at, credited_at = excluded.credited_at, \
             body = excluded.body, inputs = excluded.inputs",
        )
        .bind(event_id)
        .bind(at)
        .bind(credited_at)
        .bind(serde_json::to_string(report).map_err(|e| corrupt("event_reports", e))?)
        .bind(serde_json::to_string(measured_with).map_err(|e| corrupt("event_reports", e))?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM dr_deliveries WHERE event_id = $1").bind(event_id).execute(&mut *tx).await?;
        for chunk in deliveries.chunks(256) {
            let sql = format!(
                "INSERT INTO dr_deliveries (event_id, device_key, interval_start, delivered_wh, credited_at, response) VALUES {}",
                self.backend.values(chunk.len(), 6, 0)
            );
            let insert = chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), |q, (device, start, wh)| {
                q.bind(event_id).bind(key_to_text(device)).bind(*start).bind(*wh as i64).bind(credited_at).bind(response)
            });
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn event_report(&self, event_id: &str) -> Result<Option<EventReport>, StoreError> {
        let row = sqlx::query("SELECT body FROM event_reports WHERE event_id = $1").bind(event_id).fetch_optional(&self.pool).await?;
        row.map(|r| serde_json::from_str(&r.try_get::<String, _>("body")?).map_err(|e| corrupt("event_reports", e))).transpose()
    }

    /// Every event report (or the one of `event_id`) with when it was measured, oldest first.
    pub async fn event_reports(&self, event_id: Option<&str>) -> Result<Vec<(EventReport, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT body, measured_at FROM event_reports WHERE ($1 IS NULL OR event_id = $1) ORDER BY measured_at, event_id")
                .bind(event_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let report = serde_json::from_str(&r.try_get::<String, _>("body")?).map_err(|e| corrupt("event_reports", e))?;
                Ok((report, r.try_get("measured_at")?))
            })
            .collect()
    }

    /// What the measurement of `event_id` read besides the event and the readings (empty
    /// for reports stored before it was kept).
    pub async fn measured_with(&self, event_id: &str) -> Result<super::MeasuredWith, StoreError> {
        let inputs: Option<Option<String>> =
            sqlx::query_scalar("SELECT inputs FROM event_reports WHERE event_id = $1").bind(event_id).fetch_optional(&self.pool).await?;
        match inputs.flatten() {
            Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("event_reports", e)),
            None => Ok(Default::default()),
        }
    }

    /// The measured events credited in `[start, end)`, with their credit time.
    pub async fn events_credited(&self, start: i64, end: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT event_id, credited_at FROM event_reports WHERE credited_at >= $1 AND credited_at < $2 ORDER BY event_id")
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok((r.try_get("event_id")?, r.try_get("credited_at")?))).collect()
    }

    /// The events that have a report.
    pub async fn measured_events(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT event_id FROM event_reports").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get("event_id")?)).collect()
    }

    /// Paid Wh per device of the events credited in `[start, end)`: demand response (power
    /// events) and price response (price schedules).
    pub async fn responses_wh(&self, start: i64, end: i64) -> Result<HashMap<DeviceKey, ResponsesWh>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_key, response, CAST(SUM(delivered_wh) AS BIGINT) AS wh FROM dr_deliveries \
             WHERE credited_at >= $1 AND credited_at < $2 GROUP BY device_key, response",
        )
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<DeviceKey, ResponsesWh> = HashMap::new();
        for r in &rows {
            let entry = out.entry(key_from_text("dr_deliveries", &r.try_get::<String, _>("device_key")?)?).or_default();
            let wh = r.try_get::<i64, _>("wh")?.max(0) as u64;
            match r.try_get::<String, _>("response")?.as_str() {
                "demand" => entry.demand = wh,
                "price" => entry.price = wh,
                other => return Err(corrupt("dr_deliveries", format!("unknown response {other:?}"))),
            }
        }
        Ok(out)
    }
}

/// What one device is paid for in an epoch's events, Wh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponsesWh {
    pub demand: u64,
    pub price: u64,
}

fn command_from_row(r: &sqlx::any::AnyRow) -> Result<Command, StoreError> {
    Ok(Command {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        device_key: key_from_text("dispatch_commands", &r.try_get::<String, _>("device_key")?)?,
        valid_from: r.try_get("valid_from")?,
        valid_until: r.try_get("valid_until")?,
        setpoint_w: r.try_get("setpoint_w")?,
        issued_at: r.try_get("issued_at")?,
    })
}
