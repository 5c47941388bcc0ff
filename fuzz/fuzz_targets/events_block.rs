//! Any bytes as a stored block (header + payload) and as a decompressed events
//! payload: damaged sessions must be reported, never crash a reader.
#![no_main]
use elixirscope_store::block::{self, BlockHeader, EventsBlock, BLOCK_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BlockHeader::decode(data) {
        let _ = block::unframe(&h, &data[BLOCK_HEADER_LEN.min(data.len())..]);
    }
    if let Ok(b) = EventsBlock::decode(0, data) {
        for e in b.iter() {
            let _ = (e.term, e.term2, e.link);
        }
    }
    let _ = block::BlockSummary::decode(data);
});
