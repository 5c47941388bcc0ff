//! `run` mode: start a program with distribution on and the agent hook in place.
//!
//! The program (`elixir x.exs`, `mix run ...`, `erl ...`) is started with
//! `ERL_AFLAGS` adding a short node name, a per-run cookie and a boot hook. The
//! hook registers `elixirscope_boot` and waits (at most [`BOOT_WAIT_MS`]) for the
//! collector's go-ahead, so capture is running before the program's own code
//! starts. After the go-ahead the hook unregisters the name and boot continues.

use crate::dist::{epmd_port, Cookie};
use crate::CaptureError;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long the boot hook waits for the collector before running untraced.
pub const BOOT_WAIT_MS: u64 = 30_000;
/// The name the boot hook registers.
pub const BOOT_NAME: &str = "elixirscope_boot";

/// A started program.
pub struct Launched {
    pub child: Child,
    /// `name@host` of the program's node.
    pub node: String,
}

/// Starts `command` with distribution enabled, waiting at boot for the collector.
pub fn launch(command: &[String], cookie: &Cookie) -> Result<Launched, CaptureError> {
    let (program, args) = command.split_first().ok_or_else(|| CaptureError::Launch {
        command: String::new(),
        detail: "no command given; write it after --, e.g. elixirscope run -- elixir script.exs"
            .into(),
    })?;
    let name = format!("elixirscope_run_{}", std::process::id());
    let node = format!("{name}@localhost");
    let hook = format!(
        "erlang:register({BOOT_NAME},self()),receive{{es_go}}->(ok)after({BOOT_WAIT_MS})->(ok)end,erlang:unregister({BOOT_NAME})."
    );
    let mut flags = format!("-sname {node} -setcookie {} -eval {hook}", cookie.value);
    if let Ok(existing) = std::env::var("ERL_AFLAGS") {
        flags = format!("{flags} {existing}");
    }
    let mut cmd = Command::new(program);
    cmd.args(args).env("ERL_AFLAGS", flags);
    // Own process group unless interactive: Ctrl-C reaches us, and we stop the
    // program cleanly after flushing the capture.
    let interactive = program.ends_with("iex") || args.iter().any(|a| a == "iex");
    if !interactive {
        cmd.process_group(0);
    }
    let child = cmd.spawn().map_err(|e| CaptureError::Launch {
        command: command.join(" "),
        detail: e.to_string(),
    })?;
    Ok(Launched { child, node })
}

/// Waits until the program's node is registered with EPMD.
pub fn wait_for_node(launched: &mut Launched, timeout: Duration) -> Result<(), CaptureError> {
    let deadline = Instant::now() + timeout;
    let name = launched
        .node
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    loop {
        if let Ok(Some(status)) = launched.child.try_wait() {
            return Err(CaptureError::Launch {
                command: launched.node.clone(),
                detail: format!("the program exited ({status}) before its node started"),
            });
        }
        if let Ok(Some(_)) = epmd_port(&name, "localhost") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CaptureError::Launch {
                command: launched.node.clone(),
                detail: format!(
                    "its node did not register with EPMD within {} s",
                    timeout.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}
