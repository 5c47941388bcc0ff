//! The audit log: who captured, viewed and exported what, tamper-evident.
//!
//! `$ELIXIRSCOPE_HOME/audit.log` holds one JSON object per line. Each entry
//! carries a sequence number, the hash of the entry before it and its own
//! SHA-256 hash (over the previous hash and the entry without its hash), so
//! changing, removing or reordering any entry breaks the chain at that entry.
//! `audit.head` remembers the newest sequence number and hash, so cutting
//! entries off the end is detected too. Appends take an exclusive file lock, so
//! several elixirscope processes can log at once.

use crate::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// Who: `user@host (uid N)`, or a token's name for remote access.
    pub actor: String,
    /// From where: `local`, or the SSH client address.
    pub from: String,
    /// What: `attach`, `capture_start`, `capture_stop`, `capture_trip`, `view`, `export` ...
    pub action: String,
    /// On what: a node, a session.
    pub subject: String,
    pub details: serde_json::Value,
    pub prev: String,
    pub hash: String,
}

/// Where the log lives under `home`.
pub fn log_path(home: &Path) -> PathBuf {
    home.join("audit.log")
}

fn head_path(home: &Path) -> PathBuf {
    home.join("audit.head")
}

fn entry_hash(e: &AuditEntry) -> String {
    let mut unhashed = e.clone();
    unhashed.hash = String::new();
    let body = serde_json::to_string(&unhashed).expect("entry serializes");
    let mut h = Sha256::new();
    h.update(e.prev.as_bytes());
    h.update(body.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The local actor: `user@host (uid N)`, and where they are: `local` or the SSH client.
pub fn local_actor() -> (String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into());
    // The account name of the uid, as /etc/passwd knows it; else what the environment says.
    let user = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[2] == uid)
                .map(|f| f[0].to_owned())
        })
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let from = std::env::var("SSH_CLIENT")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .map(|ip| format!("ssh from {ip}"))
        })
        .unwrap_or_else(|| "local".into());
    (format!("{user}@{} (uid {uid})", host.trim()), from)
}

/// Appends an entry for the local user.
pub fn record(
    home: &Path,
    action: &str,
    subject: &str,
    details: serde_json::Value,
) -> Result<AuditEntry, StoreError> {
    let (actor, from) = local_actor();
    append(home, &actor, &from, action, subject, details)
}

/// Appends an entry, chained to the newest one.
pub fn append(
    home: &Path,
    actor: &str,
    from: &str,
    action: &str,
    subject: &str,
    details: serde_json::Value,
) -> Result<AuditEntry, StoreError> {
    std::fs::create_dir_all(home).map_err(|e| StoreError::io(home, e))?;
    let path = log_path(home);
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    file.lock().map_err(|e| StoreError::io(&path, e))?;
    let last = last_entry(&mut file).map_err(|e| StoreError::io(&path, e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let time = crate::session::rfc3339_from_unix(now.as_secs() as i64);
    let mut entry = AuditEntry {
        seq: last.as_ref().map(|e| e.seq + 1).unwrap_or(1),
        time,
        actor: actor.to_owned(),
        from: from.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        details,
        prev: last.map(|e| e.hash).unwrap_or_else(|| ZERO.into()),
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    let mut line = serde_json::to_string(&entry).expect("entry serializes");
    line.push('\n');
    file.write_all(line.as_bytes())
        .map_err(|e| StoreError::io(&path, e))?;
    let head = head_path(home);
    std::fs::write(&head, format!("{} {}\n", entry.seq, entry.hash))
        .map_err(|e| StoreError::io(&head, e))?;
    drop(file);
    Ok(entry)
}

/// The newest entry, read from the end of the file.
fn last_entry(file: &mut std::fs::File) -> std::io::Result<Option<AuditEntry>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let take = len.min(64 << 10);
    file.seek(SeekFrom::Start(len - take))?;
    let mut tail = Vec::with_capacity(take as usize);
    file.read_to_end(&mut tail)?;
    let text = String::from_utf8_lossy(&tail);
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok()))
}

/// All entries as stored (unparseable lines are reported by [`verify`]).
pub fn entries(home: &Path) -> Result<Vec<AuditEntry>, StoreError> {
    let path = log_path(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub entries: u64,
    /// `None` when intact; otherwise what is wrong, naming the entry.
    pub problem: Option<String>,
}

/// Checks every entry's hash and link, and the head marker.
pub fn verify(home: &Path) -> Result<Verdict, StoreError> {
    let path = log_path(home);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Verdict {
                entries: 0,
                problem: None,
            })
        }
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let fail = |n: u64, problem: String| {
        Ok(Verdict {
            entries: n,
            problem: Some(problem),
        })
    };
    let mut prev = ZERO.to_owned();
    let mut seq = 0u64;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let entry: AuditEntry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(_) => {
                return fail(
                    seq,
                    format!("line {line_no} is not an audit entry (modified or corrupted)"),
                )
            }
        };
        let name = format!(
            "entry {} ({} {} at {}, line {line_no})",
            entry.seq, entry.action, entry.subject, entry.time
        );
        if entry.seq != seq + 1 {
            return fail(
                seq,
                format!("{name} follows entry {seq}: entries were removed or reordered"),
            );
        }
        if entry.prev != prev {
            return fail(seq, format!("{name} does not link to the entry before it: entries were removed or reordered"));
        }
        if entry_hash(&entry) != entry.hash {
            return fail(
                seq,
                format!("{name} was modified (its hash does not match its content)"),
            );
        }
        prev = entry.hash;
        seq = entry.seq;
    }
    if let Ok(head) = std::fs::read_to_string(head_path(home)) {
        let mut parts = head.split_whitespace();
        let (hseq, hhash) = (
            parts.next().and_then(|s| s.parse::<u64>().ok()),
            parts.next(),
        );
        if hseq != Some(seq) || hhash != Some(prev.as_str()) {
            return fail(
                seq,
                format!(
                    "the log ends at entry {seq} but the last entry written was {}: entries were cut off the end",
                    hseq.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
                ),
            );
        }
    }
    Ok(Verdict {
        entries: seq,
        problem: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        for i in 0..n {
            append(
                home.path(),
                "alice@host (uid 1)",
                "local",
                "view",
                &format!("s{i}"),
                serde_json::json!({"i": i}),
            )
            .unwrap();
        }
        home
    }

    #[test]
    fn an_untouched_log_verifies() {
        let home = log(5);
        assert_eq!(
            verify(home.path()).unwrap(),
            Verdict {
                entries: 5,
                problem: None
            }
        );
        assert_eq!(entries(home.path()).unwrap().len(), 5);
    }

    #[test]
    fn a_changed_byte_names_the_entry() {
        let home = log(5);
        let path = log_path(home.path());
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replacen("\"s2\"", "\"s9\"", 1);
        std::fs::write(&path, tampered).unwrap();
        let v = verify(home.path()).unwrap();
        assert!(v.problem.unwrap().starts_with("entry 3 (view s9"));
    }

    #[test]
    fn removed_reordered_and_cut_entries_are_detected() {
        let home = log(5);
        let path = log_path(home.path());
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let write = |ls: &[&String]| {
            std::fs::write(
                &path,
                ls.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .unwrap()
        };
        write(&[&lines[0], &lines[2], &lines[3], &lines[4]]);
        assert!(verify(home.path())
            .unwrap()
            .problem
            .unwrap()
            .contains("removed or reordered"));
        write(&[&lines[0], &lines[2], &lines[1], &lines[3], &lines[4]]);
        assert!(verify(home.path())
            .unwrap()
            .problem
            .unwrap()
            .contains("removed or reordered"));
        write(&[&lines[0], &lines[1], &lines[2], &lines[3]]);
        assert!(verify(home.path())
            .unwrap()
            .problem
            .unwrap()
            .contains("cut off the end"));
    }
}
