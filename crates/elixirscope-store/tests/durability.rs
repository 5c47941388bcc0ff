//! The store keeps what it wrote, and damage to one part leaves the rest readable.

use elixirscope_store::session::{create_session, SessionMeta, SessionStatus};
use elixirscope_store::{EventKind, MfaEntry, NewEvent, PidEntry, SessionReader, SessionWriter};
use std::path::PathBuf;

fn write_session(home: &std::path::Path, events: u64) -> PathBuf {
    let mut meta = SessionMeta::new("s1", "record", "test@host", serde_json::json!({}));
    let dir = create_session(home, &meta).unwrap();
    let mut w = SessionWriter::create(&dir).unwrap();
    let node = w.dict_mut().intern_atom("test@host");
    let m = w.dict_mut().intern_atom("Elixir.Counter");
    let f = w.dict_mut().intern_atom("bump");
    let mfa = w.dict_mut().intern_mfa(MfaEntry {
        module: m,
        function: f,
        arity: 1,
    });
    for i in 0..events {
        let pid = w.dict_mut().intern_pid(PidEntry {
            node,
            number: 100 + (i % 7) as u32,
            serial: 0,
            creation: 1,
        });
        let arg = [108u8, 0, 0, 0, 1, 97, (i % 200) as u8, 106];
        let mut e = NewEvent::new(1_000_000 + i as i64 * 1000, EventKind::Call, node, pid);
        e.mfa = mfa;
        e.term = Some(&arg);
        w.append(&e).unwrap();
        if i % 10_000 == 9_999 {
            w.flush().unwrap();
        }
    }
    w.sync().unwrap();
    drop(w);
    meta.status = SessionStatus::Complete;
    elixirscope_store::session::write_meta(&dir, &meta).unwrap();
    dir
}

fn all_ids(r: &SessionReader) -> Vec<u64> {
    (0..r.blocks().len())
        .flat_map(|i| r.block(i).iter().map(|e| e.id).collect::<Vec<_>>())
        .collect()
}

#[test]
fn events_survive_reopen_with_their_fields() {
    let home = tempfile::tempdir().unwrap();
    let dir = write_session(home.path(), 50_000);
    let r = SessionReader::open(&dir).unwrap();
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    assert_eq!(r.total_events(), 50_000);
    let ids = all_ids(&r);
    assert_eq!(ids, (0..50_000).collect::<Vec<_>>());
    r.with_event(12_345, |e| {
        assert_eq!(e.kind, EventKind::Call);
        assert_eq!(e.ts, 1_000_000 + 12_345 * 1000);
        assert_eq!(e.term.unwrap()[6], (12_345 % 200) as u8);
        let p = r.dict().pid(e.pid).unwrap();
        assert_eq!(p.number, 100 + (12_345 % 7) as u32);
        let mfa = r.dict().mfa(e.mfa).unwrap();
        assert_eq!(r.dict().atom(mfa.module), Some("Elixir.Counter"));
    })
    .unwrap();
    let bytes = std::fs::metadata(dir.join("events-0000.seg"))
        .unwrap()
        .len();
    assert!(bytes < 50_000 * 16, "{bytes} bytes for 50k call events");
}

#[test]
fn truncated_segment_keeps_everything_before_the_cut() {
    let home = tempfile::tempdir().unwrap();
    let dir = write_session(home.path(), 30_000);
    let seg = dir.join("events-0000.seg");
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 100).unwrap();
    let r = SessionReader::open(&dir).unwrap();
    let problems = r.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("truncated"), "{problems:?}");
    let ids = all_ids(&r);
    assert!(ids.len() >= 20_000 && ids.len() < 30_000, "{}", ids.len());
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_middle_block_and_a_lost_index_do_not_hide_the_rest() {
    let home = tempfile::tempdir().unwrap();
    let dir = write_session(home.path(), 30_000);
    let r = SessionReader::open(&dir).unwrap();
    let victim = r.blocks()[1];
    drop(r);
    let seg = dir.join("events-0000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[(victim.offset + 40) as usize] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::remove_file(dir.join("events.idx")).unwrap();
    let r = SessionReader::open(&dir).unwrap();
    let ids = all_ids(&r);
    let lost = victim.count as usize;
    assert_eq!(ids.len(), 30_000 - lost);
    assert!(ids.contains(&29_999));
    let problems = r.problems().join("\n");
    assert!(problems.contains("index missing"), "{problems}");
    assert!(problems.contains("unreadable"), "{problems}");
}

#[test]
fn the_state_index_finds_state_events_and_is_rebuilt_when_lost() {
    let home = tempfile::tempdir().unwrap();
    let meta = SessionMeta::new("st", "record", "test@host", serde_json::json!({}));
    let dir = create_session(home.path(), &meta).unwrap();
    let mut w = SessionWriter::create(&dir).unwrap();
    let node = w.dict_mut().intern_atom("test@host");
    let a = w.dict_mut().intern_pid(PidEntry {
        node,
        number: 1,
        serial: 0,
        creation: 1,
    });
    let b = w.dict_mut().intern_pid(PidEntry {
        node,
        number: 2,
        serial: 0,
        creation: 1,
    });
    let mut expected = Vec::new();
    for i in 0..20_000i64 {
        let kind = if i % 100 == 0 {
            EventKind::State
        } else {
            EventKind::Send
        };
        let pid = if i % 200 == 0 { a } else { b };
        let id = w.append(&NewEvent::new(i * 10, kind, node, pid)).unwrap();
        if kind == EventKind::State && pid == a {
            expected.push((i * 10, id));
        }
    }
    w.sync().unwrap();
    drop(w);
    let r = SessionReader::open(&dir).unwrap();
    assert_eq!(r.state_index().of(a), expected.as_slice());
    assert_eq!(r.state_index().of(b).len(), 100);
    drop(r);
    std::fs::remove_file(dir.join("states.idx")).unwrap();
    let r = SessionReader::open(&dir).unwrap();
    assert_eq!(r.state_index().of(a), expected.as_slice());
}
