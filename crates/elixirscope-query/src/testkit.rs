//! Hand-made sessions for the query tests: events written one by one at
//! known times (µs after [`T0`]), for processes numbered by the test.

use crate::Session;
use elixirscope_store::session::{create_session, SessionMeta};
use elixirscope_store::{DictId, EventId, EventKind, MfaEntry, NewEvent, PidEntry, SessionWriter};

pub(crate) const T0: i64 = 1_800_000_000_000_000_000;
pub(crate) const US: i64 = 1_000;

/// Writes a session event by event; times are µs after `T0`.
pub(crate) struct Rec {
    pub(crate) _home: tempfile::TempDir,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) w: SessionWriter,
    pub(crate) node: DictId,
    pub(crate) module: DictId,
}

impl Rec {
    pub(crate) fn new() -> Rec {
        Rec::with_capture(serde_json::Value::Null)
    }

    pub(crate) fn with_capture(capture: serde_json::Value) -> Rec {
        let home = tempfile::tempdir().unwrap();
        let meta = SessionMeta::new("test", "test", "generated", capture);
        let dir = create_session(home.path(), &meta).unwrap();
        let mut w = SessionWriter::create(&dir).unwrap();
        let node = w.dict_mut().intern_atom("test@localhost");
        let module = w.dict_mut().intern_atom("Elixir.T");
        Rec {
            _home: home,
            dir,
            w,
            node,
            module,
        }
    }

    pub(crate) fn pid(&mut self, n: u32) -> DictId {
        let node = self.node;
        self.w.dict_mut().intern_pid(PidEntry {
            node,
            number: n,
            serial: 0,
            creation: 1,
        })
    }

    pub(crate) fn mfa(&mut self, f: &str) -> DictId {
        let function = self.w.dict_mut().intern_atom(f);
        let module = self.module;
        self.w.dict_mut().intern_mfa(MfaEntry {
            module,
            function,
            arity: 0,
        })
    }

    pub(crate) fn add(
        &mut self,
        t: i64,
        kind: EventKind,
        pid: u32,
        f: &str,
        link: Option<EventId>,
    ) -> EventId {
        let mut e = NewEvent::new(T0 + t * US, kind, self.node, self.pid(pid));
        if !f.is_empty() {
            e.mfa = self.mfa(f);
        }
        e.link = link;
        self.w.append(&e).unwrap()
    }

    /// A call at stack depth `depth` (0 = outermost).
    pub(crate) fn call_at_depth(&mut self, t: i64, pid: u32, f: &str, depth: u64) -> EventId {
        let mut e = NewEvent::new(T0 + t * US, EventKind::Call, self.node, self.pid(pid));
        e.mfa = self.mfa(f);
        e.aux = depth;
        self.w.append(&e).unwrap()
    }

    pub(crate) fn call(&mut self, t: i64, pid: u32, f: &str) -> EventId {
        self.add(t, EventKind::Call, pid, f, None)
    }

    pub(crate) fn ret(&mut self, t: i64, pid: u32, f: &str, call: EventId) -> EventId {
        self.add(t, EventKind::Return, pid, f, Some(call))
    }

    /// `f` called at `t` returning after `len` µs, calling nothing.
    pub(crate) fn leaf(&mut self, t: i64, len: i64, pid: u32, f: &str) {
        let c = self.call(t, pid, f);
        self.ret(t + len, pid, f, c);
    }

    pub(crate) fn open(mut self) -> (Session, tempfile::TempDir) {
        self.w.sync().unwrap();
        (Session::open_dir(&self.dir).unwrap(), self._home)
    }
}
