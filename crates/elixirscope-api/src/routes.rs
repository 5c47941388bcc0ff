//! The HTTP routes, the bearer-token check, and what each role may do.
//!
//! | route | role |
//! |---|---|
//! | `GET /api/health` | none |
//! | `GET /api/sessions`, `/api/sessions/{name}`, `/events`, `/state` | viewer |
//! | `GET /metrics` (OpenMetrics, for Prometheus) | viewer |
//! | `GET /api/captures`, `DELETE /api/captures/{id}` | operator |
//! | `POST /api/captures` (lifecycle, messages, calls without values) | operator |
//! | `POST /api/captures` with call values, state or redaction off | admin |
//!
//! Every request but health needs `Authorization: Bearer <token>`; every view,
//! capture and request to stop one is written to the audit log under the
//! token's name. Every error, malformed requests included, is a status and a
//! one-line JSON `{"error": ...}`.

use crate::captures::{CaptureInfo, Captures};
use crate::tokens::{self, Role};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path as UrlPath, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use elixirscope_capture::{CaptureSpec, Cookie};
use elixirscope_query::filter::{parse_kinds, EventFilter};
use elixirscope_query::{Cursor, Session};
use elixirscope_recorder::{Actor, Request, Target, TlsChoice};
use elixirscope_term::mfa_pattern::parse_atom_target;
use elixirscope_term::CallPattern;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// What every handler shares.
pub struct AppState {
    pub home: PathBuf,
    pub captures: Captures,
    /// The cookie used when a capture request names none.
    pub cookie: Option<Cookie>,
}

type Shared = Arc<AppState>;

/// An error answer: a status and a one-line reason, as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.to_string())
}

/// A malformed query string or body, as a one-line JSON error.
fn malformed(what: &str, e: impl std::fmt::Display) -> ApiError {
    let text = e.to_string().replace('\n', " ");
    bad(format!("malformed {what}: {text}"))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| malformed("query", e.body_text()))
}

fn json_body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(b)| b)
        .map_err(|e| malformed("request body", e.body_text()))
}

fn internal(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
}

/// The authenticated caller of a request.
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub from: String,
}

impl Caller {
    fn require(&self, role: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "token '{}' has role {}; {what} needs an {} token",
                    self.name,
                    self.role.name(),
                    role.name()
                ),
            ))
        }
    }

    fn actor(&self) -> Actor {
        Actor::Remote {
            who: format!("token {} ({})", self.name, self.role.name()),
            from: self.from.clone(),
        }
    }

    fn audit(
        &self,
        home: &std::path::Path,
        action: &str,
        subject: &str,
        details: serde_json::Value,
    ) -> Result<(), ApiError> {
        let Actor::Remote { who, from } = self.actor() else {
            unreachable!("remote actor")
        };
        elixirscope_store::audit::append(home, &who, &from, action, subject, details)
            .map(|_| ())
            .map_err(internal)
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Caller, ApiError> {
        let from = parts
            .extensions
            .get::<ConnectInfo<crate::RemoteAddr>>()
            .map(|c| c.0 .0.to_string())
            .unwrap_or_else(|| "unknown".into());
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(secret) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing token: send 'Authorization: Bearer <token>' (create one with `elixirscope token create`)".into(),
            ));
        };
        match tokens::check(&state.home, secret.trim()).map_err(internal)? {
            Some(t) => Ok(Caller {
                name: t.name,
                role: t.role,
                from,
            }),
            None => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "unknown or revoked token".into(),
            )),
        }
    }
}

/// The router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/api/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{name}", get(overview))
        .route("/api/sessions/{name}/events", get(events))
        .route("/api/sessions/{name}/state", get(state_at))
        .route("/api/captures", get(list_captures).post(start_capture))
        .route("/api/captures/{id}", delete(stop_capture))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The collector's metrics (OpenMetrics), for a viewer token (Prometheus
/// sends it with `authorization: {credentials: TOKEN}` in its scrape config).
async fn metrics(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "reading metrics")?;
    Ok(elixirscope_metrics::serve::handler().await.into_response())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

fn open(state: &AppState, caller: &Caller, name: &str, query: &str) -> Result<Session, ApiError> {
    let s = Session::open(&state.home, name)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))?;
    caller.audit(
        &state.home,
        "view",
        s.name(),
        serde_json::json!({ "query": query }),
    )?;
    Ok(s)
}

async fn sessions(
    State(state): State<Shared>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Viewer, "listing sessions")?;
    blocking(move || {
        let list = elixirscope_store::session::list_sessions(&state.home).map_err(internal)?;
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|s| match &s.meta {
                Ok(m) => serde_json::json!({
                    "name": s.name, "status": m.effective_status().name(), "mode": m.mode,
                    "target": m.target, "created": m.created, "events": m.events,
                }),
                Err(e) => serde_json::json!({ "name": s.name, "status": "unreadable", "error": e }),
            })
            .collect();
        Ok(Json(serde_json::json!({ "sessions": rows })))
    })
    .await
}

async fn overview(
    State(state): State<Shared>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "reading sessions")?;
    blocking(move || {
        let s = open(&state, &caller, &name, "show")?;
        Ok(Json(s.overview(10)).into_response())
    })
    .await
}

#[derive(Deserialize, Default)]
struct EventsQuery {
    from: Option<String>,
    to: Option<String>,
    pid: Option<String>,
    kind: Option<String>,
    mfa: Option<String>,
    #[serde(rename = "match")]
    text: Option<String>,
    limit: Option<usize>,
    last: Option<bool>,
}

async fn events(
    State(state): State<Shared>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "reading sessions")?;
    let q = query(q)?;
    blocking(move || {
        let s = open(&state, &caller, &name, "events")?;
        let mut f = EventFilter {
            limit: q.limit.unwrap_or(200).min(100_000),
            last: q.last.unwrap_or(false),
            text: q.text,
            ..Default::default()
        };
        if let Some(t) = &q.from {
            f.from = Some(s.parse_time(t).map_err(bad)?);
        }
        if let Some(t) = &q.to {
            f.to = Some(s.parse_time(t).map_err(bad)?);
        }
        if let Some(p) = &q.pid {
            f.pids = s.resolve_all(p).map_err(bad)?;
        }
        if let Some(k) = &q.kind {
            f.kinds = parse_kinds(k).map_err(bad)?;
        }
        if let Some(m) = &q.mfa {
            f.mfa = Some(CallPattern::parse(m).map_err(bad)?);
        }
        Ok(Json(s.events(&f, None)).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct StateQuery {
    proc: String,
    at: Option<String>,
}

async fn state_at(
    State(state): State<Shared>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "reading sessions")?;
    let q = query(q)?;
    blocking(move || {
        let s = open(&state, &caller, &name, "state")?;
        let at = match &q.at {
            Some(t) => s.parse_time(t).map_err(bad)?,
            None => Cursor::END,
        };
        let p = s.resolve_proc(&q.proc, &at).map_err(bad)?;
        Ok(Json(s.state_at(p.pid, &at)).into_response())
    })
    .await
}

/// A capture request.
#[derive(Deserialize)]
struct CaptureBody {
    node: String,
    cookie: Option<String>,
    session: Option<String>,
    /// `30s`, `5m` ... (required: API captures always end on their own).
    duration: String,
    #[serde(default = "default_profile")]
    profile: String,
    #[serde(default)]
    trace: Vec<String>,
    #[serde(default)]
    state: Vec<String>,
    messages: Option<bool>,
    /// Record argument and result values of traced calls (admin).
    call_values: Option<bool>,
    /// Turn redaction off (admin).
    #[serde(default)]
    no_redact: bool,
}

fn default_profile() -> String {
    "default".into()
}

async fn start_capture(
    State(state): State<Shared>,
    caller: Caller,
    body: Result<Json<CaptureBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CaptureInfo>), ApiError> {
    caller.require(Role::Operator, "starting a capture")?;
    let body = json_body(body)?;
    if body.call_values == Some(true) {
        caller.require(Role::Admin, "capturing argument and result values")?;
    }
    if !body.state.is_empty() {
        caller.require(Role::Admin, "capturing GenServer state")?;
    }
    if body.no_redact {
        caller.require(Role::Admin, "turning redaction off")?;
    }
    let mut spec = CaptureSpec::profile(&body.profile)
        .ok_or_else(|| bad(format!("unknown profile '{}'", body.profile)))?;
    for p in &body.trace {
        spec.calls.push(CallPattern::parse(p).map_err(bad)?);
    }
    for s in &body.state {
        spec.state.push(parse_atom_target(s).map_err(bad)?);
    }
    spec.messages = body.messages.unwrap_or(true);
    spec.call_values = body.call_values.unwrap_or(caller.role >= Role::Admin);
    spec.redact.enabled = !body.no_redact;
    let duration = elixirscope_query::time::parse_duration_ns(&body.duration)
        .filter(|ns| *ns > 0)
        .map(|ns| std::time::Duration::from_nanos(ns as u64))
        .ok_or_else(|| {
            bad(format!(
                "invalid duration '{}': use e.g. 30s, 5m",
                body.duration
            ))
        })?;
    spec.budget.max_duration_ms = Some(duration.as_millis() as u64 + 10_000);
    let cookie = match body.cookie {
        Some(c) => Cookie {
            value: c,
            source: "the capture request".into(),
        },
        None => state
            .cookie
            .clone()
            .ok_or_else(|| bad("no cookie: send \"cookie\" or start the server with --cookie"))?,
    };
    let base = body.node.split('@').next().unwrap_or("node").to_owned();
    let session = elixirscope_recorder::session_name(&state.home, body.session.as_deref(), &base);
    elixirscope_store::session::validate_name(&session).map_err(bad)?;
    let req = Request {
        target: Target::Node {
            name: body.node.clone(),
            cookie,
        },
        spec,
        session: Some(session),
        duration: Some(duration),
        tls: TlsChoice::default(),
        actor: caller.actor(),
        // Whoever asks to stop it is in the audit log (capture_stop_request).
        stop_reason: "stopped through the API".into(),
    };
    let info = state.captures.start(
        state.home.clone(),
        req,
        body.node,
        format!("token {}", caller.name),
    );
    Ok((StatusCode::ACCEPTED, Json(info)))
}

async fn list_captures(
    State(state): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<CaptureInfo>>, ApiError> {
    caller.require(Role::Operator, "listing captures")?;
    Ok(Json(state.captures.list()))
}

async fn stop_capture(
    State(state): State<Shared>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<CaptureInfo>, ApiError> {
    caller.require(Role::Operator, "stopping a capture")?;
    let id: u64 = id.parse().map_err(|_| {
        bad(format!(
            "invalid capture id '{id}': use the number POST /api/captures answered (GET /api/captures lists them)"
        ))
    })?;
    let info = state
        .captures
        .stop(id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no capture {id}")))?;
    caller.audit(
        &state.home,
        "capture_stop_request",
        &info.session,
        serde_json::json!({ "capture": id, "status": info.status }),
    )?;
    Ok(Json(info))
}
