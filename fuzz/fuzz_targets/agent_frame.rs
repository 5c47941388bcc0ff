//! Any frame payload an agent (or anyone reaching the ingest port) could send.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(elixirscope_transport::AgentFrame::Batch { events, .. }) =
        elixirscope_transport::protocol::decode_agent_frame(data)
    {
        for e in events {
            let _ = e.to_term();
        }
    }
    let mut buf = Vec::new();
    let _ = elixirscope_transport::frame::read_frame(&mut &data[..], &mut buf);
});
