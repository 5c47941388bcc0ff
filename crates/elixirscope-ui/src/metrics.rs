//! What `elixirscope ui` serves at `/metrics` (OpenMetrics): the UI records
//! nothing itself, so a scraper gets the stored sessions' totals (events per
//! kind, drops, cuts, trips by reason, bytes on disk, whether still recording)
//! and the UI's own requests (count by route and status, duration by route).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use elixirscope_store::session::{list_sessions, SessionStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Session {
    session: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionKind {
    session: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionReason {
    session: String,
    reason: String,
}

struct Requests {
    count: Family<RouteStatus, Counter>,
    seconds: Family<Route, Histogram, fn() -> Histogram>,
}

fn duration() -> Histogram {
    // 100 µs to 10 s.
    Histogram::new(exponential_buckets(1e-4, 10.0, 6))
}

fn requests() -> &'static Requests {
    static R: OnceLock<Requests> = OnceLock::new();
    R.get_or_init(|| Requests {
        count: Family::default(),
        seconds: Family::new_with_constructor(duration),
    })
}

/// Counts and times every request by its route (the path template, so
/// series stay bounded).
pub async fn record(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".into());
    let started = Instant::now();
    let response = next.run(req).await;
    let r = requests();
    r.count
        .get_or_create(&RouteStatus {
            route: route.clone(),
            status: response.status().as_u16().to_string(),
        })
        .inc();
    r.seconds
        .get_or_create(&Route { route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The OpenMetrics text: the sessions under `home` as they are now, and the
/// UI's requests so far.
pub fn render(home: &Path) -> String {
    let mut reg = Registry::with_prefix("elixirscope");
    let events = Family::<SessionKind, Gauge>::default();
    let dropped = Family::<Session, Gauge>::default();
    let cut = Family::<Session, Gauge>::default();
    let disk = Family::<Session, Gauge>::default();
    let recording = Family::<Session, Gauge>::default();
    let trips = Family::<SessionReason, Gauge>::default();
    let sessions = Gauge::<i64>::default();
    let list = list_sessions(home).unwrap_or_default();
    sessions.set(list.len() as i64);
    for s in &list {
        let label = Session {
            session: s.name.clone(),
        };
        disk.get_or_create(&label).set(s.disk_bytes as i64);
        let Ok(meta) = &s.meta else { continue };
        for (kind, n) in &meta.counts {
            events
                .get_or_create(&SessionKind {
                    session: s.name.clone(),
                    kind: kind.clone(),
                })
                .set(*n as i64);
        }
        dropped.get_or_create(&label).set(meta.dropped as i64);
        cut.get_or_create(&label).set(meta.cut_events as i64);
        let live = meta.effective_status() == SessionStatus::Recording;
        recording.get_or_create(&label).set(i64::from(live));
        for t in &meta.trips {
            trips
                .get_or_create(&SessionReason {
                    session: s.name.clone(),
                    reason: t.reason.clone(),
                })
                .inc();
        }
    }
    reg.register(
        "stored_sessions",
        "Sessions stored under this home",
        sessions,
    );
    reg.register(
        "stored_session_events",
        "Events stored in a session, per kind",
        events,
    );
    reg.register(
        "stored_session_dropped_events",
        "Events the agent dropped during a session's capture",
        dropped,
    );
    reg.register(
        "stored_session_cut_events",
        "Events of a session in which the capture limits cut a term",
        cut,
    );
    reg.register(
        "stored_session_disk_bytes",
        "Bytes a session takes on disk",
        disk,
    );
    reg.register(
        "stored_session_recording",
        "1 while a session is still being recorded",
        recording,
    );
    reg.register(
        "stored_session_trips",
        "Trips of a session's capture, per reason",
        trips,
    );
    let r = requests();
    reg.register(
        "ui_requests",
        "Requests the UI answered, per route and status",
        r.count.clone(),
    );
    reg.register(
        "ui_request_duration_seconds",
        "Time the UI took to answer, per route",
        r.seconds.clone(),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .expect("writing to a String cannot fail");
    out
}
