//! Pids, ports, references and funs (`#PID<0.1.0>`, `#Port<0.4>`,
//! `#Reference<0.1.2.3>`, `&Mod.fun/1`, `#Function<...>`), including the
//! numbering of nodes other than the local one.

use std::fmt::Write as _;

use super::atoms::{atom_literal, atom_remote_call};
use super::printer::Printer;
use crate::{Fun, Pid, Port, Reference};

impl Printer<'_> {
    fn node_index(&mut self, node: &str) -> usize {
        match &self.opts.local_node {
            None => return 0,
            Some(local) if local == node => return 0,
            Some(_) => {}
        }
        if let Some(i) = self.opts.other_nodes.iter().position(|n| n == node) {
            return i + 1;
        }
        let base = self.opts.other_nodes.len();
        if let Some(i) = self.extra_nodes.iter().position(|n| n == node) {
            return base + i + 1;
        }
        self.extra_nodes.push(node.to_string());
        base + self.extra_nodes.len()
    }

    pub(super) fn pid(&mut self, pid: &Pid) {
        let n = self.node_index(&pid.node);
        let _ = write!(self.out, "#PID<{n}.{}.{}>", pid.id, pid.serial);
    }

    pub(super) fn port(&mut self, port: &Port) {
        let n = self.node_index(&port.node);
        let _ = write!(self.out, "#Port<{n}.{}>", port.id);
    }

    pub(super) fn reference(&mut self, r: &Reference) {
        // `erlang:ref_to_list/1` prints the words most significant first,
        // which is the reverse of their order in the external format.
        let n = self.node_index(&r.node);
        let _ = write!(self.out, "#Reference<{n}");
        for id in r.ids.iter().rev() {
            let _ = write!(self.out, ".{id}");
        }
        self.out.push('>');
    }

    pub(super) fn fun(&mut self, f: &Fun) {
        match f {
            Fun::External {
                module,
                function,
                arity,
            } => {
                self.out.push('&');
                atom_literal(module, &mut self.out);
                self.out.push('.');
                atom_remote_call(function, &mut self.out);
                let _ = write!(self.out, "/{arity}");
            }
            Fun::Local {
                module,
                arity,
                index,
                old_uniq,
                ..
            } => {
                let _ = write!(self.out, "#Function<{index}.{old_uniq}/{arity} in ");
                atom_literal(module, &mut self.out);
                self.out.push('>');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inspect::{inspect, InspectOptions};
    use crate::{Pid, Port, Reference, Term};

    fn show(t: &Term) -> String {
        inspect(t, &InspectOptions::default())
    }

    fn pid(node: &str, id: u32) -> Term {
        Term::Pid(Pid {
            node: node.into(),
            id,
            serial: 0,
            creation: 1,
        })
    }

    #[test]
    fn remote_nodes_are_numbered() {
        let opts = InspectOptions {
            local_node: Some("a@h".into()),
            other_nodes: vec!["b@h".into()],
            ..InspectOptions::default()
        };
        let t = Term::Tuple(vec![
            pid("a@h", 1),
            pid("b@h", 2),
            pid("z@h", 3),
            Term::Port(Port {
                node: "y@h".into(),
                id: 4,
                creation: 1,
            }),
            Term::Reference(Reference {
                node: "z@h".into(),
                creation: 1,
                ids: vec![3, 2, 1],
            }),
        ]);
        assert_eq!(
            inspect(&t, &opts),
            "{#PID<0.1.0>, #PID<1.2.0>, #PID<2.3.0>, #Port<3.4>, #Reference<2.1.2.3>}"
        );
        // Without a local node everything is local.
        assert_eq!(show(&pid("z@h", 9)), "#PID<0.9.0>");
    }
}
