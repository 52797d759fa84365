//! One charger's connection: its calls answered (readings committed to the buffer before
//! the CALLRESULT goes out), the gateway's calls sent one at a time (OCPP allows one
//! outstanding call per direction), and readings for idle chargers on a timer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ovpp_wire::clock::unix_now;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::frame::{self, ErrorKind, Frame};
use super::meter;
use super::{Charger, Link, OcppAdapter, OutCall, Version};
use crate::adapter::Sink;
use crate::register::{self, MeterCursor, Sample};
use crate::store::Record;

/// A failed call: what to answer in the CALLERROR.
type Failure = (ErrorKind, String);
type Reply = oneshot::Sender<Result<Value, String>>;

struct Session {
    adapter: Arc<OcppAdapter>,
    charger: Arc<Charger>,
    version: Version,
    sink: Sink,
    cursor: Option<MeterCursor>,
    /// Reading length, s.
    grid: i64,
    /// This connection's number (`Charger::generations`).
    generation: u64,
}

pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    adapter: Arc<OcppAdapter>,
    charger: Arc<Charger>,
    version: Option<Version>,
    mut ws: WebSocketStream<S>,
    sink: Sink,
) -> Result<(), String> {
    let id = charger.config.id.clone();
    let Some(version) = version else {
        // OCPP: a CSMS that agrees to none of the offered subprotocols completes the
        // handshake without one, then closes.
        let reason = "offer the subprotocol ocpp1.6 or ocpp2.0.1";
        let _ = ws.close(Some(CloseFrame { code: CloseCode::Protocol, reason: reason.into() })).await;
        return Err(format!("charger {id} offered no OCPP subprotocol"));
    };
    // From here on, the connection it replaces (if any) meters no more.
    let generation = charger.generations.fetch_add(1, Ordering::Relaxed) + 1;
    let cursor = {
        let _metering = charger.metering.lock().await;
        sink.saved(&id).await.map_err(|e| e.to_string())?
    };
    let (calls, mut queued) = mpsc::channel::<OutCall>(8);
    let kick = Arc::new(Notify::new());
    let previous = charger.link.lock().expect("not poisoned").replace(Link { version, calls, kick: kick.clone(), generation });
    if let Some(previous) = previous {
        previous.kick.notify_one();
    }
    tracing::info!(charger = %id, version = version.subprotocol(), "charger connected");
    let grid = i64::from(adapter.config.interval_secs);
    let silence = Duration::from_secs(u64::from(adapter.config.heartbeat_secs).max(20) * 3);
    let mut session = Session { adapter, charger: charger.clone(), version, sink, cursor, grid, generation };
    if session.cursor.is_none() {
        // Metered from the grid time it connects in: nothing is drawn before a transaction,
        // and the first transaction's register re-bases this start.
        let now = unix_now();
        let (_, fresh) = register::advance(None, &Sample { t: now, power_w: Some(0.0), ..Sample::default() }, grid);
        session.cursor = fresh.map(|c| MeterCursor { start: Some((now.div_euclid(grid) * grid, 0.0)), ..c });
    }
    // The gateway's one call awaiting the charger's answer: message id, reply, sent at.
    let mut outstanding: Option<(String, Reply, Instant)> = None;
    let mut call_ids = 0u64;
    let mut last_heard = Instant::now();
    let call_timeout = Duration::from_secs(session.adapter.config.call_timeout_secs);
    let outcome = loop {
        // Woken only when something is due (not on a fixed tick: a gateway holds thousands
        // of these): the charger's silence limit, the answer to the call in flight, and,
        // with no transaction, the next grid time (an idle reading).
        let mut wake = last_heard + silence;
        if let Some((_, _, sent)) = &outstanding {
            wake = wake.min(*sent + call_timeout);
        }
        if charger.live.lock().expect("not poisoned").transaction.is_none() {
            wake = wake.min(Instant::now() + until_next_grid_time(grid));
        }
        tokio::select! {
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        let reply = frame::error("-1", ErrorKind::RpcFramework.code(version), "OCPP-J messages are text frames");
                        if ws.send(Message::text(reply)).await.is_err() { break Ok(()) }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None => break Ok(()),
                    Some(Ok(_)) => { last_heard = Instant::now(); continue }
                    Some(Err(e)) => break Err(format!("charger {id}: {e}")),
                };
                last_heard = Instant::now();
                let reply = match frame::parse(&text) {
                    Ok(Frame::Call { id: message_id, action, payload }) => Some(match session.call(&action, &payload).await {
                        Ok(answer) => frame::result(&message_id, &answer),
                        Err((kind, description)) => {
                            tracing::info!(charger = %id, action = %action, code = kind.code(version), "{description}");
                            frame::error(&message_id, kind.code(version), &description)
                        }
                    }),
                    Ok(Frame::Result { id: message_id, payload }) => {
                        if let Some((_, reply, _)) = outstanding.take_if(|(expected, _, _)| *expected == message_id) {
                            let _ = reply.send(Ok(payload));
                        }
                        None
                    }
                    Ok(Frame::Error { id: message_id, code, description }) => {
                        if let Some((_, reply, _)) = outstanding.take_if(|(expected, _, _)| *expected == message_id) {
                            let _ = reply.send(Err(format!("the charger answered CALLERROR {code}: {description}")));
                        }
                        None
                    }
                    Err(unreadable) => {
                        tracing::info!(charger = %id, "unreadable frame: {}", unreadable.description);
                        Some(frame::error(&unreadable.id, unreadable.kind.code(version), &unreadable.description))
                    }
                };
                if let Some(reply) = reply {
                    if ws.send(Message::text(reply)).await.is_err() { break Ok(()) }
                }
            }
            Some(call) = queued.recv(), if outstanding.is_none() => {
                call_ids += 1;
                let message_id = format!("ovpp-{generation}-{call_ids}");
                if ws.send(Message::text(frame::call(&message_id, call.action, &call.payload))).await.is_err() {
                    let _ = call.reply.send(Err("the charger disconnected".into()));
                    break Ok(());
                }
                outstanding = Some((message_id, call.reply, Instant::now()));
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if let Some((_, reply, _)) = outstanding.take_if(|(_, _, sent)| sent.elapsed() >= call_timeout) {
                    let _ = reply.send(Err("the charger did not answer in time".into()));
                }
                if last_heard.elapsed() >= silence {
                    break Err(format!("charger {id} silent for {} s", silence.as_secs()));
                }
                if let Err((_, e)) = session.idle_reading().await {
                    tracing::warn!(charger = %id, error = %e, "could not record an idle reading");
                }
            }
            _ = kick.notified() => {
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "replaced by a newer connection".into() })).await;
                break Ok(());
            }
        }
    };
    {
        let mut link = charger.link.lock().expect("not poisoned");
        if link.as_ref().is_some_and(|l| l.generation == generation) {
            *link = None;
        }
    }
    tracing::info!(charger = %id, "charger disconnected");
    // A charger that leaves with no transaction draws nothing more: the reading it left in
    // is completed at the next grid time (unless it is back by then), so the Wh it drew
    // since the last grid time are not left behind.
    let idle = charger.live.lock().expect("not poisoned").transaction.is_none();
    if idle && session.cursor.is_some_and(|c| c.start.is_some() && !c.integrated) {
        tokio::spawn(session.finish());
    }
    outcome
}

/// From now to just past the next multiple of `grid` seconds of the wall clock.
fn until_next_grid_time(grid: i64) -> Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let grid_ms = grid.max(1) as u128 * 1000;
    Duration::from_millis((grid_ms - now.as_millis() % grid_ms) as u64 + 5)
}

fn field<'a>(payload: &'a Value, name: &str) -> Result<&'a Value, Failure> {
    payload.get(name).ok_or_else(|| (ErrorKind::Format, format!("{name} is required")))
}

fn text<'a>(payload: &'a Value, name: &str) -> Result<&'a str, Failure> {
    field(payload, name)?.as_str().ok_or_else(|| (ErrorKind::Format, format!("{name} must be a string")))
}

fn integer(payload: &Value, name: &str) -> Result<i64, Failure> {
    field(payload, name)?.as_i64().ok_or_else(|| (ErrorKind::Format, format!("{name} must be an integer")))
}

fn time(payload: &Value, name: &str) -> Result<i64, Failure> {
    super::parse_time(text(payload, name)?).map_err(|e| (ErrorKind::Format, format!("{name}: {e}")))
}

fn now_text() -> String {
    super::time_text(unix_now())
}

impl Session {
    async fn call(&mut self, action: &str, p: &Value) -> Result<Value, Failure> {
        match (self.version, action) {
            (Version::V16, "BootNotification") => {
                text(p, "chargePointVendor")?;
                text(p, "chargePointModel")?;
                Ok(json!({"status": "Accepted", "currentTime": now_text(), "interval": self.adapter.config.heartbeat_secs}))
            }
            (Version::V201, "BootNotification") => {
                let station = field(p, "chargingStation")?;
                text(station, "model")?;
                text(station, "vendorName")?;
                text(p, "reason")?;
                Ok(json!({"currentTime": now_text(), "interval": self.adapter.config.heartbeat_secs, "status": "Accepted"}))
            }
            (_, "Heartbeat") => Ok(json!({"currentTime": now_text()})),
            (Version::V16, "StatusNotification") => {
                integer(p, "connectorId")?;
                text(p, "errorCode")?;
                self.status(text(p, "status")?);
                Ok(json!({}))
            }
            (Version::V201, "StatusNotification") => {
                time(p, "timestamp")?;
                integer(p, "evseId")?;
                integer(p, "connectorId")?;
                self.status(text(p, "connectorStatus")?);
                Ok(json!({}))
            }
            // Authorization is not this gateway's business (no billing): every token is fine.
            (Version::V16, "Authorize") => {
                text(p, "idTag")?;
                Ok(json!({"idTagInfo": {"status": "Accepted"}}))
            }
            (Version::V201, "Authorize") => {
                text(field(p, "idToken")?, "idToken")?;
                Ok(json!({"idTokenInfo": {"status": "Accepted"}}))
            }
            (Version::V16, "StartTransaction") => {
                let connector = integer(p, "connectorId")?;
                text(p, "idTag")?;
                let meter_start = integer(p, "meterStart")?;
                let t = time(p, "timestamp")?;
                let id = super::next_transaction_id(&self.charger);
                self.charger.live.lock().expect("not poisoned").transaction = Some((id.to_string(), connector));
                self.sample(Sample { t, energy_wh: Some(meter_start as f64), ..Sample::default() }).await?;
                Ok(json!({"transactionId": id, "idTagInfo": {"status": "Accepted"}}))
            }
            (Version::V16, "StopTransaction") => {
                let meter_stop = integer(p, "meterStop")?;
                let t = time(p, "timestamp")?;
                integer(p, "transactionId")?;
                if let Some(values) = p.get("transactionData").and_then(Value::as_array) {
                    self.meter_values(values).await?;
                }
                self.sample(Sample { t, energy_wh: Some(meter_stop as f64), power_w: Some(0.0), ..Sample::default() }).await?;
                self.end_transaction();
                Ok(json!({"idTagInfo": {"status": "Accepted"}}))
            }
            (Version::V16, "MeterValues") => {
                integer(p, "connectorId")?;
                let values = field(p, "meterValue")?.as_array().ok_or((ErrorKind::Format, "meterValue must be an array".into()))?;
                self.meter_values(values).await?;
                Ok(json!({}))
            }
            (Version::V201, "MeterValues") => {
                integer(p, "evseId")?;
                let values = field(p, "meterValue")?.as_array().ok_or((ErrorKind::Format, "meterValue must be an array".into()))?;
                self.meter_values(values).await?;
                Ok(json!({}))
            }
            (Version::V201, "TransactionEvent") => self.transaction_event(p).await,
            (_, "DataTransfer") => {
                text(p, "vendorId")?;
                Ok(json!({"status": "UnknownVendorId"}))
            }
            (Version::V16, "DiagnosticsStatusNotification" | "FirmwareStatusNotification")
            | (
                Version::V201,
                "FirmwareStatusNotification" | "LogStatusNotification" | "SecurityEventNotification" | "NotifyEvent" | "NotifyReport",
            ) => Ok(json!({})),
            _ => Err((ErrorKind::NotImplemented, format!("{action} is not implemented by this CSMS"))),
        }
    }

    fn status(&self, status: &str) {
        self.charger.live.lock().expect("not poisoned").status = Some(status.to_string());
    }

    fn end_transaction(&self) {
        let mut live = self.charger.live.lock().expect("not poisoned");
        live.transaction = None;
        live.power_w = 0.0;
    }

    async fn transaction_event(&mut self, p: &Value) -> Result<Value, Failure> {
        let event = text(p, "eventType")?;
        time(p, "timestamp")?;
        text(p, "triggerReason")?;
        integer(p, "seqNo")?;
        let info = field(p, "transactionInfo")?;
        let transaction = text(info, "transactionId")?.to_string();
        let evse = p.get("evse").and_then(|e| e.get("id")).and_then(Value::as_i64).unwrap_or(1);
        {
            let mut live = self.charger.live.lock().expect("not poisoned");
            if event != "Ended" {
                live.transaction = Some((transaction, evse));
            }
            if let Some(state) = info.get("chargingState").and_then(Value::as_str) {
                live.status = Some(state.to_string());
            }
        }
        if let Some(values) = p.get("meterValue").and_then(Value::as_array) {
            self.meter_values(values).await?;
        }
        match event {
            "Started" | "Updated" => {}
            "Ended" => self.end_transaction(),
            other => return Err((ErrorKind::Format, format!("eventType {other:?} is not Started, Updated or Ended"))),
        }
        Ok(match p.get("idToken") {
            Some(_) => json!({"idTokenInfo": {"status": "Accepted"}}),
            None => json!({}),
        })
    }

    async fn meter_values(&mut self, values: &[Value]) -> Result<(), Failure> {
        let mut samples =
            values.iter().map(meter::sample).collect::<Result<Vec<_>, _>>().map_err(|e| (ErrorKind::PropertyConstraint, e))?;
        samples.sort_by_key(|s| s.t);
        for s in samples {
            self.sample(s).await?;
        }
        Ok(())
    }

    /// After the charger left: its open reading, completed flat at the next grid time.
    async fn finish(mut self) {
        let Some(c) = self.cursor else { return };
        let next = (c.last_t.div_euclid(self.grid) + 1) * self.grid;
        tokio::time::sleep(Duration::from_secs((next - unix_now()).max(0) as u64)).await;
        if let Err((_, e)) = self.idle_reading().await {
            tracing::info!(charger = %self.charger.config.id, "no closing reading: {e}");
        }
    }

    /// Takes one sample: the live state, and the reading it completes, committed (with the
    /// new cursor) before the charger is answered.
    async fn sample(&mut self, mut s: Sample) -> Result<(), Failure> {
        let charger = self.charger.clone();
        let _metering = charger.metering.lock().await;
        if charger.generations.load(Ordering::Relaxed) != self.generation {
            return Err((ErrorKind::Internal, "a newer connection of this charger meters it now".into()));
        }
        // A charger clock ahead of ours would give readings from the future, which the
        // oracle refuses: its samples count as now.
        s.t = s.t.min(unix_now());
        {
            let mut live = self.charger.live.lock().expect("not poisoned");
            // A charger that meters only its register draws what the register rose by.
            let from_register = match (self.cursor, s.energy_wh) {
                (Some(c), Some(r)) if !c.integrated && s.t > c.last_t && r >= c.last_wh => {
                    Some((r - c.last_wh) * 3600.0 / (s.t - c.last_t) as f64)
                }
                _ => None,
            };
            if let Some(p) = s.power_w.or(from_register) {
                live.power_w = p;
            }
            if let Some(soc) = s.soc_percent {
                live.soc_percent = Some(soc.min(100.0));
            }
        }
        let (intervals, next) = register::advance(self.cursor, &s, self.grid);
        if next == self.cursor {
            return Ok(());
        }
        let mut records = Vec::new();
        for iv in intervals {
            for (device, reading) in self.charger.readings(iv) {
                records.push(Record { device, reading: Some(reading), cursor: None });
            }
        }
        // The cursor goes with the last record, in the same transaction.
        if let Some(cursor) = &next {
            records.push(Record::state(&self.charger.config.id, cursor));
        }
        self.sink.record(records).await.map_err(|e| (ErrorKind::Internal, format!("the gateway could not store the reading: {e}")))?;
        self.cursor = next;
        Ok(())
    }

    /// With no transaction, nothing is drawn: once a grid time has passed, a flat sample
    /// now completes the idle charger's readings.
    async fn idle_reading(&mut self) -> Result<(), Failure> {
        if self.charger.live.lock().expect("not poisoned").transaction.is_some() {
            return Ok(());
        }
        let now = unix_now();
        match self.cursor {
            Some(c) if now.div_euclid(self.grid) == c.last_t.div_euclid(self.grid) => Ok(()),
            Some(c) => {
                let energy_wh = (!c.integrated).then_some(c.last_wh);
                self.sample(Sample { t: now, energy_wh, power_w: Some(0.0), ..Sample::default() }).await
            }
            None => self.sample(Sample { t: now, power_w: Some(0.0), ..Sample::default() }).await,
        }
    }
}
