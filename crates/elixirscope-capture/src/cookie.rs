//! Finding the distribution cookie: `--cookie`, `$ELIXIRSCOPE_COOKIE`, `~/.erlang.cookie`.

use crate::{CaptureError, Cookie};

/// Resolves the cookie, remembering where it came from for error messages.
pub fn resolve(flag: Option<&str>) -> Result<Cookie, CaptureError> {
    if let Some(c) = flag {
        return Ok(Cookie {
            value: c.to_owned(),
            source: "--cookie".into(),
        });
    }
    if let Ok(c) = std::env::var("ELIXIRSCOPE_COOKIE") {
        if !c.is_empty() {
            return Ok(Cookie {
                value: c,
                source: "$ELIXIRSCOPE_COOKIE".into(),
            });
        }
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let path = std::path::Path::new(&home).join(".erlang.cookie");
    match std::fs::read_to_string(&path) {
        Ok(c) if !c.trim().is_empty() => Ok(Cookie {
            value: c.trim().to_owned(),
            source: path.display().to_string(),
        }),
        _ => Err(CaptureError::NoCookie(format!(
            "pass --cookie, set $ELIXIRSCOPE_COOKIE, or create {}",
            path.display()
        ))),
    }
}

/// A fresh random cookie for a program started by `run`.
pub fn random() -> Cookie {
    let value: String = (0..20)
        .map(|_| (b'A' + rand::random::<u8>() % 26) as char)
        .collect();
    Cookie {
        value,
        source: "a cookie generated for this run".into(),
    }
}
