//! The session dictionary: atoms (module, function, registered and node names),
//! processes and MFAs, each interned once and referred to by a small id.
//!
//! The writer interns and collects new entries; they are written as a dictionary
//! block before the first events block that refers to them, so a reader that can
//! see an event can always resolve its ids.

use crate::model::{DictId, MfaEntry, PidEntry};
use crate::varint;
use rustc_hash::FxHashMap as HashMap;

const ATOM: u8 = 1;
/// Most ids a damaged stretch of dictionary may skip (placeholders are filled in).
const MAX_GAP: usize = 1 << 20;
const PID: u8 = 2;
const MFA: u8 = 3;

/// Interned atoms, pids and MFAs of one session.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    atoms: Vec<String>,
    atom_ids: HashMap<String, DictId>,
    pids: Vec<PidEntry>,
    pid_ids: HashMap<PidEntry, DictId>,
    mfas: Vec<MfaEntry>,
    mfa_ids: HashMap<MfaEntry, DictId>,
    /// Encoded entries not yet written (writer side).
    pending: Vec<u8>,
}

impl Dictionary {
    /// The atom text for `id`.
    pub fn atom(&self, id: DictId) -> Option<&str> {
        self.atoms
            .get((id as usize).checked_sub(1)?)
            .map(String::as_str)
    }

    /// The process for `id`.
    pub fn pid(&self, id: DictId) -> Option<PidEntry> {
        self.pids.get((id as usize).checked_sub(1)?).copied()
    }

    /// The MFA for `id`.
    pub fn mfa(&self, id: DictId) -> Option<MfaEntry> {
        self.mfas.get((id as usize).checked_sub(1)?).copied()
    }

    /// The id of an atom, if interned.
    pub fn find_atom(&self, text: &str) -> Option<DictId> {
        self.atom_ids.get(text).copied()
    }

    /// The id of a process, if interned.
    pub fn find_pid(&self, pid: &PidEntry) -> Option<DictId> {
        self.pid_ids.get(pid).copied()
    }

    /// The id of an MFA, if interned.
    pub fn find_mfa(&self, mfa: &MfaEntry) -> Option<DictId> {
        self.mfa_ids.get(mfa).copied()
    }

    /// All processes with their ids.
    pub fn pids(&self) -> impl Iterator<Item = (DictId, PidEntry)> + '_ {
        self.pids
            .iter()
            .enumerate()
            .map(|(i, p)| (i as DictId + 1, *p))
    }

    /// All MFAs with their ids.
    pub fn mfas(&self) -> impl Iterator<Item = (DictId, MfaEntry)> + '_ {
        self.mfas
            .iter()
            .enumerate()
            .map(|(i, m)| (i as DictId + 1, *m))
    }

    /// Number of processes known.
    pub fn pid_count(&self) -> usize {
        self.pids.len()
    }

    /// Interns an atom.
    pub fn intern_atom(&mut self, text: &str) -> DictId {
        if let Some(&id) = self.atom_ids.get(text) {
            return id;
        }
        self.atoms.push(text.to_owned());
        let id = self.atoms.len() as DictId;
        self.atom_ids.insert(text.to_owned(), id);
        self.pending.push(ATOM);
        varint::put(&mut self.pending, id as u64);
        varint::put(&mut self.pending, text.len() as u64);
        self.pending.extend_from_slice(text.as_bytes());
        id
    }

    /// Interns a process.
    pub fn intern_pid(&mut self, pid: PidEntry) -> DictId {
        if let Some(&id) = self.pid_ids.get(&pid) {
            return id;
        }
        self.pids.push(pid);
        let id = self.pids.len() as DictId;
        self.pid_ids.insert(pid, id);
        self.pending.push(PID);
        for v in [id, pid.node, pid.number, pid.serial, pid.creation] {
            varint::put(&mut self.pending, v as u64);
        }
        id
    }

    /// Interns an MFA.
    pub fn intern_mfa(&mut self, mfa: MfaEntry) -> DictId {
        if let Some(&id) = self.mfa_ids.get(&mfa) {
            return id;
        }
        self.mfas.push(mfa);
        let id = self.mfas.len() as DictId;
        self.mfa_ids.insert(mfa, id);
        self.pending.push(MFA);
        for v in [id, mfa.module, mfa.function] {
            varint::put(&mut self.pending, v as u64);
        }
        self.pending.push(mfa.arity);
        id
    }

    /// Takes the encoded entries interned since the last call.
    pub(crate) fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Applies a dictionary block written by [`Dictionary::take_pending`].
    pub(crate) fn apply_block(&mut self, buf: &[u8]) -> Result<(), &'static str> {
        let mut pos = 0;
        let next = |pos: &mut usize| varint::get(buf, pos).ok_or("bad varint in dictionary");
        while pos < buf.len() {
            let kind = buf[pos];
            pos += 1;
            let id = next(&mut pos)? as usize;
            match kind {
                ATOM => {
                    let len = next(&mut pos)? as usize;
                    let end = pos.checked_add(len).filter(|&e| e <= buf.len());
                    let end = end.ok_or("atom runs past the dictionary block")?;
                    let text = String::from_utf8_lossy(&buf[pos..end]).into_owned();
                    pos = end;
                    if id == 0 || id <= self.atoms.len() || id - self.atoms.len() > MAX_GAP {
                        return Err("atom ids out of sequence");
                    }
                    // Entries lost with a damaged block leave placeholders.
                    while self.atoms.len() + 1 < id {
                        self.atoms.push("?".into());
                    }
                    self.atom_ids.insert(text.clone(), id as DictId);
                    self.atoms.push(text);
                }
                PID => {
                    let mut f = [0u32; 4];
                    for slot in f.iter_mut() {
                        *slot = u32::try_from(next(&mut pos)?).map_err(|_| "pid field too big")?;
                    }
                    let entry = PidEntry {
                        node: f[0],
                        number: f[1],
                        serial: f[2],
                        creation: f[3],
                    };
                    if id == 0 || id <= self.pids.len() || id - self.pids.len() > MAX_GAP {
                        return Err("pid ids out of sequence");
                    }
                    while self.pids.len() + 1 < id {
                        self.pids.push(PidEntry::default());
                    }
                    self.pid_ids.insert(entry, id as DictId);
                    self.pids.push(entry);
                }
                MFA => {
                    let module = next(&mut pos)? as DictId;
                    let function = next(&mut pos)? as DictId;
                    let arity = *buf.get(pos).ok_or("truncated MFA")?;
                    pos += 1;
                    let entry = MfaEntry {
                        module,
                        function,
                        arity,
                    };
                    if id == 0 || id <= self.mfas.len() || id - self.mfas.len() > MAX_GAP {
                        return Err("MFA ids out of sequence");
                    }
                    while self.mfas.len() + 1 < id {
                        self.mfas.push(MfaEntry::default());
                    }
                    self.mfa_ids.insert(entry, id as DictId);
                    self.mfas.push(entry);
                }
                _ => return Err("unknown dictionary entry type"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_entries_rebuild_the_same_dictionary() {
        let mut w = Dictionary::default();
        let node = w.intern_atom("app@host");
        let p = w.intern_pid(PidEntry {
            node,
            number: 85,
            serial: 0,
            creation: 3,
        });
        let m = w.intern_atom("Elixir.Counter");
        let f = w.intern_atom("handle_call");
        let mfa = w.intern_mfa(MfaEntry {
            module: m,
            function: f,
            arity: 3,
        });
        assert_eq!(w.intern_atom("app@host"), node);
        let block = w.take_pending();
        let mut r = Dictionary::default();
        r.apply_block(&block).unwrap();
        assert_eq!(r.atom(m), Some("Elixir.Counter"));
        assert_eq!(r.pid(p).unwrap().number, 85);
        assert_eq!(r.mfa(mfa).unwrap().arity, 3);
        assert!(w.take_pending().is_empty());
    }
}
