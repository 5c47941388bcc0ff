//! API tokens and their roles.
//!
//! `$ELIXIRSCOPE_HOME/tokens.json` (mode 0600) lists tokens by name with their
//! role and the SHA-256 of the secret — the secret itself is shown once, at
//! creation, and never stored. Every change is written to the audit log.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What a token may do. Each role can do everything the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read sessions.
    Viewer,
    /// Also start and stop captures of lifecycle, messages and calls (without values).
    Operator,
    /// Also capture argument values and state, turn redaction off, manage tokens.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A stored token (without its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub sha256: String,
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid token file: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("a token named '{0}' exists already; revoke it first or choose another name")]
    Exists(String),
    #[error("no token named '{0}' (see `elixirscope token list`)")]
    Unknown(String),
    #[error("invalid token name '{0}': use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error(transparent)]
    Audit(#[from] elixirscope_store::StoreError),
}

fn path(home: &Path) -> PathBuf {
    home.join("tokens.json")
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn load(home: &Path) -> Result<TokenFile, TokenError> {
    let p = path(home);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt {
            path: p,
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(TokenError::Io { path: p, source: e }),
    }
}

fn save(home: &Path, file: &TokenFile) -> Result<(), TokenError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(home).map_err(|e| TokenError::Io {
        path: home.to_owned(),
        source: e,
    })?;
    let p = path(home);
    let tmp = home.join(".tokens.json.tmp");
    let io = |e| TokenError::Io {
        path: tmp.clone(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&serde_json::to_vec_pretty(file).expect("tokens serialize"))
        .map_err(io)?;
    std::fs::rename(&tmp, &p).map_err(|e| TokenError::Io { path: p, source: e })
}

/// Creates a token; returns its secret (shown once).
pub fn create(home: &Path, name: &str, role: Role) -> Result<String, TokenError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(TokenError::BadName(name.to_owned()));
    }
    let mut file = load(home)?;
    if file.tokens.iter().any(|t| t.name == name) {
        return Err(TokenError::Exists(name.to_owned()));
    }
    let secret: String = format!(
        "es_{}",
        rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    file.tokens.push(TokenEntry {
        name: name.to_owned(),
        role,
        sha256: hash(&secret),
        created: elixirscope_store::session::rfc3339_from_unix(now),
    });
    save(home, &file)?;
    elixirscope_store::audit::record(
        home,
        "token_create",
        name,
        serde_json::json!({ "role": role }),
    )?;
    Ok(secret)
}

/// Removes a token.
pub fn revoke(home: &Path, name: &str) -> Result<(), TokenError> {
    let mut file = load(home)?;
    let before = file.tokens.len();
    file.tokens.retain(|t| t.name != name);
    if file.tokens.len() == before {
        return Err(TokenError::Unknown(name.to_owned()));
    }
    save(home, &file)?;
    elixirscope_store::audit::record(home, "token_revoke", name, serde_json::json!({}))?;
    Ok(())
}

/// All tokens (without secrets).
pub fn list(home: &Path) -> Result<Vec<TokenEntry>, TokenError> {
    Ok(load(home)?.tokens)
}

/// The token a secret belongs to.
pub fn check(home: &Path, secret: &str) -> Result<Option<TokenEntry>, TokenError> {
    let h = hash(secret);
    Ok(load(home)?.tokens.into_iter().find(|t| t.sha256 == h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_checked() {
        let home = tempfile::tempdir().unwrap();
        let secret = create(home.path(), "ci-viewer", Role::Viewer).unwrap();
        assert!(secret.starts_with("es_"));
        let stored = std::fs::read_to_string(home.path().join("tokens.json")).unwrap();
        assert!(!stored.contains(&secret));
        assert_eq!(
            check(home.path(), &secret).unwrap().unwrap().role,
            Role::Viewer
        );
        assert!(check(home.path(), "es_nope").unwrap().is_none());
        assert!(matches!(
            create(home.path(), "ci-viewer", Role::Admin),
            Err(TokenError::Exists(_))
        ));
        revoke(home.path(), "ci-viewer").unwrap();
        assert!(check(home.path(), &secret).unwrap().is_none());
        let actions: Vec<String> = elixirscope_store::audit::entries(home.path())
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["token_create", "token_revoke"]);
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }
}
