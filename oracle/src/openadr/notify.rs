//! Webhook notifications of OpenADR 3.0.1 subscriptions: after a write, every subscription
//! whose `objectOperations` name the object type and the operation (and whose program is
//! the object's, for programs, events and reports) gets `POST callbackUrl` with
//! `{objectType, operation, object}`, with its `bearerToken` if it gave one. A VEN's
//! subscription only hears of objects that VEN may read. Delivery is best effort: three
//! tries, 5 s each, then the notification is logged as lost (subscribers also poll).

use std::time::Duration;

use serde_json::{json, Value};

use super::auth::{Client, Role, GRID_OPERATOR};
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

#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    /// Business-logic owners (they hear of every object).
    business: Vec<String>,
}

impl Notifier {
    pub fn new(clients: &[Client]) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a plain HTTP client builds");
        let business =
            clients.iter().filter(|c| c.role == Role::Business).map(|c| c.id.clone()).chain([GRID_OPERATOR.to_string()]).collect();
        Self { http, business }
    }

    /// Sends `change` to the matching subscriptions, in the background.
    pub fn notify(&self, store: &Store, change: Change) {
        let (http, store, business) = (self.http.clone(), store.clone(), self.business.clone());
        tokio::spawn(async move {
            let subscriptions = match store.objects(Kind::Subscription, &Filter::default()).await {
                Ok(s) => s,
                Err(e) => return tracing::warn!(error = %e, "notifications not sent: reading subscriptions failed"),
            };
            let body = json!({"objectType": change.object_type, "operation": change.operation, "object": change.object});
            for subscription in subscriptions {
                if change.readable_by.as_ref().is_some_and(|r| *r != subscription.owner) && !business.contains(&subscription.owner) {
                    continue;
                }
                if change.program_id.is_some() && subscription.program_id != change.program_id {
                    continue;
                }
                for operation in subscription.body["objectOperations"].as_array().into_iter().flatten() {
                    let names = |field: &str, wanted: &str| {
                        operation[field].as_array().is_some_and(|a| a.iter().any(|v| v.as_str() == Some(wanted)))
                    };
                    let operation_named = names("operations", change.subscribed_as()) || names("operations", change.operation);
                    if !names("objects", change.object_type) || !operation_named {
                        continue;
                    }
                    let Some(url) = operation["callbackUrl"].as_str() else { continue };
                    deliver(&http, url, operation["bearerToken"].as_str(), &body, &subscription.id).await;
                }
            }
        });
    }
}

async fn deliver(http: &reqwest::Client, url: &str, bearer: Option<&str>, body: &Value, subscription: &str) {
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
