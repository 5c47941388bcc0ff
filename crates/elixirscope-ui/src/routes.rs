//! The UI's HTTP routes: its files and the JSON API it reads.
//!
//! | route | answer |
//! |---|---|
//! | `GET /`, `/*.js`, `/app.css` | the UI ([`assets`]) |
//! | `GET /api/sessions` | every session, newest last |
//! | `GET /api/sessions/{s}/overview` | counts per kind, crashes, drops, trips, time span |
//! | `GET /api/sessions/{s}/lanes[?from_ns&to_ns]` | processes in supervision order (only those active in the window) |
//! | `GET /api/sessions/{s}/timeline?from_ns&to_ns&buckets&lanes` | a window: marks and arrows, or counts per bucket |
//! | `GET /api/sessions/{s}/events?q&limit&last` | events by the CLI's filter language |
//! | `GET /api/sessions/{s}/events/{id}` | one event in full |
//! | `GET /api/sessions/{s}/inspect?pid&at` | a process at a moment: info, state, mailbox, stack |
//! | `GET /api/sessions/{s}/step?pid&at&dir&what` | the next/previous event or state change |
//! | `GET /api/sessions/{s}/sequence?pids&from&to` | messages between processes |
//! | `GET /api/sessions/{s}/flame?pid&from&to` | call tree of a process or the session |
//! | `GET /api/sessions/{s}/live` | server-sent events while the session grows |
//! | `GET /metrics` | stored sessions' totals and the UI's own requests (OpenMetrics, for Prometheus; see `metrics`) |
//!
//! Moments (`at`, `from`, `to`) are written as on the command line: `+1.5s`,
//! an event id, an RFC 3339 time, `start` or `end`. Errors are
//! `{"error": "..."}` with a 4xx status.

use crate::assets;
use crate::cache::{Loaded, Sessions, REFRESH};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use elixirscope_query::flame::FlameQuery;
use elixirscope_query::search::FilterSpec;
use elixirscope_query::timeline::{class, TimelineQuery};
use elixirscope_query::{Cursor, QueryError, Session};
use elixirscope_store::session::list_sessions;
use elixirscope_store::DictId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type Shared = Arc<Sessions>;

/// An error answer: a status and a one-line reason.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let status = match &e {
            QueryError::Store(elixirscope_store::StoreError::NotFound { .. }) => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

type Answer = Result<Json<Value>, ApiError>;

/// Runs `f` on a blocking thread (queries read files).
async fn blocking(f: impl FnOnce() -> Result<Value, QueryError> + Send + 'static) -> Answer {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
        .map_err(ApiError::from)
}

/// Runs `f` on the session `name` on a blocking thread.
async fn with_session(
    app: Shared,
    name: String,
    f: impl FnOnce(&Loaded) -> Result<Value, QueryError> + Send + 'static,
) -> Answer {
    blocking(move || f(&*app.get(&name)?)).await
}

fn to_value(v: impl serde::Serialize) -> Result<Value, QueryError> {
    Ok(serde_json::to_value(v).expect("query results serialize"))
}

/// The router over `sessions`.
pub fn router(sessions: Shared) -> Router {
    let mut router = Router::new();
    for (path, _, _) in assets::FILES {
        router = router.route(path, get(asset));
    }
    router
        .route("/api/sessions", get(sessions_list))
        .route("/api/sessions/{s}/overview", get(overview))
        .route("/api/sessions/{s}/lanes", get(lanes))
        .route("/api/sessions/{s}/timeline", get(timeline))
        .route("/api/sessions/{s}/events", get(events))
        .route("/api/sessions/{s}/events/{id}", get(event))
        .route("/api/sessions/{s}/inspect", get(inspect))
        .route("/api/sessions/{s}/step", get(step))
        .route("/api/sessions/{s}/sequence", get(sequence))
        .route("/api/sessions/{s}/flame", get(flame))
        .route("/api/sessions/{s}/live", get(live))
        .route("/metrics", get(metrics_page))
        .route_layer(middleware::from_fn(crate::metrics::record))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such page or API route".into()) })
        .layer(middleware::from_fn(loopback_host_only))
        .with_state(sessions)
}

/// Answers only requests addressed to a loopback host name, so a web page
/// elsewhere cannot read sessions through DNS rebinding.
async fn loopback_host_only(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let loopback = name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("the UI answers only requests to localhost or 127.0.0.1, not to host '{host}'"),
        )
        .into_response();
    }
    next.run(req).await
}

async fn asset(req: Request) -> Response {
    match assets::get(req.uri().path()) {
        Some((ty, body)) => ([(header::CONTENT_TYPE, ty)], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The stored sessions' totals and the UI's own requests, for Prometheus.
async fn metrics_page(State(app): State<Shared>) -> Response {
    let home = app.home().to_owned();
    match tokio::task::spawn_blocking(move || crate::metrics::render(&home)).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, elixirscope_metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn sessions_list(State(app): State<Shared>) -> Answer {
    let home = app.home().to_owned();
    blocking(move || {
        let list = list_sessions(&home).map_err(QueryError::from)?;
        let rows: Vec<Value> = list
            .iter()
            .map(|e| match &e.meta {
                Ok(m) => json!({
                    "name": e.name,
                    "status": m.status,
                    "mode": m.mode,
                    "target": m.target,
                    "created": m.created,
                    "events": m.events,
                    "duration_s": match (m.started_ns, m.ended_ns) {
                        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                        _ => 0.0,
                    },
                    "disk_bytes": e.disk_bytes,
                }),
                Err(why) => json!({ "name": e.name, "error": why }),
            })
            .collect();
        Ok(Value::Array(rows))
    })
    .await
}

async fn overview(State(app): State<Shared>, UrlPath(s): UrlPath<String>) -> Answer {
    with_session(app, s, |l| {
        let s = &l.session;
        let mut v = to_value(s.overview(10))?;
        v["start_ns"] = json!(s.start_ns());
        v["end_ns"] = json!(s.end_ns());
        v["live"] = json!(l.live);
        v["classes"] = json!(class::NAMES);
        v["lanes"] = json!(l.lanes.len());
        Ok(v)
    })
    .await
}

#[derive(Deserialize)]
struct LanesParams {
    /// With `to_ns`: only the lanes with events in this window.
    from_ns: Option<i64>,
    to_ns: Option<i64>,
}

async fn lanes(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<LanesParams>,
) -> Answer {
    with_session(app, s, move |l| match (p.from_ns, p.to_ns) {
        (Some(from), Some(to)) => to_value(
            l.lanes
                .iter()
                .filter(|lane| l.activity.count(from, to, Some(&[lane.id])) > 0)
                .collect::<Vec<_>>(),
        ),
        _ => to_value(&l.lanes),
    })
    .await
}

#[derive(Deserialize)]
struct TimelineParams {
    from_ns: i64,
    to_ns: i64,
    #[serde(default = "default_buckets")]
    buckets: usize,
    #[serde(default = "default_marks")]
    max_marks: usize,
    /// Comma-separated lane ids (from `/lanes`); all when absent.
    lanes: Option<String>,
}

fn default_buckets() -> usize {
    600
}

fn default_marks() -> usize {
    4000
}

async fn timeline(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<TimelineParams>,
) -> Answer {
    let lanes = match &p.lanes {
        None => None,
        Some(text) => Some(
            text.split(',')
                .filter(|t| !t.is_empty())
                .map(|t| t.trim().parse::<DictId>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("lanes must be lane ids separated by commas, not '{text}'"),
                    )
                })?,
        ),
    };
    with_session(app, s, move |l| {
        let q = TimelineQuery {
            from_ns: p.from_ns,
            to_ns: p.to_ns,
            buckets: p.buckets,
            max_marks: p.max_marks.min(20_000),
            lanes,
        };
        to_value(l.session.timeline(&l.activity, &q))
    })
    .await
}

#[derive(Deserialize)]
struct EventsParams {
    #[serde(default)]
    q: String,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    last: bool,
}

fn default_limit() -> usize {
    200
}

async fn events(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<EventsParams>,
) -> Answer {
    with_session(app, s, move |l| {
        let spec = FilterSpec::parse(&p.q)?;
        let f = l.session.filter(&spec, p.limit.min(5_000), p.last)?;
        to_value(l.session.events(&f, Some(300)))
    })
    .await
}

async fn event(State(app): State<Shared>, UrlPath((s, id)): UrlPath<(String, u64)>) -> Answer {
    with_session(app, s, move |l| {
        let s = &l.session;
        let total = s.reader().total_events();
        let info = s
            .reader()
            .with_event(id, |e| s.describe(e, None))
            .ok_or(QueryError::NoSuchEvent { id, total })?;
        to_value(info)
    })
    .await
}

#[derive(Deserialize)]
struct AtParams {
    pid: Option<String>,
    #[serde(default = "default_at")]
    at: String,
    dir: Option<String>,
    what: Option<String>,
}

fn default_at() -> String {
    "end".into()
}

fn pid_of(s: &Session, text: Option<&str>, at: &Cursor) -> Result<DictId, QueryError> {
    let text = text.ok_or_else(|| QueryError::BadProc(String::new()))?;
    Ok(s.resolve_proc(text, at)?.pid)
}

async fn inspect(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<AtParams>,
) -> Answer {
    with_session(app, s, move |l| {
        let s = &l.session;
        let at = s.parse_time(&p.at)?;
        let pid = pid_of(s, p.pid.as_deref(), &at)?;
        let process = s.process_at(pid, &at);
        Ok(json!({
            "pid": s.pid_text(pid),
            "at": s.relative(if at.ts == i64::MAX { s.end_ns() } else { at.ts }),
            "process": process,
            "state": s.state_at(pid, &at),
            "mailbox": s.mailbox_at(pid, &at),
            "stack": s.stack_at(pid, &at),
            "monitors": s.monitors_at(pid, &at),
        }))
    })
    .await
}

async fn step(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<AtParams>,
) -> Answer {
    with_session(app, s, move |l| {
        let s = &l.session;
        let at = s.parse_time(&p.at)?;
        let forward = p.dir.as_deref() != Some("prev");
        let pid = pid_of(s, p.pid.as_deref(), &at)?;
        let event = match p.what.as_deref() {
            Some("change") => s.step_to_change(pid, &at, forward),
            _ => s.step(pid, &at, forward, &[], 1).into_iter().next(),
        };
        Ok(json!({ "event": event }))
    })
    .await
}

#[derive(Deserialize)]
struct RangeParams {
    /// Comma-separated pids or names.
    pids: Option<String>,
    pid: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(default = "default_messages")]
    limit: usize,
}

fn default_messages() -> usize {
    500
}

fn range(s: &Session, p: &RangeParams) -> Result<(Option<Cursor>, Option<Cursor>), QueryError> {
    let t = |x: &Option<String>| x.as_deref().map(|t| s.parse_time(t)).transpose();
    Ok((t(&p.from)?, t(&p.to)?))
}

fn procs(s: &Session, text: Option<&str>) -> Result<Vec<DictId>, QueryError> {
    let mut out = Vec::new();
    for p in text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        for id in s.resolve_all(p)? {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

async fn sequence(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<RangeParams>,
) -> Answer {
    with_session(app, s, move |l| {
        let s = &l.session;
        let (from, to) = range(s, &p)?;
        let pids = procs(s, p.pids.as_deref().or(p.pid.as_deref()))?;
        to_value(s.sequence(&pids, from, to, p.limit.min(5_000)))
    })
    .await
}

async fn flame(
    State(app): State<Shared>,
    UrlPath(s): UrlPath<String>,
    Query(p): Query<RangeParams>,
) -> Answer {
    with_session(app, s, move |l| {
        let s = &l.session;
        let (from, to) = range(s, &p)?;
        let pids = procs(s, p.pid.as_deref().or(p.pids.as_deref()))?;
        to_value(s.flame(&FlameQuery { pids, from, to })?)
    })
    .await
}

/// Every [`REFRESH`], when the session grew or its status changed: its event
/// count, end and status, as `progress` events; `done` once it stops recording.
async fn live(State(app): State<Shared>, UrlPath(s): UrlPath<String>) -> Response {
    let stream = futures_util::stream::unfold(
        (app, s, None::<(u64, String)>, false),
        |(app, name, last, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let (app2, name2) = (app.clone(), name.clone());
                let now = tokio::task::spawn_blocking(move || {
                    app2.get(&name2).map(|l| {
                        let s = &l.session;
                        let status = serde_json::to_value(s.meta().status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        (s.reader().total_events(), status, s.end_ns(), l.live)
                    })
                })
                .await;
                let (events, status, end_ns, live) = match now {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        let ev = SseEvent::default()
                            .event("error")
                            .data(json!({ "error": e.to_string() }).to_string());
                        return Some((
                            Ok::<_, std::convert::Infallible>(ev),
                            (app, name, last, true),
                        ));
                    }
                    Err(_) => return None,
                };
                let key = (events, status.clone());
                if last.as_ref() != Some(&key) {
                    let ev = SseEvent::default()
                        .event(if live { "progress" } else { "done" })
                        .data(
                            json!({ "events": events, "end_ns": end_ns, "status": status })
                                .to_string(),
                        );
                    return Some((Ok(ev), (app, name, Some(key), !live)));
                }
                tokio::time::sleep(REFRESH).await;
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
