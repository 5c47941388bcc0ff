//! Any bytes given to the term decoder, the zero-copy view and the printer:
//! an error or a term, never a panic, a hang or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = elixirscope_term::decode(data) {
        let _ = elixirscope_term::inspect(&t, &Default::default());
        let _ = elixirscope_term::diff::diff(&t, &t);
        let again = elixirscope_term::encode(&t);
        assert_eq!(elixirscope_term::decode(&again).as_ref().ok(), Some(&t));
    }
    if let Ok(v) = elixirscope_term::view::View::from_external(data) {
        let _ = v.to_term();
        if let Some(items) = v.tuple() {
            for i in items {
                let _ = (i.atom(), i.pid(), i.int(), i.raw().len());
            }
        }
    }
});
