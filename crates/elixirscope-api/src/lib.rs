//! The HTTP API: sessions and queries for viewers, captures for operators and
//! admins, every request authenticated by a token ([`tokens`]) and checked
//! against its role ([`routes`]), TLS on anything but loopback.
//!
//! It reads sessions only through the query interface and records only through
//! the recorder, like the command line does.

pub mod captures;
pub mod routes;
pub mod tokens;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How the server speaks TLS.
#[derive(Debug, Clone)]
pub enum ServeTls {
    /// A self-signed certificate made at start, written to `serve-cert.pem` in
    /// the home directory for clients to trust.
    Generated,
    /// Certificate chain and key from PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP (loopback, or beyond it only when forced).
    Off,
}

/// What to serve.
pub struct ServeConfig {
    pub home: PathBuf,
    pub listen: SocketAddr,
    pub tls: ServeTls,
    pub cookie: Option<elixirscope_capture::Cookie>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(pub String);

/// A TLS configuration and, for a generated certificate, where it was written.
type Tls = (Arc<ServerConfig>, Option<PathBuf>);

fn tls_config(home: &Path, tls: &ServeTls, host: &str) -> Result<Option<Tls>, ServeError> {
    let err = |e: &dyn std::fmt::Display| ServeError(format!("TLS: {e}"));
    let (chain, key, written) = match tls {
        ServeTls::Off => return Ok(None),
        ServeTls::Files { cert, key } => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| err(&format!("{}: {e}", cert.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(&format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| err(&format!("{}: {e}", key.display())))?;
            (chain, key, None)
        }
        ServeTls::Generated => {
            let key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
            let params =
                rcgen::CertificateParams::new(vec![host.to_owned(), "localhost".to_owned()])
                    .map_err(|e| err(&e))?;
            let cert = params.self_signed(&key).map_err(|e| err(&e))?;
            let path = home.join("serve-cert.pem");
            std::fs::create_dir_all(home).map_err(|e| err(&e))?;
            std::fs::write(&path, cert.pem())
                .map_err(|e| err(&format!("{}: {e}", path.display())))?;
            let der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| err(&e))?;
            (vec![cert.der().clone()], der, Some(path))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| err(&e))?;
    Ok(Some((Arc::new(config), written)))
}

/// The address of a connected client, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> RemoteAddr {
        RemoteAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> RemoteAddr {
        RemoteAddr(*stream.remote_addr())
    }
}

/// Accepts TCP connections and completes the TLS handshake before handing them on.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A peer that does not complete a handshake (plaintext, say) is dropped.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(stream)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves until `stop` is set. `ready` is told the bound address and, for a
/// generated certificate, where it was written.
pub fn serve(
    cfg: ServeConfig,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr, Option<&Path>),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError(e.to_string()))?;
    elixirscope_metrics::enable();
    let state = Arc::new(routes::AppState {
        home: cfg.home.clone(),
        captures: captures::Captures::default(),
        cookie: cfg.cookie.clone(),
    });
    let app = routes::router(state.clone());
    let shutdown = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let tls = tls_config(&cfg.home, &cfg.tls, &cfg.listen.ip().to_string())?;
    let result = runtime.block_on(async move {
        let tcp = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ServeError(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let addr = tcp.local_addr().map_err(|e| ServeError(e.to_string()))?;
        match tls {
            Some((config, written)) => {
                ready(addr, written.as_deref());
                let listener = TlsListener {
                    tcp,
                    acceptor: TlsAcceptor::from(config),
                };
                let app = app.into_make_service_with_connect_info::<RemoteAddr>();
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                ready(addr, None);
                let app = app.into_make_service_with_connect_info::<RemoteAddr>();
                axum::serve(tcp, app).with_graceful_shutdown(shutdown).await
            }
        }
        .map_err(|e| ServeError(e.to_string()))
    });
    state.captures.stop_all();
    result
}
