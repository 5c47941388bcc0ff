//! Captures started over the API, each recorded on its own thread.

use elixirscope_recorder::{Observer, Outcome, Progress, Request};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A capture as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureInfo {
    pub id: u64,
    pub session: String,
    pub target: String,
    pub started_by: String,
    /// `starting`, `recording`, then how the session ended (`complete`, `tripped` ...) or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

struct Running {
    info: Arc<Mutex<CaptureInfo>>,
    stop: Arc<AtomicBool>,
}

/// All captures started by this server.
#[derive(Default)]
pub struct Captures {
    next: Mutex<u64>,
    all: Mutex<BTreeMap<u64, Running>>,
}

/// Keeps a capture's info current from the recorder's reports.
struct Track(Arc<Mutex<CaptureInfo>>);

impl Observer for Track {
    fn started(&self, _session: &str, _target: &str) {
        self.0.lock().expect("capture info").status = "recording".into();
    }
    fn progress(&self, p: &Progress) {
        self.0.lock().expect("capture info").events = Some(p.events);
    }
}

impl Captures {
    /// Starts recording `req` (whose session name is already chosen) in the background.
    pub fn start(&self, home: PathBuf, req: Request, target: String, by: String) -> CaptureInfo {
        let id = {
            let mut n = self.next.lock().expect("ids");
            *n += 1;
            *n
        };
        let info = Arc::new(Mutex::new(CaptureInfo {
            id,
            session: req.session.clone().unwrap_or_default(),
            target,
            started_by: by,
            status: "starting".into(),
            events: None,
            reason: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        self.all.lock().expect("captures").insert(
            id,
            Running {
                info: info.clone(),
                stop: stop.clone(),
            },
        );
        let snapshot = info.lock().expect("capture info").clone();
        std::thread::Builder::new()
            .name(format!("capture-{id}"))
            .spawn(move || {
                let result = elixirscope_recorder::record(&home, &req, &stop, &Track(info.clone()));
                let mut i = info.lock().expect("capture info");
                match result {
                    Ok(Outcome { status, reason, .. }) => {
                        i.status = status.name().into();
                        i.reason = Some(reason);
                    }
                    Err(e) => {
                        i.status = "failed".into();
                        i.reason = Some(e.0);
                    }
                }
            })
            .expect("spawn capture thread");
        snapshot
    }

    pub fn list(&self) -> Vec<CaptureInfo> {
        self.all
            .lock()
            .expect("captures")
            .values()
            .map(|r| r.info.lock().expect("capture info").clone())
            .collect()
    }

    /// Asks a capture to stop; `None` if there is no such capture.
    pub fn stop(&self, id: u64) -> Option<CaptureInfo> {
        let all = self.all.lock().expect("captures");
        let r = all.get(&id)?;
        r.stop.store(true, Ordering::SeqCst);
        let info = r.info.lock().expect("capture info").clone();
        Some(info)
    }

    /// Stops every capture (server shutdown).
    pub fn stop_all(&self) {
        for r in self.all.lock().expect("captures").values() {
            r.stop.store(true, Ordering::SeqCst);
        }
    }
}
