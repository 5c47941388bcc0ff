//! The ElixirScope NIF tracer: an `erl_tracer` module implemented natively.
//!
//! Where the process tracer receives every trace event as a message, copies it
//! and handles it on a scheduler, this tracer encodes each event right in the
//! traced process's callback into a ring owned by the scheduler thread, and a
//! native thread drains the rings into batches for the agent's tracer process.
//! The batches hold exactly the trace messages the process tracer would have
//! seen (redacted and sampled the same way), so everything downstream — the
//! agent's budgets and shipping, the collector, the store — is shared.
//!
//! - [`callbacks`] — `enabled/3` and `trace/5`, the hot path.
//! - [`encode`], [`etf`] and [`cache`] — terms to external term format within
//!   the capture's [`limits`], with per-thread caches.
//! - [`redact`] — the redaction rules, applied while encoding.
//! - [`state`] — gen_server states written once per change; per-process
//!   degradation and cost for the agent's tracer-cost governor.
//! - [`ring`] — per-thread single-producer rings.
//! - [`drain`] — the native thread that empties them.
//! - [`capture`] — the running capture and each thread's view of it.
//! - [`control`] — start, flush, stop and statistics for the agent.
//!
//! The Erlang side is `elixirscope_nif_tracer.erl` in the agent.

pub mod cache;
pub mod callbacks;
pub mod capture;
pub mod clock;
pub mod control;
pub mod drain;
pub mod encode;
pub mod etf;
pub mod limits;
pub mod redact;
pub mod ring;
pub mod state;

use capture::{Atoms, ATOMS};
use rustler::{Env, LocalPid, Term};

/// `enabled/3` and `trace/5` are registered by hand rather than through
/// `#[rustler::nif]`, whose wrapper allocates a vector of arguments on every
/// call: these run for every trace event, so they take the VM's arguments as
/// they come and catch any panic themselves.
mod raw {
    use super::callbacks;
    use rustler::codegen_runtime::{c_char, c_int, NIF_ENV, NIF_TERM};
    use rustler::sys::enif_make_atom_len;

    fn fallback_atom(env: NIF_ENV, name: &str) -> NIF_TERM {
        // SAFETY: env is the callback's environment; the name is ASCII.
        unsafe { enif_make_atom_len(env, name.as_ptr() as *const c_char, name.len()) }
    }

    /// # Safety
    /// Called by the VM with its environment and `argc` = 3 valid terms.
    pub unsafe extern "C" fn enabled(env: NIF_ENV, argc: c_int, argv: *const NIF_TERM) -> NIF_TERM {
        if argc != 3 || argv.is_null() {
            return fallback_atom(env, "discard");
        }
        // SAFETY: the VM passes argc valid terms at argv.
        let args = unsafe { std::slice::from_raw_parts(argv, 3) };
        match std::panic::catch_unwind(|| callbacks::enabled(args[0], args[2])) {
            Ok(decision) if decision != 0 => decision,
            _ => fallback_atom(env, "discard"),
        }
    }

    /// # Safety
    /// Called by the VM with its environment and `argc` = 5 valid terms.
    pub unsafe extern "C" fn trace(env: NIF_ENV, argc: c_int, argv: *const NIF_TERM) -> NIF_TERM {
        if argc == 5 && !argv.is_null() {
            // SAFETY: the VM passes argc valid terms at argv.
            let args = unsafe { std::slice::from_raw_parts(argv, 5) };
            let _ = std::panic::catch_unwind(|| {
                callbacks::trace(env, args[0], args[2], args[3], args[4])
            });
        }
        match super::ATOMS.get() {
            Some(a) => a.ok,
            None => fallback_atom(env, "ok"),
        }
    }
}

rustler::codegen_runtime::inventory::submit!(rustler::Nif {
    name: c"enabled".as_ptr(),
    arity: 3,
    flags: 0,
    raw_func: raw::enabled,
});

rustler::codegen_runtime::inventory::submit!(rustler::Nif {
    name: c"trace".as_ptr(),
    arity: 5,
    flags: 0,
    raw_func: raw::trace,
});

#[rustler::nif]
fn start<'a>(env: Env<'a>, tracer: LocalPid, opts: Term<'a>) -> Term<'a> {
    control::start(env, tracer, opts)
}

#[rustler::nif(schedule = "DirtyIo")]
fn stop(env: Env<'_>) -> Term<'_> {
    control::stop(env)
}

#[rustler::nif]
fn flush(env: Env<'_>, token: u64) -> Term<'_> {
    control::flush(env, token)
}

#[rustler::nif]
fn batch_done(env: Env<'_>) -> Term<'_> {
    control::batch_done(env)
}

#[rustler::nif]
fn deactivate(env: Env<'_>) -> Term<'_> {
    control::deactivate(env)
}

#[rustler::nif]
fn own(env: Env<'_>, pid: LocalPid) -> Term<'_> {
    control::own_pid(env, pid)
}

#[rustler::nif]
fn reserve(env: Env<'_>, n: u64) -> Term<'_> {
    control::reserve(env, n)
}

#[rustler::nif]
fn state_modules<'a>(env: Env<'a>, modules: Vec<Term<'a>>) -> Term<'a> {
    control::state_modules(env, modules)
}

#[rustler::nif]
fn stats(env: Env<'_>) -> Term<'_> {
    control::stats(env)
}

#[rustler::nif]
fn cost(env: Env<'_>, top: usize) -> Term<'_> {
    control::cost(env, top)
}

#[rustler::nif]
fn degrade(env: Env<'_>, pid: LocalPid, level: u8) -> Term<'_> {
    control::degrade(env, pid, level)
}

fn load(env: Env, _info: Term) -> bool {
    let atom = |name: &str| {
        rustler::Atom::from_str(env, name)
            .map(|a| a.to_term(env).as_c_arg())
            .unwrap_or(0)
    };
    let atoms = Atoms {
        trace_ts: atom("trace_ts"),
        trace: atom("trace"),
        discard: atom("discard"),
        remove: atom("remove"),
        trace_status: atom("trace_status"),
        send: atom("send"),
        send_to_non_existing_process: atom("send_to_non_existing_process"),
        receive: atom("receive"),
        call: atom("call"),
        return_from: atom("return_from"),
        exception_from: atom("exception_from"),
        spawn: atom("spawn"),
        spawned: atom("spawned"),
        exit: atom("exit"),
        unregister: atom("unregister"),
        extra: atom("extra"),
        struct_key: atom("__struct__"),
        boot_name: atom("elixirscope_boot"),
        ok: atom("ok"),
        undefined: atom("undefined"),
        gen_server: state::GenServerAtoms {
            init: atom("init"),
            handle_call: atom("handle_call"),
            handle_cast: atom("handle_cast"),
            handle_info: atom("handle_info"),
            handle_continue: atom("handle_continue"),
            code_change: atom("code_change"),
            terminate: atom("terminate"),
            reply: atom("reply"),
            noreply: atom("noreply"),
            ok: atom("ok"),
            stop: atom("stop"),
        },
    };
    // Atom words are the same for the node's life: a reload finds them equal.
    let _ = ATOMS.set(atoms);
    pin_library();
    true
}

/// Keeps this library mapped after the module is purged: a drain thread that
/// was not stopped, or a thread-local destructor, must never run unmapped code.
fn pin_library() {
    // SAFETY: dladdr only reads the address of one of our own functions; the
    // dlopen handle is deliberately never closed (RTLD_NODELETE).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(pin_library as *const libc::c_void, &mut info) != 0
            && !info.dli_fname.is_null()
        {
            libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NODELETE);
        }
    }
}

rustler::init!("elixirscope_nif_tracer", load = load);
