//! An open session with the domain's vocabulary: pids, names, MFAs, terms.

use crate::time::Cursor;
use crate::QueryError;
use elixirscope_store::session::{resolve_session, SessionMeta};
use elixirscope_store::{DictId, Event, EventKind, SessionReader};
use elixirscope_term::{inspect, InspectOptions, Term};
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// A registration of a name, from register/unregister or the start snapshot.
#[derive(Debug, Clone, Copy)]
struct NameChange {
    ts: i64,
    id: u64,
    name: DictId,
    pid: DictId,
    registered: bool,
}

/// A process as given on the command line, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcRef {
    pub pid: DictId,
}

/// An open session.
pub struct Session {
    reader: SessionReader,
    node_index: HashMap<DictId, usize>,
    node_names: Vec<String>,
    names: OnceLock<Vec<NameChange>>,
    names_by_pid: OnceLock<HashMap<DictId, Vec<NameChange>>>,
}

impl Session {
    /// Opens a session by name (exact, unique prefix, or `last`) under `home`.
    pub fn open(home: &Path, name: &str) -> Result<Session, QueryError> {
        let dir = resolve_session(home, name)?;
        Session::open_dir(&dir)
    }

    /// Opens the session in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Session, QueryError> {
        let reader = SessionReader::open(dir)?;
        let mut node_names: Vec<String> =
            reader.meta().nodes.iter().map(|n| n.name.clone()).collect();
        let mut node_index = HashMap::new();
        for (i, n) in node_names.iter().enumerate() {
            if let Some(id) = reader.dict().find_atom(n) {
                node_index.insert(id, i);
            }
        }
        // Nodes seen only in pids (remote peers) are numbered after the session's nodes.
        for (_, p) in reader.dict().pids() {
            if let std::collections::hash_map::Entry::Vacant(e) = node_index.entry(p.node) {
                e.insert(node_names.len());
                node_names.push(reader.dict().atom(p.node).unwrap_or("?").to_owned());
            }
        }
        Ok(Session {
            reader,
            node_index,
            node_names,
            names: OnceLock::new(),
            names_by_pid: OnceLock::new(),
        })
    }

    pub fn reader(&self) -> &SessionReader {
        &self.reader
    }

    pub fn meta(&self) -> &SessionMeta {
        self.reader.meta()
    }

    pub fn name(&self) -> &str {
        &self.reader.meta().name
    }

    /// Damage found while reading (empty for a healthy session).
    pub fn problems(&self) -> Vec<String> {
        self.reader.problems()
    }

    /// Wall-clock ns of the session's first moment.
    pub fn start_ns(&self) -> i64 {
        let first_block = self.reader.blocks().iter().map(|b| b.min_ts).min();
        match (self.meta().started_ns, first_block) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 0,
        }
    }

    /// Wall-clock ns of the session's last event (or end of recording).
    pub fn end_ns(&self) -> i64 {
        let last = self
            .reader
            .blocks()
            .iter()
            .map(|b| b.max_ts)
            .max()
            .unwrap_or(0);
        last.max(self.meta().ended_ns.unwrap_or(0))
            .max(self.start_ns())
    }

    /// Node names; index 0 prints as the local node (`<0.x.y>`).
    pub fn nodes(&self) -> &[String] {
        &self.node_names
    }

    /// Whether a process runs on one of the session's traced nodes (not a
    /// remote peer seen only in its messages).
    pub fn on_traced_node(&self, pid: DictId) -> bool {
        let traced = self.meta().nodes.len().max(1);
        match self.reader.dict().pid(pid) {
            Some(p) => self.node_index.get(&p.node).copied().unwrap_or(0) < traced,
            None => false,
        }
    }

    /// `<N.id.serial>` for a process.
    pub fn pid_text(&self, pid: DictId) -> String {
        match self.reader.dict().pid(pid) {
            Some(p) => format!(
                "<{}.{}.{}>",
                self.node_index.get(&p.node).copied().unwrap_or(0),
                p.number,
                p.serial
            ),
            None => "<?>".into(),
        }
    }

    /// The text of an atom id.
    pub fn atom(&self, id: DictId) -> &str {
        self.reader.dict().atom(id).unwrap_or("?")
    }

    /// An atom as Elixir prints it (`Demo.Counter`, `:code_server`).
    pub fn atom_text(&self, id: DictId) -> String {
        inspect(&Term::atom(self.atom(id)), &InspectOptions::default())
    }

    /// `Demo.Counter.handle_call/3` or `:lists.reverse/1`.
    pub fn mfa_text(&self, mfa: DictId) -> String {
        match self.reader.dict().mfa(mfa) {
            Some(m) => {
                let module = self.atom(m.module);
                let module = match module.strip_prefix("Elixir.") {
                    Some(alias) => alias.to_owned(),
                    None => self.atom_text(m.module),
                };
                let function = self.atom(m.function);
                let plain = function
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && function
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_?!@".contains(c));
                let function = if plain {
                    function.to_owned()
                } else {
                    format!("{:?}", function)
                };
                format!("{module}.{function}/{}", m.arity)
            }
            None => "?".into(),
        }
    }

    /// Options that print this session's pids as Elixir would on `node`.
    pub fn inspect_options(&self) -> InspectOptions {
        InspectOptions {
            local_node: self.node_names.first().cloned(),
            other_nodes: self.node_names.iter().skip(1).cloned().collect(),
            ..Default::default()
        }
    }

    /// Decodes stored term bytes.
    pub fn term(&self, bytes: &[u8]) -> Option<Term> {
        elixirscope_term::decode_body(bytes).ok()
    }

    /// Stored term bytes printed as Elixir's `inspect` would.
    pub fn inspect_bytes(&self, bytes: &[u8]) -> String {
        match elixirscope_term::decode_body(bytes) {
            Ok(t) => inspect(&t, &self.inspect_options()),
            Err(e) => format!("#ElixirScope.Unreadable<{e}>"),
        }
    }

    /// Finds a process by pid text (`<0.123.0>`, `#PID<0.123.0>`, `0.123.0`).
    pub fn find_pid(&self, text: &str) -> Result<Option<DictId>, QueryError> {
        let t = text.trim();
        let inner = t
            .strip_prefix("#PID")
            .unwrap_or(t)
            .trim_start_matches('<')
            .trim_end_matches('>');
        let parts: Vec<&str> = inner.split('.').collect();
        let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
        let Some([node, number, serial]) =
            nums.as_deref().and_then(|n| <[u32; 3]>::try_from(n).ok())
        else {
            return Err(QueryError::BadProc(text.to_owned()));
        };
        let found = self
            .reader
            .dict()
            .pids()
            .filter(|(_, p)| {
                p.number == number
                    && p.serial == serial
                    && self.node_index.get(&p.node).copied().unwrap_or(0) == node as usize
            })
            .map(|(id, _)| id)
            .last();
        Ok(found)
    }

    /// The session's id for a pid term.
    pub fn pid_id(&self, t: &Term) -> Option<DictId> {
        let Term::Pid(p) = t else { return None };
        let node = self.reader.dict().find_atom(&p.node)?;
        self.reader.dict().find_pid(&elixirscope_store::PidEntry {
            node,
            number: p.id,
            serial: p.serial,
            creation: p.creation,
        })
    }

    /// Whether `text` looks like a pid rather than a name.
    pub fn is_pid_text(text: &str) -> bool {
        let t = text
            .trim()
            .trim_start_matches("#PID")
            .trim_start_matches('<');
        t.chars().next().is_some_and(|c| c.is_ascii_digit())
    }

    /// Resolves a pid or a registered name (as of `at`) to a process.
    pub fn resolve_proc(&self, text: &str, at: &Cursor) -> Result<ProcRef, QueryError> {
        if Session::is_pid_text(text) {
            return match self.find_pid(text)? {
                Some(pid) => Ok(ProcRef { pid }),
                None => Err(QueryError::UnknownProc(text.trim().to_owned())),
            };
        }
        let atom = elixirscope_term::mfa_pattern::parse_atom_target(text)
            .map_err(|_| QueryError::BadProc(text.to_owned()))?;
        let Some(name) = self.reader.dict().find_atom(&atom) else {
            return Err(QueryError::UnknownProc(format!(
                "registered as {}",
                text.trim()
            )));
        };
        // The holder at `at`, else the last holder before it, else the first after it.
        let changes = self.name_changes();
        let mine: Vec<&NameChange> = changes.iter().filter(|c| c.name == name).collect();
        let before = mine.iter().rev().find(|c| at.includes(c.ts, c.id));
        let pick = match before {
            Some(c) => Some(c.pid),
            None => mine.first().map(|c| c.pid),
        };
        pick.map(|pid| ProcRef { pid })
            .ok_or_else(|| QueryError::UnknownProc(format!("registered as {}", text.trim())))
    }

    /// Every process that is `text` (a pid), or that ever held the name `text`.
    pub fn resolve_all(&self, text: &str) -> Result<Vec<DictId>, QueryError> {
        if Session::is_pid_text(text) {
            return self.resolve_proc(text, &Cursor::END).map(|p| vec![p.pid]);
        }
        let atom = elixirscope_term::mfa_pattern::parse_atom_target(text)
            .map_err(|_| QueryError::BadProc(text.to_owned()))?;
        let name = self.reader.dict().find_atom(&atom);
        let mut pids: Vec<DictId> = self
            .name_changes()
            .iter()
            .filter(|c| Some(c.name) == name && c.registered)
            .map(|c| c.pid)
            .collect();
        pids.dedup();
        if pids.is_empty() {
            return Err(QueryError::UnknownProc(format!(
                "registered as {}",
                text.trim()
            )));
        }
        Ok(pids)
    }

    /// The registered name of `pid` at `at`, as Elixir prints it.
    pub fn name_at(&self, pid: DictId, at: &Cursor) -> Option<String> {
        let by_pid = self.names_by_pid.get_or_init(|| {
            let mut m: HashMap<DictId, Vec<NameChange>> = HashMap::new();
            for c in self.name_changes() {
                m.entry(c.pid).or_default().push(*c);
            }
            m
        });
        let changes = by_pid.get(&pid)?;
        let last = changes.iter().rev().find(|c| at.includes(c.ts, c.id))?;
        last.registered.then(|| self.atom_text(last.name))
    }

    /// The last name `pid` ever had (for labelling dead processes).
    pub fn any_name(&self, pid: DictId) -> Option<String> {
        self.name_changes()
            .iter()
            .rev()
            .find(|c| c.pid == pid && c.registered)
            .map(|c| self.atom_text(c.name))
    }

    fn name_changes(&self) -> &[NameChange] {
        self.names.get_or_init(|| {
            let mut out = Vec::new();
            let kinds = [
                EventKind::Register,
                EventKind::Unregister,
                EventKind::ProcessInfo,
            ];
            self.scan_kinds(&kinds, |e| {
                let name = match e.kind {
                    EventKind::ProcessInfo => e
                        .term
                        .and_then(|t| self.term(t))
                        .and_then(|t| {
                            t.map_get(&Term::atom("registered_name"))
                                .and_then(|n| n.as_atom().map(str::to_owned))
                        })
                        .filter(|n| n != "undefined"),
                    _ => e
                        .term
                        .and_then(|t| self.term(t))
                        .and_then(|t| t.as_atom().map(str::to_owned)),
                };
                if let Some(n) = name.and_then(|n| self.reader.dict().find_atom(&n)) {
                    out.push(NameChange {
                        ts: e.ts,
                        id: e.id,
                        name: n,
                        pid: e.pid,
                        registered: e.kind != EventKind::Unregister,
                    });
                }
            });
            out.sort_by_key(|c| (c.ts, c.id));
            out
        })
    }

    /// Calls `f` for every event of one of `kinds`, in id order.
    pub fn scan_kinds(&self, kinds: &[EventKind], mut f: impl FnMut(&Event<'_>)) {
        let mask: u32 = kinds.iter().map(|k| k.bit()).fold(0, |a, b| a | b);
        for (i, b) in self.reader.blocks().iter().enumerate() {
            if b.kinds & mask == 0 {
                continue;
            }
            let block = self.reader.block(i);
            for e in block.iter() {
                if kinds.contains(&e.kind) {
                    f(&e);
                }
            }
        }
    }

    /// Calls `f` for every event with `ts` inside the cursor bound, optionally only
    /// blocks that may involve `pid` and hold one of `kinds` (empty = all kinds).
    /// Returning `false` from `f` stops the scan.
    pub fn scan_until(
        &self,
        until: &Cursor,
        pid: Option<DictId>,
        kinds: &[EventKind],
        mut f: impl FnMut(&Event<'_>) -> bool,
    ) {
        let mask: u32 = if kinds.is_empty() {
            u32::MAX
        } else {
            kinds.iter().map(|k| k.bit()).fold(0, |a, b| a | b)
        };
        for (i, b) in self.reader.blocks().iter().enumerate() {
            // Blocks are in id order and nearly in time order; allow a second of disorder.
            let past = match until.id {
                Some(id) => b.first_id > id,
                None => b.min_ts > until.ts.saturating_add(1_000_000_000),
            };
            if past {
                break;
            }
            if b.kinds & mask == 0 || pid.is_some_and(|p| !b.may_involve(p)) {
                continue;
            }
            if until.id.is_none() && b.min_ts > until.ts {
                continue;
            }
            let block = self.reader.block(i);
            for e in block.iter() {
                if !until.includes(e.ts, e.id) {
                    continue;
                }
                if !kinds.is_empty() && !kinds.contains(&e.kind) {
                    continue;
                }
                if pid.is_some_and(|p| !e.involves(p)) {
                    continue;
                }
                if !f(&e) {
                    return;
                }
            }
        }
    }

    /// Calls `f` for the events at or before `until` (of `kinds`, all when
    /// empty; involving `pid` when given), newest first, reading at most
    /// `max_blocks` blocks that may hold one; `f` returning false stops.
    /// Returns false when the block limit stopped the walk early.
    pub fn scan_back(
        &self,
        until: &Cursor,
        pid: Option<DictId>,
        kinds: &[EventKind],
        max_blocks: usize,
        mut f: impl FnMut(&Event<'_>) -> bool,
    ) -> bool {
        let mask: u32 = if kinds.is_empty() {
            u32::MAX
        } else {
            kinds.iter().map(|k| k.bit()).fold(0, |a, b| a | b)
        };
        let blocks = self.reader.blocks();
        // The last block that can hold such an event: blocks are nearly in
        // time order, so allow a second of disorder after a time.
        let last = match until.id {
            Some(id) => blocks.iter().rposition(|b| b.first_id <= id),
            None => {
                let slack = until.ts.saturating_add(1_000_000_000);
                blocks.iter().rposition(|b| b.min_ts <= slack)
            }
        };
        let mut read = 0;
        let mut i = last.map_or(0, |l| l + 1);
        while i > 0 {
            i -= 1;
            let b = &blocks[i];
            if b.kinds & mask == 0 || pid.is_some_and(|p| !b.may_involve(p)) {
                continue;
            }
            if until.id.is_none() && b.min_ts > until.ts {
                continue;
            }
            if read == max_blocks {
                return false;
            }
            read += 1;
            let block = self.reader.block(i);
            let mut mine: Vec<Event<'_>> = block
                .iter()
                .filter(|e| {
                    until.includes(e.ts, e.id)
                        && (kinds.is_empty() || kinds.contains(&e.kind))
                        && match pid {
                            Some(p) => e.involves(p),
                            None => true,
                        }
                })
                .collect();
            mine.reverse();
            for e in &mine {
                if !f(e) {
                    return true;
                }
            }
        }
        true
    }
}
