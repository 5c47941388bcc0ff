//! Call trees from small hand-made sessions whose times and counts are known.

use super::*;
use crate::testkit::{Rec, T0, US};

/// a() over [t, t+100) calling b() 3 times, each calling c() twice:
/// a self 40, b 3 × 20 with self 10 each, c 6 × 5.
fn abc(r: &mut Rec, t: i64, pid: u32) {
    let a = r.call(t, pid, "a");
    for i in 0..3 {
        let bt = t + 10 + 30 * i;
        let b = r.call(bt, pid, "b");
        r.leaf(bt + 2, 5, pid, "c");
        r.leaf(bt + 10, 5, pid, "c");
        r.ret(bt + 20, pid, "b", b);
    }
    r.ret(t + 100, pid, "a", a);
}

/// `(path, calls, total µs, self µs)` of every node, in the graph's order.
fn rows(g: &FlameGraph) -> Vec<(String, u64, u64, u64)> {
    (0..g.nodes.len() as u32)
        .map(|i| {
            let n = &g.nodes[i as usize];
            (
                g.path(i).join(";"),
                n.calls,
                n.total_ns / 1_000,
                n.self_ns / 1_000,
            )
        })
        .collect()
}

fn flame(s: &Session, q: FlameQuery) -> FlameGraph {
    s.flame(&q).unwrap()
}

fn row(path: &str, calls: u64, total: u64, own: u64) -> (String, u64, u64, u64) {
    (path.to_owned(), calls, total, own)
}

#[test]
fn nested_calls_add_up_per_path_across_processes() {
    let mut r = Rec::new();
    abc(&mut r, 0, 1);
    abc(&mut r, 50, 2);
    let (s, _home) = r.open();
    let g = flame(&s, FlameQuery::default());
    assert_eq!(
        rows(&g),
        vec![
            row("T.a/0", 2, 200, 80),
            row("T.a/0;T.b/0", 6, 120, 60),
            row("T.a/0;T.b/0;T.c/0", 12, 60, 60),
        ]
    );
    assert_eq!(
        (g.calls, g.total_ns, g.roots.clone()),
        (20, 200_000, vec![0])
    );
    assert_eq!((g.unmatched_returns, g.open_calls, g.sample), (0, 0, 1));
    assert_eq!(g.nodes[0].children, vec![1]);
    assert_eq!((g.nodes[2].parent, g.nodes[2].depth), (Some(1), 2));
    assert_eq!(
        g.folded(),
        "T.a/0 80000\nT.a/0;T.b/0 60000\nT.a/0;T.b/0;T.c/0 60000\n"
    );
}

#[test]
fn siblings_are_ordered_by_total_time_and_recursion_nests() {
    let mut r = Rec::new();
    let main = r.call(0, 1, "main");
    r.leaf(1, 5, 1, "small");
    // f() → f() → f(): one node per depth.
    let f1 = r.call(10, 1, "f");
    let f2 = r.call(12, 1, "f");
    r.leaf(14, 2, 1, "f");
    r.ret(20, 1, "f", f2);
    r.ret(30, 1, "f", f1);
    r.leaf(31, 9, 1, "middle");
    r.ret(50, 1, "main", main);
    let (s, _home) = r.open();
    let g = flame(&s, FlameQuery::default());
    assert_eq!(
        rows(&g),
        vec![
            row("T.main/0", 1, 50, 16),
            row("T.main/0;T.f/0", 1, 20, 12),
            row("T.main/0;T.f/0;T.f/0", 1, 8, 6),
            row("T.main/0;T.f/0;T.f/0;T.f/0", 1, 2, 2),
            row("T.main/0;T.middle/0", 1, 9, 9),
            row("T.main/0;T.small/0", 1, 5, 5),
        ]
    );
    assert_eq!(g.nodes[0].children, vec![1, 4, 5]);
}

#[test]
fn exceptions_unwind_every_frame_they_cross() {
    let mut r = Rec::new();
    // a → b → c; c raises through b, a rescues and returns.
    let a = r.call(0, 1, "a");
    let b = r.call(10, 1, "b");
    let c = r.call(20, 1, "c");
    r.add(30, EventKind::Exception, 1, "c", Some(c));
    r.add(32, EventKind::Exception, 1, "b", Some(b));
    r.ret(40, 1, "a", a);
    // Only the outer frame reports: d's exception also closes the e() inside it.
    let d = r.call(100, 1, "d");
    r.call(110, 1, "e");
    r.add(130, EventKind::Exception, 1, "d", Some(d));
    let (s, _home) = r.open();
    let g = flame(&s, FlameQuery::default());
    assert_eq!(
        rows(&g),
        vec![
            row("T.a/0", 1, 40, 18),
            row("T.a/0;T.b/0", 1, 22, 12),
            row("T.a/0;T.b/0;T.c/0", 1, 10, 10),
            row("T.d/0", 1, 30, 10),
            row("T.d/0;T.e/0", 1, 20, 20),
        ]
    );
    assert_eq!((g.unmatched_returns, g.open_calls), (0, 0));
}

#[test]
fn returns_without_a_recorded_call_are_counted_not_guessed() {
    // A sampled capture: a left-out process's exceptions are kept, its calls are not.
    let mut r = Rec::with_capture(serde_json::json!({ "sample": 10 }));
    r.add(0, EventKind::Return, 1, "before_capture", None);
    r.leaf(5, 10, 1, "a");
    r.add(20, EventKind::Exception, 2, "sampled_out", None);
    // A link to a call that is not on the stack (e.g. in a damaged block).
    r.add(25, EventKind::Return, 1, "a", Some(1_000));
    let (s, _home) = r.open();
    let g = flame(&s, FlameQuery::default());
    assert_eq!(rows(&g), vec![row("T.a/0", 1, 10, 10)]);
    assert_eq!((g.unmatched_returns, g.sample), (3, 10));
}

#[test]
fn open_calls_run_to_their_exit_or_the_end_of_the_range() {
    let mut r = Rec::new();
    r.call(0, 1, "server_loop");
    r.leaf(10, 10, 1, "handle");
    r.call(0, 2, "doomed");
    r.add(30, EventKind::Exit, 2, "", None);
    r.leaf(90, 10, 3, "last");
    let (s, _home) = r.open();
    let g = flame(&s, FlameQuery::default());
    assert_eq!(
        rows(&g),
        vec![
            row("T.server_loop/0", 1, 100, 90),
            row("T.server_loop/0;T.handle/0", 1, 10, 10),
            row("T.doomed/0", 1, 30, 30),
            row("T.last/0", 1, 10, 10),
        ]
    );
    assert_eq!(g.open_calls, 1);
    // An earlier end of range cuts the open call there.
    let to = Some(Cursor {
        ts: T0 + 50 * US,
        id: None,
    });
    let g = flame(
        &s,
        FlameQuery {
            to,
            ..Default::default()
        },
    );
    assert_eq!(g.nodes[0].mfa, "T.server_loop/0");
    assert_eq!((g.nodes[0].total_ns, g.open_calls), (50_000, 1));
    assert_eq!(g.to, "+0.000050s");
}

#[test]
fn pid_filter_keeps_one_process() {
    let mut r = Rec::new();
    abc(&mut r, 0, 1);
    r.leaf(0, 70, 2, "other");
    let p1 = r.pid(1);
    let (s, _home) = r.open();
    let all = flame(&s, FlameQuery::default());
    assert_eq!(all.nodes.len(), 4);
    assert_eq!(all.nodes[0].mfa, "T.a/0");
    let g = flame(
        &s,
        FlameQuery {
            pids: vec![p1],
            ..Default::default()
        },
    );
    assert_eq!(
        rows(&g),
        vec![
            row("T.a/0", 1, 100, 40),
            row("T.a/0;T.b/0", 3, 60, 30),
            row("T.a/0;T.b/0;T.c/0", 6, 30, 30),
        ]
    );
    assert_eq!(g.pids, vec![s.pid_text(p1)]);
}

#[test]
fn time_range_counts_only_what_happened_inside_it() {
    let mut r = Rec::new();
    abc(&mut r, 0, 1);
    let (s, _home) = r.open();
    let at = |t: i64| {
        Some(Cursor {
            ts: T0 + t * US,
            id: None,
        })
    };
    // [35, 65): a (called before) for 30 µs; the second b (40..60) and its c's.
    let g = flame(
        &s,
        FlameQuery {
            from: at(35),
            to: at(65),
            ..Default::default()
        },
    );
    assert_eq!(
        rows(&g),
        vec![
            row("T.a/0", 0, 30, 10),
            row("T.a/0;T.b/0", 1, 20, 10),
            row("T.a/0;T.b/0;T.c/0", 2, 10, 10),
        ]
    );
    assert_eq!(
        (g.from.as_str(), g.to.as_str()),
        ("+0.000035s", "+0.000065s")
    );
    // [15, 45): the first b from 15 (its c's: 2 + 5 µs, one call made inside), the
    // second b from 40 to 45 (its first c: 3 µs).
    let g = flame(
        &s,
        FlameQuery {
            from: at(15),
            to: at(45),
            ..Default::default()
        },
    );
    assert_eq!(
        rows(&g),
        vec![
            row("T.a/0", 0, 30, 10),
            row("T.a/0;T.b/0", 1, 20, 10),
            row("T.a/0;T.b/0;T.c/0", 2, 10, 10),
        ]
    );
    // Moments given as event ids: from the second b's call (event 7) on.
    let from = s.parse_time("7").unwrap();
    let g = flame(
        &s,
        FlameQuery {
            from: Some(from),
            ..Default::default()
        },
    );
    assert_eq!(g.nodes[1].calls, 2);
    assert_eq!(g.nodes[1].total_ns, 40_000);
    // A range with nothing in it, and one that ends before it starts.
    let g = flame(
        &s,
        FlameQuery {
            from: at(200),
            ..Default::default()
        },
    );
    assert!(g.nodes.is_empty() && g.folded().is_empty());
    let err = s
        .flame(&FlameQuery {
            from: at(60),
            to: at(40),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, QueryError::EmptyRange { .. }), "{err}");
}

#[test]
fn many_blocks_replay_in_order_across_threads() {
    let mut r = Rec::new();
    for i in 0..2_000i64 {
        let p = (i % 7) as u32;
        let a = r.call(i * 100, p, "a");
        r.leaf(i * 100 + 10, 30, p, "b");
        r.ret(i * 100 + 50, p, "a", a);
        if i % 10 == 0 {
            r.w.flush().unwrap();
        }
    }
    let (s, _home) = r.open();
    assert!(s.reader().blocks().len() >= 100);
    let g = flame(&s, FlameQuery::default());
    assert_eq!(
        rows(&g),
        vec![
            row("T.a/0", 2_000, 100_000, 40_000),
            row("T.a/0;T.b/0", 2_000, 60_000, 60_000),
        ]
    );
}
