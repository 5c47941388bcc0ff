//! The call tree as text: one line per call path, top-down, indented by depth,
//! callees largest first, paths below a share of the total time left out.

use elixirscope_query::flame::FlameGraph;

/// Deeper paths are not indented further (their depth is printed instead).
const MAX_INDENT: u32 = 40;

/// Parses `--min-percent`: a number from 0 to 100.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "'{text}' is not a percentage: use a number from 0 to 100"
        )),
    }
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The tree, leaving out paths under `min_percent` of the total time (and what they call).
pub fn text(g: &FlameGraph, min_percent: f64) -> String {
    let who = if g.pids.is_empty() {
        "all processes".to_owned()
    } else {
        g.pids.join(", ")
    };
    let mut out = format!(
        "calls of {} in {}, {} to {}: {} calls, {} ms\n",
        who,
        g.session,
        g.from,
        g.to,
        g.calls,
        ms(g.total_ns)
    );
    if g.nodes.is_empty() {
        out.push_str(
            "no recorded calls in this range (record calls with --trace, e.g. --trace 'MyApp._/_')\n",
        );
        return notes(g, out);
    }
    out.push_str(&format!(
        "{:>10} {:>12} {:>12} {:>7}  function\n",
        "calls", "total ms", "self ms", "total%"
    ));
    let share = |ns: u64| {
        if g.total_ns == 0 {
            0.0
        } else {
            ns as f64 * 100.0 / g.total_ns as f64
        }
    };
    // Nodes come parent first, so a parent's verdict is known before its children's.
    let mut shown = vec![false; g.nodes.len()];
    let mut hidden = 0usize;
    for (i, n) in g.nodes.iter().enumerate() {
        let parent_shown = n.parent.is_none_or(|p| shown[p as usize]);
        if !parent_shown {
            continue;
        }
        if g.total_ns > 0 && share(n.total_ns) < min_percent {
            hidden += 1;
            continue;
        }
        shown[i] = true;
        let indent = "  ".repeat(n.depth.min(MAX_INDENT) as usize);
        let deep = if n.depth > MAX_INDENT {
            format!("[depth {}] ", n.depth)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:>10} {:>12} {:>12} {:>6.1}%  {indent}{deep}{}\n",
            n.calls,
            ms(n.total_ns),
            ms(n.self_ns),
            share(n.total_ns),
            n.mfa
        ));
    }
    if hidden > 0 {
        out.push_str(&format!(
            "… {hidden} call path{} under {min_percent}% of the total time hidden (--min-percent 0 shows all)\n",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    notes(g, out)
}

fn notes(g: &FlameGraph, mut out: String) -> String {
    if g.open_calls > 0 {
        out.push_str(&format!(
            "{} call{} still running at the end, timed to the end of the range\n",
            g.open_calls,
            if g.open_calls == 1 { " was" } else { "s were" },
        ));
    }
    if g.unmatched_returns > 0 {
        out.push_str(&format!(
            "{} return{} or exception{} without a recorded call (made before capture started, or left out by sampling) not counted\n",
            g.unmatched_returns,
            if g.unmatched_returns == 1 { "" } else { "s" },
            if g.unmatched_returns == 1 { "" } else { "s" },
        ));
    }
    if g.sample > 1 {
        out.push_str(&format!(
            "sampled capture: the calls of 1 process in {} were recorded\n",
            g.sample
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use elixirscope_query::flame::FlameNode;

    fn node(mfa: &str, parent: Option<u32>, depth: u32, calls: u64, total: u64) -> FlameNode {
        FlameNode {
            mfa: mfa.into(),
            mfa_id: 1,
            parent,
            depth,
            calls,
            total_ns: total,
            self_ns: 0,
            children: Vec::new(),
        }
    }

    #[test]
    fn small_paths_and_their_callees_are_hidden() {
        let g = FlameGraph {
            session: "s".into(),
            pids: Vec::new(),
            from: "+0.000000s".into(),
            to: "+1.000000s".into(),
            total_ns: 1_000_000,
            calls: 4,
            unmatched_returns: 2,
            open_calls: 1,
            sample: 1,
            roots: vec![0],
            nodes: vec![
                node("A.a/0", None, 0, 1, 1_000_000),
                node("A.big/0", Some(0), 1, 1, 990_000),
                node("A.small/0", Some(0), 1, 1, 4_000),
                node("A.under_small/0", Some(2), 2, 1, 4_000),
            ],
        };
        let line = |t: &str, end: &str| t.lines().any(|l| l.ends_with(end));
        let t = text(&g, 0.5);
        assert!(line(&t, " 1.000        0.000  100.0%  A.a/0"), "{t}");
        assert!(line(&t, " 99.0%    A.big/0"), "{t}");
        assert!(!t.contains("small"), "{t}");
        assert!(
            t.contains("… 1 call path under 0.5% of the total time hidden"),
            "{t}"
        );
        assert!(t.contains("1 call was still running"), "{t}");
        assert!(
            t.contains("2 returns or exceptions without a recorded call"),
            "{t}"
        );
        let all = text(&g, 0.0);
        assert!(line(&all, " 0.4%      A.under_small/0"), "{all}");
        assert!(!all.contains("hidden"), "{all}");
    }

    #[test]
    fn percentages_are_checked() {
        assert_eq!(parse_percent("2.5"), Ok(2.5));
        assert_eq!(parse_percent("1%"), Ok(1.0));
        for bad in ["-1", "101", "NaN", "lots"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }
}
