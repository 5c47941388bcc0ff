//! The `elixirscope` command: record BEAM nodes and travel through what they did.
//!
//! This file owns the command-line surface (clap definitions) and error
//! reporting; recording lives in [`record`], capture options in [`capture_opts`],
//! and the query commands in [`queries`] (the call tree's text in [`flame_text`]).

mod capture_opts;
mod export;
mod flame_text;
mod queries;
mod record;
mod serve;
mod summary;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Debugging and observability for Elixir and Erlang systems: attach to a live
/// BEAM node (or start a program), record processes, messages, calls and
/// GenServer state into a durable session, then travel through it.
#[derive(Parser)]
#[command(name = "elixirscope", version, max_term_width = 100)]
struct Cli {
    /// Where sessions are kept [default: $XDG_DATA_HOME/elixirscope or ~/.local/share/elixirscope]
    #[arg(
        long,
        global = true,
        env = "ELIXIRSCOPE_HOME",
        hide_env_values = true,
        value_name = "DIR"
    )]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a program with distribution enabled and record it from its first second to its exit
    #[command(
        after_help = "Examples:\n  elixirscope run --state Demo.Counter -- mix run demo.exs\n  elixirscope run --trace 'lists:reverse/1' -- erl -noshell -s mymod main -s init stop"
    )]
    Run {
        #[command(flatten)]
        capture: capture_opts::CaptureOpts,
        /// The program and its arguments
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Attach to a running node as a hidden node and record it until Ctrl-C, --for, or a budget
    #[command(
        after_help = "Examples:\n  elixirscope record my_app@localhost --for 30s\n  elixirscope record my_app@host --cookie secret --state MyApp.Cache --trace 'MyApp.Repo._/_'"
    )]
    Record {
        /// Node name, e.g. my_app@localhost (a bare name means this host)
        node: String,
        #[command(flatten)]
        capture: capture_opts::CaptureOpts,
        /// Distribution cookie [default: $ELIXIRSCOPE_COOKIE, else ~/.erlang.cookie]
        #[arg(long, value_name = "C")]
        cookie: Option<String>,
    },
    /// List recorded sessions
    Sessions {
        #[arg(long)]
        json: bool,
    },
    /// Summarise a session: counts per kind, busiest processes, crashes, drops, trips
    Show {
        /// Session name, unique prefix, or `last`
        session: String,
        #[arg(long)]
        json: bool,
    },
    /// List events, filtered by time, process, kind, MFA and term content
    Events(queries::EventsArgs),
    /// State of a GenServer/gen_statem at a moment, what changed it, and the diff
    State(queries::ProcAtArgs),
    /// Messages sent to a process and not yet received (or handled) at a moment
    Mailbox(queries::ProcAtArgs),
    /// Supervision/process tree at a moment
    Tree(queries::TreeArgs),
    /// Every live process at a moment with its state and pending messages
    Snapshot(queries::AtArgs),
    /// Step to the next (or previous) events of a process from a moment
    Step(queries::StepArgs),
    /// Where the time of recorded calls went: a call tree, or folded stacks for a flame graph
    #[command(
        after_help = "Total time includes the traced callees, self time leaves them out. A call that\nnever returned is timed to its process's exit, or else to the end of the range.\n\nExamples:\n  elixirscope flame last --pid MyApp.Worker --from +1s --to +3s\n  elixirscope flame last --folded > calls.folded && flamegraph.pl calls.folded > calls.svg"
    )]
    Flame(queries::FlameArgs),
    /// The audit log of captures and views: check it for tampering, or list it
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Serve the HTTP API: sessions for viewers, captures for operators and admins
    #[command(
        after_help = "Examples:\n  elixirscope token create ci --role viewer\n  elixirscope serve --listen 0.0.0.0:7600\n  curl --cacert ~/.local/share/elixirscope/serve-cert.pem -H \"Authorization: Bearer $TOKEN\" https://host:7600/api/sessions"
    )]
    Serve {
        /// Address to listen on (TLS is used for anything but loopback)
        #[arg(long, default_value = "127.0.0.1:7600", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Use TLS even on loopback (a self-signed certificate unless --tls-cert is given)
        #[arg(long)]
        tls: bool,
        /// Certificate chain (PEM) to serve instead of a self-signed one
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// Private key (PEM) for --tls-cert
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP beyond loopback (not advised)
        #[arg(long)]
        insecure_plaintext: bool,
        /// Cookie for nodes named in capture requests that bring none
        #[arg(long, value_name = "C")]
        cookie: Option<String>,
    },
    /// Open the web UI (the Execution Cinema) on a session, or on the list of sessions
    #[command(
        after_help = "Examples:\n  elixirscope ui last\n  elixirscope ui demo-20261126-101500 --listen 127.0.0.1:8080\n\nThe UI has no login: it listens on loopback only. From another machine, tunnel:\n  ssh -L 7700:127.0.0.1:7700 host"
    )]
    Ui {
        /// Session to open (name, unique prefix or `last`); the sessions list when omitted
        session: Option<String>,
        /// Address to listen on (loopback only)
        #[arg(long, default_value = "127.0.0.1:7700", value_name = "ADDR")]
        listen: std::net::SocketAddr,
    },
    /// Send a session to other tools: OpenTelemetry (OTLP over gRPC or HTTP/protobuf)
    #[command(subcommand)]
    Export(ExportCommand),
    /// Manage the API's access tokens
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Traced calls as spans (nested per process, GenServer calls across processes) and counters as metrics, to an OTLP endpoint
    #[command(
        after_help = "Examples:\n  elixirscope export otlp last --endpoint http://127.0.0.1:4317\n  elixirscope export otlp last --protocol http --endpoint http://127.0.0.1:4318\n  HONEYCOMB_API_KEY=... elixirscope export otlp last --preset honeycomb"
    )]
    Otlp(export::OtlpArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (the only time it is shown)
    Create {
        name: String,
        /// viewer (read sessions), operator (also start captures), admin (also values, state, redaction)
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// List tokens (names and roles, never secrets)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token
    Revoke { name: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry's hash chain; names the first entry modified, removed or reordered
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// List audit entries
    Show {
        /// Only the last N entries
        #[arg(long, value_name = "N")]
        last: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

/// Options shared by commands that print results.
#[derive(Args, Clone, Copy)]
pub struct OutputOpts {
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

/// An error printed as one line; `code` is the exit status.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let home = cli
        .home
        .clone()
        .unwrap_or_else(elixirscope_store::session::home);
    let result = match cli.command {
        Command::Run { capture, command } => record::run(&home, &capture, &command),
        Command::Record {
            node,
            capture,
            cookie,
        } => record::record(&home, &node, &capture, cookie.as_deref()),
        Command::Sessions { json } => queries::sessions(&home, json),
        Command::Show { session, json } => queries::show(&home, &session, json),
        Command::Events(a) => queries::events(&home, &a),
        Command::State(a) => queries::state(&home, &a),
        Command::Mailbox(a) => queries::mailbox(&home, &a),
        Command::Tree(a) => queries::tree(&home, &a),
        Command::Snapshot(a) => queries::snapshot(&home, &a),
        Command::Step(a) => queries::step(&home, &a),
        Command::Flame(a) => queries::flame(&home, &a),
        Command::Audit(AuditCommand::Verify { json }) => queries::audit_verify(&home, json),
        Command::Audit(AuditCommand::Show { last, json }) => queries::audit_show(&home, last, json),
        Command::Serve {
            listen,
            tls,
            tls_cert,
            tls_key,
            insecure_plaintext,
            cookie,
        } => serve::serve(
            &home,
            serve::ServeOpts {
                listen,
                tls,
                tls_cert,
                tls_key,
                insecure_plaintext,
                cookie,
            },
        ),
        Command::Export(ExportCommand::Otlp(a)) => export::otlp(&home, &a),
        Command::Ui { session, listen } => serve::ui(&home, session.as_deref(), listen),
        Command::Token(TokenCommand::Create { name, role }) => {
            serve::token_create(&home, &name, &role)
        }
        Command::Token(TokenCommand::List { json }) => serve::token_list(&home, json),
        Command::Token(TokenCommand::Revoke { name }) => serve::token_revoke(&home, &name),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
