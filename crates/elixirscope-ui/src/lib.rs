//! The Execution Cinema: a web UI over recorded and live sessions.
//!
//! [`serve`] runs one HTTP server on loopback. It serves the UI itself — a
//! page, a script and a style sheet embedded in the binary ([`assets`]), so it
//! works with no network — and the JSON API the page reads ([`routes`]): the
//! sessions, a session's overview and lanes, timeline windows at any zoom
//! level, events by the CLI's filter language, the process inspector at a
//! moment, message sequences, flame graphs, and a server-sent event stream that
//! follows a session while it records. Every answer comes from the query
//! interface ([`elixirscope_query`]); open sessions and their timeline indexes
//! are kept by [`cache`], which refreshes a recording session as it grows.
//! `/metrics` serves the stored sessions' totals and the UI's own requests
//! ([`metrics`]).
//!
//! The UI has no login, so the server refuses to listen beyond loopback and
//! answers only requests addressed to a loopback host name (a web page
//! elsewhere cannot reach it through DNS rebinding).

pub mod assets;
pub mod cache;
pub mod metrics;
pub mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What to serve.
pub struct UiConfig {
    /// The ElixirScope home (sessions live under it).
    pub home: PathBuf,
    pub listen: SocketAddr,
}

/// Why the UI could not be served.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UiError(pub String);

/// Serves until `stop` is set; `ready` is told the bound address.
pub fn serve(
    cfg: UiConfig,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), UiError> {
    if !cfg.listen.ip().is_loopback() {
        return Err(UiError(format!(
            "the UI has no login, so it listens on loopback only, not {}; use --listen 127.0.0.1:PORT \
             and reach it from elsewhere through a tunnel (ssh -L PORT:127.0.0.1:PORT host)",
            cfg.listen
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| UiError(e.to_string()))?;
    let app = routes::router(Arc::new(cache::Sessions::new(cfg.home.clone())));
    runtime.block_on(async move {
        let tcp = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| UiError(format!("cannot listen on {}: {e}", cfg.listen)))?;
        let addr = tcp.local_addr().map_err(|e| UiError(e.to_string()))?;
        ready(addr);
        let shutdown = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(tcp, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| UiError(e.to_string()))
    })
}
