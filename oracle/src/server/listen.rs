//! Serving the API on a socket with the limits a public endpoint needs, so slow or many
//! clients cannot exhaust the oracle: at most `max_connections` at once (the next ones wait
//! in the kernel's accept backlog), request headers within `header_timeout` (the connection
//! is closed otherwise), each request, body included, answered within `request_timeout`
//! (408 with the JSON error body), and TLS (rustls) when a certificate is given. On shutdown
//! it stops accepting and lets the requests in flight finish, for at most `drain_timeout`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
pub use tokio_rustls::TlsAcceptor;
use tower_http::timeout::TimeoutLayer;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate chain {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("reading the TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the certificate {cert} and key {key} do not form a usable TLS identity: {reason}")]
    Identity { cert: String, key: String, reason: String },
}

/// A TLS acceptor from PEM files: the certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1). Offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate { path: shown(cert), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate { path: shown(cert), reason: "no CERTIFICATE block in the file".into() });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key { path: shown(key), reason: e.to_string() })?;
    let identity = |e: rustls::Error| TlsError::Identity { cert: shown(cert), key: shown(key), reason: e.to_string() };
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(identity)?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(identity)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // The timeout's 408 gets the documented JSON body too.
    let app = app
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(axum::middleware::from_fn(super::json_errors));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(limits.header_timeout));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (service, tls, builder, watcher) = (TowerToHyperService::new(app.clone()), tls.clone(), builder.clone(), graceful.watcher());
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_stream(&builder, stream, service, watcher).await,
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => serve_stream(&builder, tls_stream, service, watcher).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?limits.drain_timeout, "requests still in flight at shutdown were cut off");
    }
    Ok(())
}

/// One connection, plain or TLS, watched for the graceful shutdown.
async fn serve_stream<I>(builder: &Builder<TokioExecutor>, io: I, service: TowerToHyperService<Router>, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
