//! Reading a session: block index, dictionary, decoded blocks, damage reports.
//!
//! Opening a session loads the block index (falling back to scanning the segment
//! where the index is missing, short or damaged) and applies every dictionary
//! block. Events blocks are read on demand, checked against their CRC and kept in
//! a small cache. Damage never makes the whole session unreadable: a bad block is
//! skipped and reported in [`SessionReader::problems`], a truncated tail is
//! reported once, and everything else stays available. A session that is still
//! being recorded can be opened at any time; it shows what was flushed so far.

use crate::block::{
    self, BlockHeader, BlockSummary, EventsBlock, BLOCK_HEADER_LEN, KIND_DICT, KIND_EVENTS,
    SUMMARY_LEN,
};
use crate::block::{StateEntry, STATE_ENTRY_LEN};
use crate::dict::Dictionary;
use crate::model::{DictId, EventKind};
use crate::model::{Event, EventId};
use crate::session::{
    index_path, read_meta, segment_path, state_index_path, SessionMeta, SessionStatus,
};
use crate::StoreError;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};

const CACHE_BLOCKS: usize = 64;

/// Read access to one session.
pub struct SessionReader {
    dir: PathBuf,
    meta: SessionMeta,
    segment: File,
    blocks: Vec<BlockSummary>,
    dict: Dictionary,
    total: u64,
    problems: Mutex<Vec<String>>,
    cache: Mutex<BlockCache>,
    states: OnceLock<StateIndex>,
}

/// Every state event of every process, in time order per process.
#[derive(Debug, Default)]
pub struct StateIndex {
    by_pid: rustc_hash::FxHashMap<DictId, Vec<(i64, EventId)>>,
}

impl StateIndex {
    /// `(ts, id)` of `pid`'s state events, ordered by time then id.
    pub fn of(&self, pid: DictId) -> &[(i64, EventId)] {
        self.by_pid.get(&pid).map(Vec::as_slice).unwrap_or(&[])
    }

    fn add(&mut self, e: StateEntry) {
        self.by_pid.entry(e.pid).or_default().push((e.ts, e.id));
    }

    fn sort(&mut self) {
        for v in self.by_pid.values_mut() {
            v.sort_unstable();
        }
    }
}

#[derive(Default)]
struct BlockCache {
    map: HashMap<usize, Arc<EventsBlock>>,
    order: VecDeque<usize>,
}

impl SessionReader {
    /// Opens the session in `dir`.
    pub fn open(dir: &Path) -> Result<SessionReader, StoreError> {
        let mut problems = Vec::new();
        let meta = match read_meta(dir) {
            Ok(m) => m,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotASession(dir.to_owned()))
            }
            Err(e) => {
                problems.push(format!("{e}; using defaults"));
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                let mut m = SessionMeta::new(
                    &name.unwrap_or_default(),
                    "unknown",
                    "unknown",
                    serde_json::Value::Null,
                );
                m.status = SessionStatus::Interrupted;
                m.recorder_pid = None;
                m
            }
        };
        let live = meta.effective_status() == SessionStatus::Recording;
        let seg_path = segment_path(dir, 0);
        let segment = File::open(&seg_path).map_err(|e| StoreError::io(&seg_path, e))?;
        let seg_len = segment
            .metadata()
            .map_err(|e| StoreError::io(&seg_path, e))?
            .len();
        let mut header = [0u8; block::SEGMENT_HEADER_LEN as usize];
        if segment.read_exact_at(&mut header, 0).is_err() || &header[..8] != block::SEGMENT_MAGIC {
            return Err(StoreError::Corrupt {
                path: seg_path,
                detail: "not an ElixirScope segment (bad file header)".into(),
            });
        }

        let mut summaries = read_index(dir, seg_len, &mut problems);
        let indexed_end = summaries
            .last()
            .map(|s| s.offset + s.len as u64)
            .unwrap_or(block::SEGMENT_HEADER_LEN);
        if indexed_end < seg_len {
            scan_segment(
                &segment,
                &seg_path,
                indexed_end,
                seg_len,
                live,
                &mut summaries,
                &mut problems,
            );
        }

        let mut dict = Dictionary::default();
        let mut blocks = Vec::new();
        for s in summaries {
            match s.kind {
                KIND_DICT => match read_payload(&segment, &s) {
                    Ok(raw) => {
                        if let Err(e) = dict.apply_block(&raw) {
                            problems.push(format!("dictionary block at byte {}: {e}", s.offset));
                        }
                    }
                    Err(e) => problems.push(format!("dictionary block at byte {}: {e}", s.offset)),
                },
                KIND_EVENTS => blocks.push(s),
                _ => {}
            }
        }
        let total = blocks.last().map(|b| b.end_id()).unwrap_or(0);
        Ok(SessionReader {
            dir: dir.to_owned(),
            meta,
            segment,
            blocks,
            dict,
            total,
            problems: Mutex::new(problems),
            cache: Mutex::new(BlockCache::default()),
            states: OnceLock::new(),
        })
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The session metadata.
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// The dictionary.
    pub fn dict(&self) -> &Dictionary {
        &self.dict
    }

    /// Summaries of all readable events blocks, in id order.
    pub fn blocks(&self) -> &[BlockSummary] {
        &self.blocks
    }

    /// One past the highest stored event id.
    pub fn total_events(&self) -> u64 {
        self.total
    }

    /// Damage found so far (index rebuilt, bad blocks, truncated tail).
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().expect("problems lock").clone()
    }

    /// Reads and decodes events block `i` (cached). A damaged block is reported
    /// and read as empty.
    pub fn block(&self, i: usize) -> Arc<EventsBlock> {
        if let Some(b) = self.cache.lock().expect("cache lock").map.get(&i) {
            return b.clone();
        }
        let s = &self.blocks[i];
        let decoded = read_payload(&self.segment, s)
            .and_then(|raw| EventsBlock::decode(s.first_id, &raw).map_err(String::from))
            .unwrap_or_else(|e| {
                self.problems.lock().expect("problems lock").push(format!(
                    "events {}..{} unreadable (block at byte {}): {e}",
                    s.first_id,
                    s.end_id(),
                    s.offset
                ));
                EventsBlock::decode(s.first_id, &empty_events_payload()).expect("empty block")
            });
        let decoded = Arc::new(decoded);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.order.len() >= CACHE_BLOCKS {
            if let Some(old) = cache.order.pop_front() {
                cache.map.remove(&old);
            }
        }
        cache.order.push_back(i);
        cache.map.insert(i, decoded.clone());
        decoded
    }

    /// The state index, loaded on first use; rebuilt from the blocks if the file
    /// disagrees with them (e.g. after a crash between writes).
    pub fn state_index(&self) -> &StateIndex {
        self.states.get_or_init(|| {
            let expected: u64 = self.blocks.iter().map(|b| b.states as u64).sum();
            let mut idx = StateIndex::default();
            let path = state_index_path(&self.dir);
            if let Ok(bytes) = std::fs::read(&path) {
                let entries: Vec<StateEntry> = bytes
                    .chunks_exact(STATE_ENTRY_LEN)
                    .map(StateEntry::decode)
                    .collect();
                if entries.len() as u64 >= expected
                    && entries
                        .iter()
                        .take(expected as usize)
                        .all(|e| e.id < self.total)
                {
                    for e in entries.into_iter().take(expected as usize) {
                        idx.add(e);
                    }
                    idx.sort();
                    return idx;
                }
            }
            let mask = EventKind::State.bit() | EventKind::StateSnapshot.bit();
            for (i, b) in self.blocks.iter().enumerate() {
                if b.kinds & mask == 0 {
                    continue;
                }
                for e in self.block(i).iter().filter(|e| e.kind.is_state()) {
                    idx.add(StateEntry {
                        pid: e.pid,
                        id: e.id,
                        ts: e.ts,
                    });
                }
            }
            idx.sort();
            idx
        })
    }

    /// Index of the block holding event `id`.
    pub fn block_of(&self, id: EventId) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.end_id() <= id);
        (i < self.blocks.len() && self.blocks[i].first_id <= id).then_some(i)
    }

    /// Calls `f` with event `id`, if it is stored and readable.
    pub fn with_event<R>(&self, id: EventId, f: impl FnOnce(&Event<'_>) -> R) -> Option<R> {
        let i = self.block_of(id)?;
        let block = self.block(i);
        let e = block.get((id - block.first_id()) as usize)?;
        Some(f(&e))
    }

    /// Index of the first block whose events may be at or after `ts`
    /// (blocks are in id order; timestamps are nearly ordered).
    pub fn first_block_at_or_after(&self, ts: i64) -> usize {
        self.blocks
            .iter()
            .position(|b| b.max_ts >= ts)
            .unwrap_or(self.blocks.len())
    }
}

fn empty_events_payload() -> Vec<u8> {
    let mut raw = vec![0u8; 12];
    raw.extend(std::iter::repeat_n(0u8, 4 * 12));
    raw
}

fn read_payload(segment: &File, s: &BlockSummary) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; s.len as usize];
    segment
        .read_exact_at(&mut buf, s.offset)
        .map_err(|e| format!("read failed: {e}"))?;
    let header = BlockHeader::decode(&buf)?;
    if header.total_len() != s.len as u64 {
        return Err("block length does not match the index".into());
    }
    Ok(block::unframe(&header, &buf[BLOCK_HEADER_LEN..])?)
}

/// Reads the index file, keeping entries that are intact and inside the segment.
fn read_index(dir: &Path, seg_len: u64, problems: &mut Vec<String>) -> Vec<BlockSummary> {
    let path = index_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => {
            problems.push("block index missing; rebuilt from the segment".into());
            return Vec::new();
        }
    };
    let mut out: Vec<BlockSummary> = Vec::with_capacity(bytes.len() / SUMMARY_LEN);
    let mut expected = block::SEGMENT_HEADER_LEN;
    for (i, rec) in bytes.chunks(SUMMARY_LEN).enumerate() {
        match BlockSummary::decode(rec) {
            Some(s) if s.offset == expected && s.offset + s.len as u64 <= seg_len => {
                expected = s.offset + s.len as u64;
                out.push(s);
            }
            // Points past the end: the segment scan reports the truncation.
            Some(s) if s.offset == expected => break,
            _ => {
                if rec.len() == SUMMARY_LEN {
                    problems.push(format!(
                        "block index damaged at entry {i}; the rest was rebuilt from the segment"
                    ));
                }
                break;
            }
        }
    }
    out
}

/// Scans blocks from `from` to the end of the segment, appending their summaries.
fn scan_segment(
    segment: &File,
    path: &Path,
    from: u64,
    seg_len: u64,
    live: bool,
    out: &mut Vec<BlockSummary>,
    problems: &mut Vec<String>,
) {
    let mut pos = from;
    while pos < seg_len {
        match summarize_block_at(segment, pos, seg_len) {
            Ok(s) => {
                pos += s.len as u64;
                out.push(s);
            }
            Err(e) => {
                if live {
                    // The recorder may be writing this block right now.
                    return;
                }
                let resync = find_next_block(segment, pos + 1, seg_len);
                let lost = resync.unwrap_or(seg_len) - pos;
                problems.push(format!(
                    "{}: {lost} bytes unreadable at byte {pos} ({e}){}",
                    path.display(),
                    if resync.is_some() { "; later blocks are intact" } else { "; the file is truncated or its tail is damaged, everything before is intact" }
                ));
                match resync {
                    Some(next) => pos = next,
                    None => return,
                }
            }
        }
    }
}

fn summarize_block_at(segment: &File, pos: u64, seg_len: u64) -> Result<BlockSummary, String> {
    let mut h = [0u8; BLOCK_HEADER_LEN];
    if pos + BLOCK_HEADER_LEN as u64 > seg_len {
        return Err("incomplete block header".into());
    }
    segment
        .read_exact_at(&mut h, pos)
        .map_err(|e| e.to_string())?;
    let header = BlockHeader::decode(&h)?;
    if pos + header.total_len() > seg_len {
        return Err("incomplete block".into());
    }
    let mut summary = BlockSummary {
        offset: pos,
        len: header.total_len() as u32,
        segment: 0,
        kind: header.kind,
        first_id: header.first_id,
        count: header.count,
        min_ts: 0,
        max_ts: 0,
        kinds: 0,
        states: 0,
        pid_bloom: [0; 8],
    };
    let raw = read_payload(segment, &summary)?;
    if header.kind == KIND_EVENTS {
        let block = EventsBlock::decode(header.first_id, &raw)?;
        let mut b = block::EventsBuilder::default();
        for e in block.iter() {
            b.push(
                e.id,
                &crate::model::NewEvent {
                    ts: e.ts,
                    kind: e.kind,
                    node: e.node,
                    pid: e.pid,
                    peer: e.peer,
                    mfa: e.mfa,
                    link: e.link,
                    aux: e.aux,
                    term: None,
                    term2: None,
                },
            );
        }
        let (_, s, _) = b.finish();
        summary.states = s.states;
        summary.min_ts = s.min_ts;
        summary.max_ts = s.max_ts;
        summary.kinds = s.kinds;
        summary.pid_bloom = s.pid_bloom;
    }
    Ok(summary)
}

fn find_next_block(segment: &File, from: u64, seg_len: u64) -> Option<u64> {
    let mut pos = from;
    let mut buf = vec![0u8; 1 << 16];
    while pos < seg_len {
        let n = ((seg_len - pos) as usize).min(buf.len());
        segment.read_exact_at(&mut buf[..n], pos).ok()?;
        for i in 0..n.saturating_sub(3) {
            if &buf[i..i + 4] == block::BLOCK_MAGIC
                && summarize_block_at(segment, pos + i as u64, seg_len).is_ok()
            {
                return Some(pos + i as u64);
            }
        }
        pos += n.saturating_sub(3).max(1) as u64;
    }
    None
}
