//! Appending events to a session: the single writer of a session directory.
//!
//! Events are assigned consecutive ids and gathered into a columnar block; a block
//! is written when it is full or when [`SessionWriter::flush`] is called (ingest
//! flushes at least every few tens of milliseconds so a session is queryable while
//! it records, and acknowledges the agent only after a flush). New dictionary
//! entries are written as their own block just before the events that use them.
//! After each block its summary is appended to the index file, and its state
//! events to the state index (so "state of P at T" never scans). Writes go straight
//! to the files (no user-space buffering), so a killed collector loses nothing it
//! had flushed.

use crate::block::{self, BlockSummary, EventsBuilder, KIND_DICT, KIND_EVENTS};
use crate::dict::Dictionary;
use crate::model::{EventId, EventKind, NewEvent};
use crate::session::{index_path, segment_path, state_index_path};
use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Events per block before it is written.
pub const BLOCK_EVENTS: u32 = 8192;
/// Raw payload bytes per block before it is written.
pub const BLOCK_BYTES: usize = 4 << 20;

/// The writer of one session's event data.
pub struct SessionWriter {
    dir: PathBuf,
    segment: File,
    segment_len: u64,
    index: File,
    states: File,
    dict: Dictionary,
    builder: EventsBuilder,
    next_id: EventId,
    counts: [u64; 32],
    max_bytes: u64,
}

impl SessionWriter {
    /// Creates the event files in an existing, empty session directory.
    pub fn create(dir: &Path) -> Result<SessionWriter, StoreError> {
        let seg_path = segment_path(dir, 0);
        let mut segment = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&seg_path)
            .map_err(|e| StoreError::io(&seg_path, e))?;
        let mut header = [0u8; block::SEGMENT_HEADER_LEN as usize];
        header[..8].copy_from_slice(block::SEGMENT_MAGIC);
        segment
            .write_all(&header)
            .map_err(|e| StoreError::io(&seg_path, e))?;
        let idx_path = index_path(dir);
        let index = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&idx_path)
            .map_err(|e| StoreError::io(&idx_path, e))?;
        let states_path = state_index_path(dir);
        let states = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&states_path)
            .map_err(|e| StoreError::io(&states_path, e))?;
        Ok(SessionWriter {
            dir: dir.to_owned(),
            segment,
            segment_len: block::SEGMENT_HEADER_LEN,
            index,
            states,
            dict: Dictionary::default(),
            builder: EventsBuilder::default(),
            next_id: 0,
            counts: [0; 32],
            max_bytes: u64::MAX,
        })
    }

    /// Caps the bytes the session may take on disk; see [`SessionWriter::is_full`].
    pub fn set_max_bytes(&mut self, max: u64) {
        self.max_bytes = max;
    }

    /// Whether the session reached its size cap.
    pub fn is_full(&self) -> bool {
        self.segment_len >= self.max_bytes
    }

    /// The dictionary, for interning ids before appending.
    pub fn dict_mut(&mut self) -> &mut Dictionary {
        &mut self.dict
    }

    /// The dictionary.
    pub fn dict(&self) -> &Dictionary {
        &self.dict
    }

    /// The id the next appended event will get.
    pub fn next_id(&self) -> EventId {
        self.next_id
    }

    /// Bytes written to the segment so far (not counting the unflushed block).
    pub fn bytes_on_disk(&self) -> u64 {
        self.segment_len
    }

    /// Events appended so far, per kind.
    pub fn count(&self, kind: EventKind) -> u64 {
        self.counts[kind as usize % 32]
    }

    /// Events appended so far.
    pub fn total(&self) -> u64 {
        self.next_id
    }

    /// Appends an event and returns its id. Writes a block when one is full.
    pub fn append(&mut self, event: &NewEvent<'_>) -> Result<EventId, StoreError> {
        let id = self.next_id;
        self.builder.push(id, event);
        self.next_id += 1;
        self.counts[event.kind as usize % 32] += 1;
        if self.builder.len() >= BLOCK_EVENTS || self.builder.raw_size() >= BLOCK_BYTES {
            self.flush()?;
        }
        Ok(id)
    }

    /// Writes pending dictionary entries and the current block, if any.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let pending = self.dict.take_pending();
        if !pending.is_empty() {
            let framed = block::frame(KIND_DICT, self.next_id, 0, &pending);
            let summary = BlockSummary {
                offset: 0,
                len: 0,
                segment: 0,
                kind: KIND_DICT,
                first_id: self.next_id,
                count: 0,
                min_ts: 0,
                max_ts: 0,
                kinds: 0,
                states: 0,
                pid_bloom: [0; 8],
            };
            self.write_block(&framed, summary)?;
        }
        if !self.builder.is_empty() {
            let (raw, summary, states) = self.builder.finish();
            let framed = block::frame(KIND_EVENTS, summary.first_id, summary.count, &raw);
            self.write_block(&framed, summary)?;
            if !states.is_empty() {
                let bytes: Vec<u8> = states.iter().flat_map(|e| e.encode()).collect();
                self.states
                    .write_all(&bytes)
                    .map_err(|e| StoreError::io(&state_index_path(&self.dir), e))?;
            }
        }
        Ok(())
    }

    fn write_block(&mut self, framed: &[u8], mut summary: BlockSummary) -> Result<(), StoreError> {
        summary.offset = self.segment_len;
        summary.len = framed.len() as u32;
        if let Err(e) = self.segment.write_all(framed) {
            // Cut a partial write off again so later blocks land where the index says.
            let _ = self.segment.set_len(self.segment_len);
            return Err(StoreError::io(&segment_path(&self.dir, 0), e));
        }
        self.segment_len += framed.len() as u64;
        self.index
            .write_all(&summary.encode())
            .map_err(|e| StoreError::io(&index_path(&self.dir), e))?;
        Ok(())
    }

    /// Flushes and asks the OS to put everything on stable storage.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.segment
            .sync_data()
            .and_then(|_| self.index.sync_data())
            .and_then(|_| self.states.sync_data())
            .map_err(|e| StoreError::io(&self.dir, e))
    }
}

impl Drop for SessionWriter {
    fn drop(&mut self) {
        // Best effort: an explicit `sync` reports errors; dropping must not lose data.
        let _ = self.flush();
    }
}
