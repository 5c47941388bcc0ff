//! Session directories: where they live, their metadata file, listing and retention.
//!
//! ```text
//! $ELIXIRSCOPE_HOME/sessions/<name>/
//!   session.json     metadata (target, capture settings, nodes, status, counts, trips)
//!   events-0000.seg  append-only blocks (dictionary + events)
//!   events.idx       one 128-byte summary per block (rebuilt from the segment if damaged)
//!   states.idx       (pid, event id, time) of every state event (rebuilt if it disagrees)
//! ```
//! `session.json` is always replaced atomically (write to a temporary file, rename).

use crate::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Version of the on-disk format written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// The metadata file of a session directory.
pub const META_FILE: &str = "session.json";

/// The directory that holds ElixirScope's data.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("ELIXIRSCOPE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("elixirscope");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/elixirscope")
}

/// The directory holding all sessions under `home`.
pub fn sessions_dir(home: &Path) -> PathBuf {
    home.join("sessions")
}

pub(crate) fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("events-{n:04}.seg"))
}

pub fn index_path(dir: &Path) -> PathBuf {
    dir.join("events.idx")
}

pub(crate) fn state_index_path(dir: &Path) -> PathBuf {
    dir.join("states.idx")
}

/// Recording state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// A recorder is (or was, if it died) writing it.
    Recording,
    /// Recording ended normally.
    Complete,
    /// Capture stopped itself (budget or safety limit); the data is complete up to the trip.
    Tripped,
    /// The recorder disappeared without closing the session.
    Interrupted,
    /// Recording could not start or failed; whatever was stored is kept.
    Failed,
}

impl SessionStatus {
    pub fn name(self) -> &'static str {
        match self {
            SessionStatus::Recording => "recording",
            SessionStatus::Complete => "complete",
            SessionStatus::Tripped => "tripped",
            SessionStatus::Interrupted => "interrupted",
            SessionStatus::Failed => "failed",
        }
    }
}

/// One node that contributed events to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeMeta {
    pub name: String,
    pub otp_release: String,
    /// Which tracer captured on this node (`process` or `nif`).
    pub tracer: String,
    /// Why the NIF tracer did not run, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracer_note: Option<String>,
    /// `erlang:time_offset(nanosecond)` at capture start.
    pub time_offset_ns: i64,
}

/// Why a capture stopped itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    pub node: String,
    /// Short machine-readable reason, e.g. `max_events`.
    pub reason: String,
    /// Human explanation with the figures involved.
    pub detail: String,
    pub at_ns: i64,
}

/// The contents of `session.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub format: u32,
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    pub status: SessionStatus,
    /// `record` or `run`.
    pub mode: String,
    /// Node name (record) or command line (run).
    pub target: String,
    /// Capture settings as requested (profile, patterns, budgets ...).
    pub capture: serde_json::Value,
    pub nodes: Vec<NodeMeta>,
    /// Wall-clock ns of the first moment of capture.
    pub started_ns: Option<i64>,
    pub ended_ns: Option<i64>,
    pub stop_reason: Option<String>,
    pub trips: Vec<Trip>,
    /// Events the agent dropped (never silently: each drop is also an event).
    pub dropped: u64,
    /// Values redacted on the node, per rule (never the values themselves).
    #[serde(default)]
    pub redactions: BTreeMap<String, u64>,
    /// Events in which the capture limits cut a term (the terms say where).
    #[serde(default)]
    pub cut_events: u64,
    /// Stored events per kind.
    pub counts: BTreeMap<String, u64>,
    pub events: u64,
    pub bytes: u64,
    /// OS pid of the recorder while recording.
    pub recorder_pid: Option<u32>,
}

impl SessionMeta {
    pub fn new(name: &str, mode: &str, target: &str, capture: serde_json::Value) -> SessionMeta {
        SessionMeta {
            format: FORMAT_VERSION,
            name: name.to_owned(),
            created: humantime_rfc3339(SystemTime::now()),
            status: SessionStatus::Recording,
            mode: mode.to_owned(),
            target: target.to_owned(),
            capture,
            nodes: Vec::new(),
            started_ns: None,
            ended_ns: None,
            stop_reason: None,
            trips: Vec::new(),
            dropped: 0,
            redactions: BTreeMap::new(),
            cut_events: 0,
            counts: BTreeMap::new(),
            events: 0,
            bytes: 0,
            recorder_pid: Some(std::process::id()),
        }
    }

    /// The status, with a dead recorder reported as interrupted.
    pub fn effective_status(&self) -> SessionStatus {
        match (self.status, self.recorder_pid) {
            (SessionStatus::Recording, Some(pid)) if !process_alive(pid) => {
                SessionStatus::Interrupted
            }
            (s, _) => s,
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

fn humantime_rfc3339(t: SystemTime) -> String {
    // Seconds precision, UTC, e.g. 2026-11-26T09:54:14Z.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    rfc3339_from_unix(secs as i64)
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339_from_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Checks a session name: letters, digits, `.`, `_`, `-`; not starting with `.`.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName(name.to_owned()))
    }
}

/// Reads `session.json` of a session directory.
pub fn read_meta(dir: &Path) -> Result<SessionMeta, StoreError> {
    let path = dir.join(META_FILE);
    let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        detail: format!("session metadata is not valid: {e}"),
    })
}

/// Atomically replaces `session.json` of a session directory.
pub fn write_meta(dir: &Path, meta: &SessionMeta) -> Result<(), StoreError> {
    let path = dir.join(META_FILE);
    let tmp = dir.join(".session.json.tmp");
    let json = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    std::fs::write(&tmp, json).map_err(|e| StoreError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))
}

/// Creates a new, empty session directory and its metadata.
pub fn create_session(home: &Path, meta: &SessionMeta) -> Result<PathBuf, StoreError> {
    validate_name(&meta.name)?;
    let root = sessions_dir(home);
    std::fs::create_dir_all(&root).map_err(|e| StoreError::io(&root, e))?;
    let dir = root.join(&meta.name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::Exists(meta.name.clone()))
        }
        Err(e) => return Err(StoreError::io(&dir, e)),
    }
    write_meta(&dir, meta)?;
    Ok(dir)
}

/// A session found on disk.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    pub name: String,
    pub dir: PathBuf,
    /// The metadata, or why it could not be read.
    pub meta: Result<SessionMeta, String>,
    pub modified: SystemTime,
    pub disk_bytes: u64,
}

/// Lists sessions under `home`, oldest first.
pub fn list_sessions(home: &Path) -> Result<Vec<SessionEntry>, StoreError> {
    let root = sessions_dir(home);
    let read = match std::fs::read_dir(&root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&root, e)),
    };
    let mut out = Vec::new();
    for entry in read.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let meta = read_meta(&dir).map_err(|e| e.to_string());
        let modified = std::fs::metadata(dir.join(META_FILE))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(SessionEntry {
            name,
            disk_bytes: dir_size(&dir),
            dir,
            meta,
            modified,
        });
    }
    out.sort_by(|a, b| {
        let key = |e: &SessionEntry| {
            e.meta
                .as_ref()
                .map(|m| m.created.clone())
                .unwrap_or_default()
        };
        key(a).cmp(&key(b)).then(a.name.cmp(&b.name))
    });
    Ok(out)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Finds a session by exact name, by unique prefix, or `last` for the newest.
pub fn resolve_session(home: &Path, name: &str) -> Result<PathBuf, StoreError> {
    let sessions = list_sessions(home)?;
    if name == "last" || name == "latest" {
        return sessions
            .last()
            .map(|s| s.dir.clone())
            .ok_or_else(|| StoreError::NotFound {
                name: name.to_owned(),
                known: Vec::new(),
            });
    }
    if let Some(s) = sessions.iter().find(|s| s.name == name) {
        return Ok(s.dir.clone());
    }
    let matches: Vec<_> = sessions
        .iter()
        .filter(|s| s.name.starts_with(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.dir.clone()),
        [] => Err(StoreError::NotFound {
            name: name.to_owned(),
            known: sessions
                .iter()
                .rev()
                .take(5)
                .map(|s| s.name.clone())
                .collect(),
        }),
        many => Err(StoreError::Ambiguous {
            name: name.to_owned(),
            candidates: many.iter().map(|s| s.name.clone()).collect(),
        }),
    }
}

/// Retention limits applied before a new recording starts.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_total_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_total_bytes: 20 << 30,
        }
    }
}

/// Deletes sessions older than the age limit, then the oldest ones until the total
/// fits, never touching `keep` or sessions still recording. Returns deleted names.
pub fn prune(home: &Path, limits: Retention, keep: &str) -> Result<Vec<String>, StoreError> {
    let sessions = list_sessions(home)?;
    let now = SystemTime::now();
    let mut total: u64 = sessions.iter().map(|s| s.disk_bytes).sum();
    let mut removed = Vec::new();
    for s in &sessions {
        let recording =
            matches!(&s.meta, Ok(m) if m.effective_status() == SessionStatus::Recording);
        if s.name == keep || recording {
            continue;
        }
        let too_old = now
            .duration_since(s.modified)
            .map(|age| age > limits.max_age)
            .unwrap_or(false);
        if too_old || total > limits.max_total_bytes {
            std::fs::remove_dir_all(&s.dir).map_err(|e| StoreError::io(&s.dir, e))?;
            total = total.saturating_sub(s.disk_bytes);
            removed.push(s.name.clone());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_795_686_854), "2026-11-26T09:54:14Z");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("demo-2026.1_a").is_ok());
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
    }
}
