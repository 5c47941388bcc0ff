//! A `/metrics` endpoint of its own, for `record` and `run` while they
//! record (`--metrics-listen`); `serve` and `ui` mount [`handler`] on theirs.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `/metrics` handler (whoever mounts it also calls [`crate::enable`]).
pub async fn handler() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::CONTENT_TYPE)],
        crate::render(),
    )
}

/// Serves `/metrics` on `addr` from a thread of its own until `stop` is set.
/// Returns the bound address, or why it could not listen.
pub fn spawn(addr: SocketAddr, stop: Arc<AtomicBool>) -> Result<SocketAddr, String> {
    crate::enable();
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let Ok(l) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().route("/metrics", get(handler));
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        while !stop.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    })
                    .await;
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(bound)
}
