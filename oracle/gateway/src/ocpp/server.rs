//! The CSMS endpoint: `ws://host:port/ocpp/<charger id>` (or `wss://` with a certificate),
//! HTTP Basic auth per charger (OCPP security profiles 1 and 2), the OCPP version chosen
//! by websocket subprotocol.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Charger, OcppAdapter, Version};
use crate::adapter::Sink;

/// A charger has this long for the TLS and websocket handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a charger may send (a MeterValues with many samples fits easily).
const MAX_MESSAGE: usize = 256 * 1024;
const READ_BUFFER: usize = 4 * 1024;
/// Handshakes in progress from one address: a stranger holding handshakes open (each up to
/// [`HANDSHAKE_TIMEOUT`]) takes at most this many file descriptors, while chargers behind
/// one site's NAT, whose handshakes take milliseconds, are not held back.
const HANDSHAKES_PER_ADDRESS: usize = 64;

/// Handshakes in progress per peer address; a [`Handshake`] counts one until dropped.
#[derive(Clone, Default)]
struct InProgress(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

struct Handshake {
    table: InProgress,
    peer: std::net::IpAddr,
}

impl InProgress {
    fn start(&self, peer: std::net::IpAddr) -> Option<Handshake> {
        let mut map = self.0.lock().expect("not poisoned");
        let n = map.entry(peer).or_default();
        if *n >= HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Handshake { table: self.clone(), peer })
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().expect("not poisoned");
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// The certificate chain (leaf first) and private key, PEM.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{}: no CERTIFICATE block", cert.display());
    let private = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the TLS key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .with_context(|| format!("{} and {} do not form a TLS identity", cert.display(), key.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

pub async fn serve(adapter: Arc<OcppAdapter>, sink: Sink) -> anyhow::Result<()> {
    let address = adapter.config.listen;
    let listener = TcpListener::bind(address).await.with_context(|| format!("binding the OCPP address {address}"))?;
    let scheme = if adapter.tls.is_some() { "wss" } else { "ws" };
    tracing::info!("OCPP 1.6J and 2.0.1 chargers connect to {scheme}://{}/ocpp/<charger id>", listener.local_addr()?);
    let in_progress = InProgress::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not stop serving.
                tracing::warn!(error = %e, "could not accept a charger connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(handshake) = in_progress.start(peer.ip()) else {
            tracing::warn!(peer = %peer, "refused: {HANDSHAKES_PER_ADDRESS} handshakes from this address are in progress");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (adapter, sink) = (adapter.clone(), sink.clone());
        tokio::spawn(async move {
            let outcome = match adapter.tls.clone() {
                Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(&adapter, sink, stream, handshake).await,
                    Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                    Err(_) => Err("TLS handshake timed out".into()),
                },
                None => connection(&adapter, sink, stream, handshake).await,
            };
            if let Err(e) = outcome {
                tracing::info!(peer = %peer, "charger connection refused or ended: {e}");
            }
        });
    }
}

/// The charger a handshake names and proves, and the version it speaks.
struct Admitted {
    charger: Arc<Charger>,
    version: Option<Version>,
}

fn refuse(status: StatusCode, message: &str) -> Box<ErrorResponse> {
    let mut response = ErrorResponse::new(Some(message.to_string()));
    *response.status_mut() = status;
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"OpenVPP gateway\""));
    }
    Box::new(response)
}

/// Checks the upgrade request: a configured charger id as the last path segment, its
/// Basic auth password, and an OCPP subprotocol.
fn admit(adapter: &OcppAdapter, request: &Request, mut response: Response) -> Result<(Response, Admitted), Box<ErrorResponse>> {
    let id = request.uri().path().trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let Some(charger) = adapter.chargers.get(id) else {
        return Err(refuse(StatusCode::NOT_FOUND, "unknown charge point identity: add it to the gateway's [[ocpp.chargers]]"));
    };
    let credentials = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(refuse(StatusCode::UNAUTHORIZED, "HTTP Basic auth required (OCPP security profile 1 or 2)"));
    };
    let matches: bool = password.as_bytes().ct_eq(charger.config.password.as_bytes()).into();
    if user != id || !matches {
        return Err(refuse(StatusCode::UNAUTHORIZED, "wrong charge point identity or password"));
    }
    let offered = request.headers().get_all("sec-websocket-protocol");
    let version = offered.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(Version::from_subprotocol);
    if let Some(v) = version {
        response.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(v.subprotocol()));
    }
    Ok((response, Admitted { charger: charger.clone(), version }))
}

// The websocket library's callback returns its error response unboxed.
#[allow(clippy::result_large_err)]
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    adapter: &Arc<OcppAdapter>,
    sink: Sink,
    stream: S,
    handshake: Handshake,
) -> Result<(), String> {
    let mut admitted = None;
    let callback = |request: &Request, response: Response| {
        let (response, a) = admit(adapter, request, response).map_err(|e| *e)?;
        admitted = Some(a);
        Ok(response)
    };
    // OCPP messages are small: a 4 KiB read buffer (it grows for a larger one) instead of
    // the library's 128 KiB, which held most of a connection's memory.
    let config =
        WebSocketConfig::default().read_buffer_size(READ_BUFFER).max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)))
        .await
        .map_err(|_| "websocket handshake timed out".to_string())?
        .map_err(|e| format!("websocket handshake: {e}"))?;
    drop(handshake);
    let Admitted { charger, version } = admitted.ok_or("no charger admitted")?;
    super::session::run(adapter.clone(), charger, version, ws, sink).await
}
