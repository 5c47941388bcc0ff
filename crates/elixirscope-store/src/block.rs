//! The on-disk block: header, columnar events encoding, and block summaries.
//!
//! A segment file is a file header followed by blocks. Each block is a 32-byte
//! header (magic, kind, codec, lengths, first event id, count, CRC-32 of the
//! payload) and a zstd-compressed payload. Events blocks store their events
//! column by column (timestamps as zigzag deltas, ids as varints, payload terms
//! concatenated), which is what makes a small call event take a few bytes.
//! A [`BlockSummary`] (time range, kind mask, process Bloom filter) is kept for
//! each block in the index file so queries can skip blocks without reading them.

use crate::model::{DictId, Event, EventId, EventKind, NewEvent};
use crate::varint;

pub const SEGMENT_MAGIC: &[u8; 8] = b"ESSEG001";
pub const SEGMENT_HEADER_LEN: u64 = 16;
pub const BLOCK_MAGIC: &[u8; 4] = b"ESB1";
pub const BLOCK_HEADER_LEN: usize = 32;

pub const KIND_EVENTS: u8 = 1;
pub const KIND_DICT: u8 = 2;

const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
/// zstd's fast mode: compressing blocks was a fifth of ingest time at level 1;
/// -3 takes about a tenth less CPU per ingested event (farm-bench, 10 paired
/// runs) for somewhat larger blocks (see docs/performance.md for bytes/event).
const ZSTD_LEVEL: i32 = -3;
/// Largest payload a block may claim (guards allocation on corrupt input).
pub const MAX_PAYLOAD: u32 = 256 << 20;

/// A parsed block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub kind: u8,
    pub codec: u8,
    pub payload_len: u32,
    pub raw_len: u32,
    pub first_id: EventId,
    pub count: u32,
    pub crc: u32,
}

impl BlockHeader {
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut h = [0u8; BLOCK_HEADER_LEN];
        h[0..4].copy_from_slice(BLOCK_MAGIC);
        h[4] = self.kind;
        h[5] = self.codec;
        h[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        h[16..24].copy_from_slice(&self.first_id.to_le_bytes());
        h[24..28].copy_from_slice(&self.count.to_le_bytes());
        h[28..32].copy_from_slice(&self.crc.to_le_bytes());
        h
    }

    pub fn decode(h: &[u8]) -> Result<BlockHeader, &'static str> {
        if h.len() < BLOCK_HEADER_LEN || &h[0..4] != BLOCK_MAGIC {
            return Err("bad block magic");
        }
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
        let header = BlockHeader {
            kind: h[4],
            codec: h[5],
            payload_len: u32_at(8),
            raw_len: u32_at(12),
            first_id: u64::from_le_bytes(h[16..24].try_into().expect("8 bytes")),
            count: u32_at(24),
            crc: u32_at(28),
        };
        if header.payload_len > MAX_PAYLOAD || header.raw_len > MAX_PAYLOAD {
            return Err("block claims an impossible size");
        }
        if header.kind != KIND_EVENTS && header.kind != KIND_DICT {
            return Err("unknown block kind");
        }
        Ok(header)
    }

    /// Total bytes of header plus payload.
    pub fn total_len(&self) -> u64 {
        BLOCK_HEADER_LEN as u64 + self.payload_len as u64
    }
}

thread_local! {
    /// One compression context per thread, reused block after block (making
    /// one per block cost a share of every flush).
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            if c.is_none() {
                *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
            }
            c.as_mut()?.compress(raw).ok()
        })
        .ok()
        .flatten()
        .or_else(|| zstd::bulk::compress(raw, ZSTD_LEVEL).ok())
}

/// Compresses a raw payload and frames it as a block.
pub fn frame(kind: u8, first_id: EventId, count: u32, raw: &[u8]) -> Vec<u8> {
    let compressed = compress(raw);
    let (codec, payload) = match compressed {
        Some(c) if c.len() < raw.len() => (CODEC_ZSTD, c),
        _ => (CODEC_RAW, raw.to_vec()),
    };
    let header = BlockHeader {
        kind,
        codec,
        payload_len: payload.len() as u32,
        raw_len: raw.len() as u32,
        first_id,
        count,
        crc: crc32fast::hash(&payload),
    };
    let mut out = Vec::with_capacity(BLOCK_HEADER_LEN + payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&payload);
    out
}

/// Checks the CRC and decompresses a block payload.
pub fn unframe(header: &BlockHeader, payload: &[u8]) -> Result<Vec<u8>, &'static str> {
    if crc32fast::hash(payload) != header.crc {
        return Err("block checksum mismatch");
    }
    match header.codec {
        CODEC_RAW => Ok(payload.to_vec()),
        CODEC_ZSTD => {
            let raw = zstd::bulk::decompress(payload, header.raw_len as usize)
                .map_err(|_| "block does not decompress")?;
            if raw.len() != header.raw_len as usize {
                return Err("block decompresses to the wrong size");
            }
            Ok(raw)
        }
        _ => Err("unknown block codec"),
    }
}

/// Per-block facts used to skip blocks: time range, kinds, processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSummary {
    /// Offset of the block header in the segment file.
    pub offset: u64,
    /// Header plus payload length.
    pub len: u32,
    /// Segment number (file) holding the block.
    pub segment: u32,
    pub kind: u8,
    pub first_id: EventId,
    pub count: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    pub kinds: u32,
    /// State and state-snapshot events in the block (each also in the state index).
    pub states: u16,
    pub pid_bloom: [u64; 8],
}

pub const SUMMARY_LEN: usize = 128;

impl BlockSummary {
    pub fn encode(&self) -> [u8; SUMMARY_LEN] {
        let mut b = [0u8; SUMMARY_LEN];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..16].copy_from_slice(&self.segment.to_le_bytes());
        b[16] = self.kind;
        b[18..20].copy_from_slice(&self.states.to_le_bytes());
        b[20..28].copy_from_slice(&self.first_id.to_le_bytes());
        b[28..32].copy_from_slice(&self.count.to_le_bytes());
        b[32..40].copy_from_slice(&self.min_ts.to_le_bytes());
        b[40..48].copy_from_slice(&self.max_ts.to_le_bytes());
        b[48..52].copy_from_slice(&self.kinds.to_le_bytes());
        for (i, w) in self.pid_bloom.iter().enumerate() {
            b[56 + 8 * i..64 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<BlockSummary> {
        if b.len() < SUMMARY_LEN {
            return None;
        }
        let crc = u32::from_le_bytes(b[124..128].try_into().ok()?);
        if crc32fast::hash(&b[..124]) != crc {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let mut pid_bloom = [0u64; 8];
        for (i, w) in pid_bloom.iter_mut().enumerate() {
            *w = u64_at(56 + 8 * i);
        }
        Some(BlockSummary {
            offset: u64_at(0),
            len: u32_at(8),
            segment: u32_at(12),
            kind: b[16],
            states: u16::from_le_bytes([b[18], b[19]]),
            first_id: u64_at(20),
            count: u32_at(28),
            min_ts: u64_at(32) as i64,
            max_ts: u64_at(40) as i64,
            kinds: u32_at(48),
            pid_bloom,
        })
    }

    /// Whether the block may hold an event involving `pid`.
    pub fn may_involve(&self, pid: DictId) -> bool {
        let (a, b) = bloom_bits(pid);
        self.pid_bloom[a / 64] & (1 << (a % 64)) != 0
            && self.pid_bloom[b / 64] & (1 << (b % 64)) != 0
    }

    /// Whether the block holds at least one event of `kind`.
    pub fn has_kind(&self, kind: EventKind) -> bool {
        self.kinds & kind.bit() != 0
    }

    /// One past the last event id in the block.
    pub fn end_id(&self) -> EventId {
        self.first_id.saturating_add(self.count as u64)
    }
}

fn bloom_bits(pid: DictId) -> (usize, usize) {
    let h = (pid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 55) as usize % 512, ((h >> 23) & 511) as usize)
}

fn bloom_add(bloom: &mut [u64; 8], pid: DictId) {
    let (a, b) = bloom_bits(pid);
    bloom[a / 64] |= 1 << (a % 64);
    bloom[b / 64] |= 1 << (b % 64);
}

/// Accumulates events column by column until the block is flushed.
#[derive(Default)]
pub struct EventsBuilder {
    count: u32,
    base_ts: i64,
    last_ts: i64,
    first_id: EventId,
    ts: Vec<u8>,
    kind: Vec<u8>,
    node: Vec<u8>,
    pid: Vec<u8>,
    peer: Vec<u8>,
    mfa: Vec<u8>,
    link: Vec<u8>,
    aux: Vec<u8>,
    term_len: Vec<u8>,
    term2_len: Vec<u8>,
    terms: Vec<u8>,
    terms2: Vec<u8>,
    min_ts: i64,
    max_ts: i64,
    kinds: u32,
    bloom: [u64; 8],
    /// (pid, id, ts) of the block's state events.
    states: Vec<StateEntry>,
}

/// One entry of the state index: a state event of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateEntry {
    pub pid: DictId,
    pub id: EventId,
    pub ts: i64,
}

pub const STATE_ENTRY_LEN: usize = 20;

impl StateEntry {
    pub fn encode(&self) -> [u8; STATE_ENTRY_LEN] {
        let mut b = [0u8; STATE_ENTRY_LEN];
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..12].copy_from_slice(&self.id.to_le_bytes());
        b[12..20].copy_from_slice(&self.ts.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> StateEntry {
        StateEntry {
            pid: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            id: u64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
            ts: i64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
        }
    }
}

impl EventKind {
    /// Whether events of this kind go into the state index.
    pub fn is_state(self) -> bool {
        matches!(self, EventKind::State | EventKind::StateSnapshot)
    }
}

impl EventsBuilder {
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Approximate raw size so far.
    pub fn raw_size(&self) -> usize {
        self.terms.len() + self.terms2.len() + self.count as usize * 12
    }

    /// Adds an event with id `id` (ids in a block are consecutive).
    pub fn push(&mut self, id: EventId, e: &NewEvent<'_>) {
        if self.count == 0 {
            self.first_id = id;
            self.base_ts = e.ts;
            self.last_ts = e.ts;
            self.min_ts = e.ts;
            self.max_ts = e.ts;
        }
        self.count += 1;
        varint::put(
            &mut self.ts,
            varint::zigzag(e.ts.wrapping_sub(self.last_ts)),
        );
        self.last_ts = e.ts;
        self.min_ts = self.min_ts.min(e.ts);
        self.max_ts = self.max_ts.max(e.ts);
        self.kind.push(e.kind as u8);
        self.kinds |= e.kind.bit();
        if e.kind.is_state() {
            self.states.push(StateEntry {
                pid: e.pid,
                id,
                ts: e.ts,
            });
        }
        varint::put(&mut self.node, e.node as u64);
        varint::put(&mut self.pid, e.pid as u64);
        varint::put(&mut self.peer, e.peer as u64);
        varint::put(&mut self.mfa, e.mfa as u64);
        let link = match e.link {
            None => 0,
            Some(target) => varint::zigzag((id as i64).wrapping_sub(target as i64)) + 1,
        };
        varint::put(&mut self.link, link);
        varint::put(&mut self.aux, e.aux);
        for (t, lens, buf) in [
            (e.term, &mut self.term_len, &mut self.terms),
            (e.term2, &mut self.term2_len, &mut self.terms2),
        ] {
            match t {
                None => varint::put(lens, 0),
                Some(bytes) => {
                    varint::put(lens, bytes.len() as u64 + 1);
                    buf.extend_from_slice(bytes);
                }
            }
        }
        if e.pid != 0 {
            bloom_add(&mut self.bloom, e.pid);
        }
        if e.peer != 0 {
            bloom_add(&mut self.bloom, e.peer);
        }
    }

    /// Encodes the block payload, its summary (offset/len/segment left 0) and its
    /// state-index entries, and resets.
    pub fn finish(&mut self) -> (Vec<u8>, BlockSummary, Vec<StateEntry>) {
        let mut raw = Vec::with_capacity(self.raw_size() + 64);
        raw.extend_from_slice(&self.count.to_le_bytes());
        raw.extend_from_slice(&self.base_ts.to_le_bytes());
        for col in [
            &self.ts,
            &self.kind,
            &self.node,
            &self.pid,
            &self.peer,
            &self.mfa,
            &self.link,
            &self.aux,
            &self.term_len,
            &self.term2_len,
            &self.terms,
            &self.terms2,
        ] {
            raw.extend_from_slice(&(col.len() as u32).to_le_bytes());
            raw.extend_from_slice(col);
        }
        let summary = BlockSummary {
            offset: 0,
            len: 0,
            segment: 0,
            kind: KIND_EVENTS,
            first_id: self.first_id,
            count: self.count,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            kinds: self.kinds,
            states: self.states.len() as u16,
            pid_bloom: self.bloom,
        };
        let states = std::mem::take(&mut self.states);
        *self = EventsBuilder::default();
        (raw, summary, states)
    }
}

/// One event of a decoded block (payload terms as ranges into the block buffers).
#[derive(Debug, Clone, Copy)]
struct Row {
    ts: i64,
    kind: EventKind,
    node: DictId,
    pid: DictId,
    peer: DictId,
    mfa: DictId,
    link: Option<EventId>,
    aux: u64,
    term: Option<(u32, u32)>,
    term2: Option<(u32, u32)>,
}

/// A decoded events block.
#[derive(Debug, Clone)]
pub struct EventsBlock {
    first_id: EventId,
    rows: Vec<Row>,
    terms: Vec<u8>,
}

impl EventsBlock {
    /// Decodes a raw (decompressed) events payload.
    pub fn decode(first_id: EventId, raw: &[u8]) -> Result<EventsBlock, &'static str> {
        const BAD: &str = "malformed events block";
        if raw.len() < 12 {
            return Err(BAD);
        }
        let count = u32::from_le_bytes(raw[0..4].try_into().expect("4")) as usize;
        let base_ts = i64::from_le_bytes(raw[4..12].try_into().expect("8"));
        let mut cols: Vec<&[u8]> = Vec::with_capacity(12);
        let mut pos = 12;
        for _ in 0..12 {
            let len = raw.get(pos..pos + 4).ok_or(BAD)?;
            let len = u32::from_le_bytes(len.try_into().expect("4")) as usize;
            pos += 4;
            cols.push(raw.get(pos..pos + len).ok_or(BAD)?);
            pos += len;
        }
        // One kind byte per event: the count cannot claim more rows than that.
        if count != cols[1].len() {
            return Err(BAD);
        }
        let mut p = [0usize; 10];
        let mut next = |col: usize| -> Result<u64, &'static str> {
            if col == 1 {
                let v = *cols[1].get(p[1]).ok_or(BAD)?;
                p[1] += 1;
                return Ok(v as u64);
            }
            varint::get(cols[col], &mut p[col]).ok_or(BAD)
        };
        let mut rows = Vec::with_capacity(count);
        let mut ts = base_ts;
        let (mut t1, mut t2) = (0usize, cols[10].len());
        let terms_len = cols[10].len() + cols[11].len();
        for i in 0..count {
            ts = ts.wrapping_add(varint::unzigzag(next(0)?));
            let kind = EventKind::from_u8(next(1)? as u8).ok_or("unknown event kind")?;
            let node = next(2)? as DictId;
            let pid = next(3)? as DictId;
            let peer = next(4)? as DictId;
            let mfa = next(5)? as DictId;
            let id = first_id.wrapping_add(i as u64);
            let link = match next(6)? {
                0 => None,
                v => Some((id as i64).wrapping_sub(varint::unzigzag(v - 1)) as EventId),
            };
            let aux = next(7)?;
            let mut range =
                |col: usize, at: &mut usize| -> Result<Option<(u32, u32)>, &'static str> {
                    match next(col)? {
                        0 => Ok(None),
                        n => {
                            let len = (n - 1) as usize;
                            let start = *at;
                            *at = start.checked_add(len).ok_or(BAD)?;
                            if *at > terms_len {
                                return Err(BAD);
                            }
                            Ok(Some((start as u32, len as u32)))
                        }
                    }
                };
            let term = range(8, &mut t1)?;
            let term2 = range(9, &mut t2)?;
            rows.push(Row {
                ts,
                kind,
                node,
                pid,
                peer,
                mfa,
                link,
                aux,
                term,
                term2,
            });
        }
        if t1 > cols[10].len() {
            return Err(BAD);
        }
        let mut terms = Vec::with_capacity(terms_len);
        terms.extend_from_slice(cols[10]);
        terms.extend_from_slice(cols[11]);
        Ok(EventsBlock {
            first_id,
            rows,
            terms,
        })
    }

    pub fn first_id(&self) -> EventId {
        self.first_id
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`-th event of the block.
    pub fn get(&self, i: usize) -> Option<Event<'_>> {
        let r = self.rows.get(i)?;
        let slice = |range: Option<(u32, u32)>| {
            range.map(|(s, l)| &self.terms[s as usize..s as usize + l as usize])
        };
        Some(Event {
            id: self.first_id.wrapping_add(i as u64),
            ts: r.ts,
            kind: r.kind,
            node: r.node,
            pid: r.pid,
            peer: r.peer,
            mfa: r.mfa,
            link: r.link,
            aux: r.aux,
            term: slice(r.term),
            term2: slice(r.term2),
        })
    }

    /// All events in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Event<'_>> + '_ {
        (0..self.rows.len()).filter_map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_a_block() {
        let mut b = EventsBuilder::default();
        let args = [108u8, 0, 0, 0, 1, 97, 7, 106];
        let mut e = NewEvent::new(1_700_000_000_000_000_000, EventKind::Call, 1, 5);
        e.mfa = 3;
        e.term = Some(&args);
        b.push(100, &e);
        let mut r = NewEvent::new(1_700_000_000_000_000_900, EventKind::Return, 1, 5);
        r.link = Some(100);
        r.aux = 900;
        r.term = Some(&[97, 8]);
        r.term2 = Some(&[106]);
        b.push(101, &r);
        let (raw, summary, states) = b.finish();
        assert_eq!(summary.count, 2);
        assert!(states.is_empty());
        assert!(summary.may_involve(5));
        assert!(summary.has_kind(EventKind::Return));
        let framed = frame(KIND_EVENTS, 100, 2, &raw);
        let header = BlockHeader::decode(&framed).unwrap();
        let raw2 = unframe(&header, &framed[BLOCK_HEADER_LEN..]).unwrap();
        let block = EventsBlock::decode(100, &raw2).unwrap();
        let got: Vec<_> = block.iter().collect();
        assert_eq!(got[0].term, Some(&args[..]));
        assert_eq!(got[0].mfa, 3);
        assert_eq!(got[1].link, Some(100));
        assert_eq!(got[1].aux, 900);
        assert_eq!(got[1].term, Some(&[97u8, 8][..]));
        assert_eq!(got[1].term2, Some(&[106u8][..]));
        assert_eq!(got[1].ts - got[0].ts, 900);
    }

    #[test]
    fn corrupt_payload_is_detected() {
        let framed = frame(KIND_EVENTS, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut bad = framed.clone();
        *bad.last_mut().unwrap() ^= 0xff;
        let header = BlockHeader::decode(&bad).unwrap();
        assert_eq!(
            unframe(&header, &bad[BLOCK_HEADER_LEN..]),
            Err("block checksum mismatch")
        );
        assert!(EventsBlock::decode(0, &[0; 5]).is_err());
    }
}
