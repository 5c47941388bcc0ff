//! Timeline windows and lanes from small hand-made sessions.

use super::*;
use crate::testkit::{Rec, T0, US};
use elixirscope_store::NewEvent;

/// A supervisor (1) spawning two workers (2, 3) that exchange `n` messages,
/// one every 10 µs starting at 100 µs; worker 3 crashes at the end.
fn session(n: i64) -> (Session, tempfile::TempDir) {
    let mut r = Rec::new();
    let (sup, a, b) = (r.pid(1), r.pid(2), r.pid(3));
    for (t, child) in [(0, a), (1, b)] {
        let mut e = NewEvent::new(T0 + t * US, EventKind::Spawn, r.node, sup);
        e.peer = child;
        r.w.append(&e).unwrap();
    }
    for i in 0..n {
        let t = T0 + (100 + 10 * i) * US;
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let mut s = NewEvent::new(t, EventKind::Send, r.node, from);
        s.peer = to;
        let send = r.w.append(&s).unwrap();
        let mut rc = NewEvent::new(t + 3 * US, EventKind::Receive, r.node, to);
        rc.peer = from;
        rc.link = Some(send);
        r.w.append(&rc).unwrap();
    }
    let reason = elixirscope_term::encode_body(&elixirscope_term::Term::atom("boom"));
    let mut exit = NewEvent::new(T0 + (100 + 10 * n) * US, EventKind::Exit, r.node, b);
    exit.term = Some(&reason);
    r.w.append(&exit).unwrap();
    r.open()
}

fn window(from_us: i64, to_us: i64, max_marks: usize) -> TimelineQuery {
    TimelineQuery {
        from_ns: T0 + from_us * US,
        to_ns: T0 + to_us * US,
        buckets: 10,
        max_marks,
        lanes: None,
    }
}

#[test]
fn lanes_nest_children_under_their_supervisor() {
    let (s, _home) = session(4);
    let mut a = Activity::default();
    s.index_activity(&mut a);
    let lanes = s.lanes(&a);
    let depth: Vec<(String, u32)> = lanes.iter().map(|l| (l.pid.clone(), l.depth)).collect();
    assert_eq!(
        depth,
        vec![
            ("<0.1.0>".into(), 0),
            ("<0.2.0>".into(), 1),
            ("<0.3.0>".into(), 1)
        ]
    );
    assert!(lanes[2].crashed, "worker 3 exited with :boom");
    assert_eq!(lanes[1].events, 4, "2 sends and 2 receives");
    assert_eq!(a.events(), 2 + 8 + 1);
}

#[test]
fn a_narrow_window_gives_marks_and_paired_arrows() {
    let (s, _home) = session(4);
    let mut a = Activity::default();
    s.index_activity(&mut a);
    // 100..=125 µs: sends at 100, 110, 120 and receives at 103, 113, 123.
    let t = s.timeline(&a, &window(100, 125, 100));
    assert!(t.detail);
    assert_eq!(t.events, 6);
    assert_eq!(t.marks.len(), 6);
    assert_eq!(t.arrows.len(), 3);
    let first = &t.arrows[0];
    assert_eq!((first.from_ns - T0) / US, 100);
    assert_eq!((first.to_ns - T0) / US, 103);
    assert!(first.receive.is_some());
    assert_eq!(first.to_lane, t.marks[1].lane);
    // A send whose receive lies past the window is still paired.
    let t = s.timeline(&a, &window(128, 131, 100));
    assert_eq!(t.arrows.len(), 1);
    assert_eq!((t.arrows[0].to_ns - T0) / US, 133);
}

#[test]
fn a_wide_window_gives_counts_per_bucket_with_the_highest_class() {
    let (s, _home) = session(100);
    let mut a = Activity::default();
    s.index_activity(&mut a);
    // 0..=1100 µs in 10 buckets of 110 µs; everything is in it.
    let t = s.timeline(&a, &window(0, 1100, 50));
    assert!(!t.detail);
    assert_eq!(t.events, 2 + 200 + 1);
    let total: u32 = t
        .density
        .iter()
        .flat_map(|d| d.cells.chunks(3).map(|c| c[1]))
        .sum();
    assert_eq!(total as u64, t.events);
    let crashed = s.resolve_all("<0.3.0>").unwrap()[0];
    let last = t.density.iter().find(|d| d.lane == crashed).unwrap();
    let cell = last.cells.chunks(3).last().unwrap();
    assert_eq!(cell[0], 9, "the exit at 1100 µs is in the last bucket");
    assert_eq!(cell[2], class::CRASH as u32);
    // Only the lanes asked for.
    let mut q = window(0, 1100, 50);
    q.lanes = Some(vec![crashed]);
    let t = s.timeline(&a, &q);
    assert_eq!(t.density.len(), 1);
    assert_eq!(t.events, 100 + 1);
}

#[test]
fn a_growing_session_is_indexed_incrementally() {
    let mut r = Rec::new();
    for i in 0..3 {
        r.call(i * 10, 1, "f");
    }
    r.w.flush().unwrap();
    let s = Session::open_dir(&r.dir).unwrap();
    let mut a = Activity::default();
    s.index_activity(&mut a);
    assert_eq!(a.events(), 3);
    for i in 3..5 {
        r.call(i * 10, 1, "f");
    }
    let (s, _home) = r.open();
    s.index_activity(&mut a);
    assert_eq!(a.events(), 5);
}
