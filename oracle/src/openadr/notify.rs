//! Webhook notifications of OpenADR 3.0.1 subscriptions: after a write, every subscription
//! whose `objectOperations` name the object type and the operation (and whose program is
//! the object's, for programs, events and reports) gets `POST callbackUrl` with
//! `{objectType, operation, object}`, with its `bearerToken` if it gave one. A VEN's
//! subscription only hears of objects that VEN may read. Delivery is best effort and bounded:
//! a queue of 1024 changes, 16 deliveries at once, three tries of 5 s each, no redirects, and
//! no private or loopback addresses unless allowed; then the notification is logged as lost
//! (subscribers also poll).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use super::clients::{Client, Role, GRID_OPERATOR};
use super::objects::{Filter, Kind};
use crate::store::Store;

/// A change to notify: the object as served, who may read it (`None`: everyone), and its program.
pub struct Change {
    pub object_type: &'static str,
    /// 3.0.1's notification operation: `POST`, `PUT` or `DELETE`.
    pub operation: &'static str,
    pub object: Value,
    pub program_id: Option<String>,
    pub readable_by: Option<String>,
}

impl Change {
    /// The change of a stored object: readable by its owner (and business logic).
    pub fn of(object: &super::objects::Object, operation: &'static str) -> Self {
        Change {
            object_type: object.kind.name(),
            operation,
            object: object.to_json(),
            program_id: object.program_id.clone(),
            readable_by: Some(object.owner.clone()),
        }
    }

    /// The subscription operation this one is, in 3.0.1's name (`CREATE`, `UPDATE`,
    /// `DELETE`); 3.0.0's HTTP verb is the notification's own operation.
    fn subscribed_as(&self) -> &'static str {
        match self.operation {
            "POST" => "CREATE",
            "PUT" => "UPDATE",
            _ => "DELETE",
        }
    }
}

/// Changes waiting to be notified; beyond, a change is dropped (and logged): notification
/// is best effort, subscribers also poll.
const QUEUE: usize = 1024;
/// Deliveries in flight at once.
const IN_FLIGHT: usize = 16;

pub struct Notifier {
    queue: mpsc::Sender<Change>,
}

impl Notifier {
    /// Starts the delivery worker. `clients`: business-logic owners hear of every object.
    /// `private_callbacks`: also deliver to loopback and private addresses (otherwise a
    /// subscriber could make the oracle call services on its own network).
    pub fn new(store: Store, clients: &[Client], private_callbacks: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        let business: Vec<String> =
            clients.iter().filter(|c| c.role == Role::Business).map(|c| c.id.clone()).chain([GRID_OPERATOR.to_string()]).collect();
        let (queue, changes) = mpsc::channel(QUEUE);
        tokio::spawn(deliver_all(changes, store, http, business, private_callbacks));
        Self { queue }
    }

    /// Queues `change` for the matching subscriptions.
    pub fn notify(&self, change: Change) {
        if let Err(e) = self.queue.try_send(change) {
            tracing::warn!(error = %e, "notification dropped: the delivery queue is full");
        }
    }
}

async fn deliver_all(mut changes: mpsc::Receiver<Change>, store: Store, http: reqwest::Client, business: Vec<String>, private: bool) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(change) = changes.recv().await {
        let subscriptions = match store.objects(Kind::Subscription, &Filter::default()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "notification not sent: reading subscriptions failed");
                continue;
            }
        };
        let body = Arc::new(json!({"objectType": change.object_type, "operation": change.operation, "object": change.object}));
        for subscription in subscriptions {
            if change.readable_by.as_ref().is_some_and(|r| *r != subscription.owner) && !business.contains(&subscription.owner) {
                continue;
            }
            if change.program_id.is_some() && subscription.program_id != change.program_id {
                continue;
            }
            for operation in subscription.body["objectOperations"].as_array().into_iter().flatten() {
                let names =
                    |field: &str, wanted: &str| operation[field].as_array().is_some_and(|a| a.iter().any(|v| v.as_str() == Some(wanted)));
                let operation_named = names("operations", change.subscribed_as()) || names("operations", change.operation);
                if !names("objects", change.object_type) || !operation_named {
                    continue;
                }
                let Some(url) = operation["callbackUrl"].as_str() else { continue };
                let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
                let (http, body, url, id) = (http.clone(), body.clone(), url.to_string(), subscription.id.clone());
                let bearer = operation["bearerToken"].as_str().map(str::to_string);
                tokio::spawn(async move {
                    deliver(&http, &url, bearer.as_deref(), &body, &id, private).await;
                    drop(slot);
                });
            }
        }
    }
}

/// Whether an address is one a subscriber may not make the oracle call.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Refuses a callback whose host resolves to a private address (unless allowed).
async fn allowed(url: &str, private: bool) -> Result<(), String> {
    if private {
        return Ok(());
    }
    let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?.trim_matches(|c| c == '[' || c == ']').to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<_> = tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| e.to_string())?.collect();
    match addresses.iter().find(|a| is_private(a.ip())) {
        Some(a) => Err(format!("{host} is the private address {} (--openadr-private-callbacks allows it)", a.ip())),
        None => Ok(()),
    }
}

async fn deliver(http: &reqwest::Client, url: &str, bearer: Option<&str>, body: &Value, subscription: &str, private: bool) {
    if let Err(why) = allowed(url, private).await {
        return tracing::warn!(subscription, url, reason = %why, "notification not sent");
    }
    for attempt in 1..=3u32 {
        let mut request = http.post(url).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::debug!(subscription, url, status = %r.status(), attempt, "notification refused"),
            Err(e) => tracing::debug!(subscription, url, error = %e, attempt, "notification not delivered"),
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
    tracing::warn!(subscription, url, "notification lost after 3 tries");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }
}
