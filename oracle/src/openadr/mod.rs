//! OpenADR 3.0.1 beyond HTTP (the VTN's routes are `crate::server::openadr`): the VTN's
//! OAuth2 clients and tokens ([`clients`]), its stored reports, subscriptions, VENs and
//! resources ([`objects`]), webhook notifications ([`notify`]), the measurement as an OpenADR
//! report ([`measurement`]), and the oracle as a **VEN** of utilities' VTNs ([`ven`]): their
//! events dispatched to the fleet, the measured delivery reported back.

pub mod clients;
pub mod measurement;
pub mod notify;
pub mod objects;
pub mod ven;

pub use clients::Client;
pub use notify::Notifier;

/// What the VTN needs beside the dispatcher and the store, and the VENs of other VTNs.
pub struct Vtn {
    pub clients: Vec<Client>,
    pub notifier: Notifier,
    pub vens: Vec<std::sync::Arc<ven::Ven>>,
}

impl Vtn {
    /// `private_callbacks`: webhooks may call loopback and private addresses.
    pub fn new(store: crate::store::Store, clients: Vec<Client>, vtns: Vec<ven::VtnSettings>, private_callbacks: bool) -> Self {
        let vens = vtns.into_iter().map(|v| std::sync::Arc::new(ven::Ven::new(v))).collect();
        Self { notifier: Notifier::new(store, &clients, private_callbacks), clients, vens }
    }
}
