//! Choosing the tracer for a capture: the NIF tracer when its library can be
//! loaded by the node, the process tracer otherwise.
//!
//! The library (`libelixirscope_nif_tracer.so`, built with the workspace) is
//! looked for in `$ELIXIRSCOPE_NIF`, then next to the running executable. The
//! node must see the very same file at the same path (same host, or installed
//! alongside): the collector compares its size and MD5 over RPC before offering
//! it. The agent then tries to load it and falls back to the process tracer if
//! that fails; the session records which tracer ran and why.

use crate::dist::NodeConnection;
use crate::spec::TracerChoice;
use crate::CaptureError;
use elixirscope_term::Term;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the NIF library on Linux.
pub const LIBRARY: &str = "libelixirscope_nif_tracer.so";

/// What the agent is told about the NIF tracer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Load the library at this path (without its extension, as `load_nif` wants).
    Nif(String),
    /// Use the process tracer, for this reason.
    Process(String),
}

/// Where the NIF library is on this machine, or why it is not there.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ELIXIRSCOPE_NIF") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "ELIXIRSCOPE_NIF is {}, which is not a file (point it at {LIBRARY} or unset it)",
                p.display()
            ))
        };
    }
    let not_found = || {
        format!(
            "{LIBRARY} was not found next to the elixirscope executable (set ELIXIRSCOPE_NIF to its path)"
        )
    };
    let exe = std::env::current_exe().map_err(|_| not_found())?;
    let dir = exe.parent().ok_or_else(not_found)?;
    [dir.join(LIBRARY), dir.join("..").join(LIBRARY)]
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(not_found)
}

/// Same file on the node: size and MD5 of the bytes it reads at `path`.
const SAME_FILE_EXPR: &str = r#"
case file:read_file(Path) of
    {ok, Bin} -> {byte_size(Bin), erlang:md5(Bin)};
    {error, Why} -> {error, Why}
end.
"#;

/// Decides the tracer for a capture of the node behind `conn`.
pub fn choose(conn: &NodeConnection, choice: TracerChoice) -> Result<Choice, CaptureError> {
    let forced = choice == TracerChoice::Nif;
    let refuse = |why: String| -> Result<Choice, CaptureError> {
        if forced {
            Err(CaptureError::StartFailed {
                node: conn.peer().to_owned(),
                detail: format!("the NIF tracer cannot run: {why} (use --tracer auto or process)"),
            })
        } else {
            Ok(Choice::Process(why))
        }
    };
    if choice == TracerChoice::Process {
        return Ok(Choice::Process("the process tracer was asked for".into()));
    }
    let path = match locate() {
        Ok(path) => path,
        Err(why) => return refuse(why),
    };
    match same_file_on_node(conn, &path) {
        Ok(true) => Ok(Choice::Nif(without_extension(&path))),
        Ok(false) => refuse(format!(
            "the node does not see the same {LIBRARY} at {} (another host?)",
            path.display()
        )),
        Err(e) => refuse(format!("could not check the NIF library on the node: {e}")),
    }
}

fn same_file_on_node(conn: &NodeConnection, path: &Path) -> Result<bool, CaptureError> {
    let bytes = std::fs::read(path).map_err(|e| CaptureError::StartFailed {
        node: conn.peer().to_owned(),
        detail: format!("cannot read {}: {e}", path.display()),
    })?;
    let text = path.to_string_lossy().into_owned();
    let remote = conn.eval(
        SAME_FILE_EXPR,
        vec![("Path", Term::string(&text))],
        Duration::from_secs(30),
    )?;
    Ok(match remote.as_tuple() {
        Some([Term::Integer(size), Term::Binary(md5)]) => {
            *size as usize == bytes.len() && md5[..] == md5_of(&bytes)
        }
        _ => false,
    })
}

fn without_extension(path: &Path) -> String {
    path.with_extension("").to_string_lossy().into_owned()
}

/// MD5, as `erlang:md5/1` computes it, to compare files with the node.
fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_matches_erlang_md5() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(super::md5_of(
                b"The quick brown fox jumps over the lazy dog"
            )),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }
}
