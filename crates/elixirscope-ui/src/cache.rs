//! Open sessions, each with its timeline index and lanes, shared by requests.
//!
//! Opening a session and indexing its timeline is done once; later requests
//! reuse it. A session that is still recording is checked again at most every
//! [`REFRESH`]: when its files grew, it is reopened and only its new blocks
//! are indexed, so the timeline of a live capture follows it.

use elixirscope_query::timeline::{Activity, Lane};
use elixirscope_query::{QueryError, Session};
use elixirscope_store::session::SessionStatus;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often a recording session is checked for new events.
pub const REFRESH: Duration = Duration::from_millis(300);

/// An open session with what the timeline needs.
pub struct Loaded {
    pub session: Session,
    pub activity: Activity,
    pub lanes: Vec<Lane>,
    /// Still recording when it was opened.
    pub live: bool,
    stamp: Stamp,
}

/// What changes on disk when a session grows or ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    index_len: u64,
    meta_modified: Option<SystemTime>,
}

fn stamp(dir: &Path) -> Stamp {
    let len = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Stamp {
        index_len: len(elixirscope_store::session::index_path(dir)),
        meta_modified: std::fs::metadata(dir.join(elixirscope_store::session::META_FILE))
            .and_then(|m| m.modified())
            .ok(),
    }
}

struct Entry {
    loaded: Arc<Loaded>,
    checked: Instant,
}

/// The sessions opened so far, by the name they were asked for.
pub struct Sessions {
    home: PathBuf,
    open: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    pub fn new(home: PathBuf) -> Sessions {
        Sessions {
            home,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The session `name` (a name, unique prefix or `last`), opened and
    /// indexed, refreshed if it is recording and grew.
    pub fn get(&self, name: &str) -> Result<Arc<Loaded>, QueryError> {
        let previous = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match open.get(name) {
                Some(e) if !e.loaded.live || e.checked.elapsed() < REFRESH => {
                    return Ok(e.loaded.clone())
                }
                Some(e) => Some(e.loaded.clone()),
                None => None,
            }
        };
        let loaded = match previous {
            Some(old) if stamp(old.session.reader().dir()) == old.stamp => old,
            Some(old) => Arc::new(self.load(name, Some(&old))?),
            None => {
                let l = self.load(name, None)?;
                elixirscope_store::audit::record(
                    &self.home,
                    "view",
                    l.session.name(),
                    serde_json::json!({ "query": "ui" }),
                )?;
                Arc::new(l)
            }
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(
            name.to_owned(),
            Entry {
                loaded: loaded.clone(),
                checked: Instant::now(),
            },
        );
        Ok(loaded)
    }

    fn load(&self, name: &str, previous: Option<&Loaded>) -> Result<Loaded, QueryError> {
        let session = Session::open(&self.home, name)?;
        let stamp = stamp(session.reader().dir());
        let mut activity = previous.map(|p| p.activity.clone()).unwrap_or_default();
        session.index_activity(&mut activity);
        let lanes = session.lanes(&activity);
        let live = session.meta().status == SessionStatus::Recording;
        Ok(Loaded {
            session,
            activity,
            lanes,
            live,
            stamp,
        })
    }
}
