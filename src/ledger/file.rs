//! The local ledger: a state directory with `import.json` (what is imported from where to where,
//! without credentials) and `ledger.jsonl` (one line per finished window, appended and synced).
//! A crash or a full disk can tear only the last line: on open it is cut off (synced) before
//! anything is appended, so a torn record is never glued to the next one; its window is simply
//! imported again.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LedgerEntry;
use crate::error::{Error, Result};
use crate::relabel::LabelRules;

/// What makes two runs the same import: a state directory holds one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportIdentity {
    pub source: String,
    pub dest: String,
    pub selectors: Vec<String>,
    pub labels: LabelRules,
    /// A checksum of the destination's extra headers: a tenant is part of the destination,
    /// but a header value may be a secret, so it is not stored.
    pub dest_headers_crc32c: u32,
}

impl ImportIdentity {
    /// The state directory used when the user names none: per source, destination and
    /// checksum of the identity, under $XDG_STATE_HOME (or ~/.local/state)/promimport.
    pub fn default_state_dir(&self) -> Result<PathBuf> {
        let base = state_home()?;
        let host = |url: &str| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| format!("{h}-{}", u.port_or_known_default().unwrap_or(0)))
                })
                .unwrap_or_else(|| "unknown".into())
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        };
        let json = serde_json::to_vec(self).map_err(|e| Error::Internal(e.to_string()))?;
        let name = format!(
            "{}-to-{}-{:08x}",
            host(&self.source),
            host(&self.dest),
            crc32c::crc32c(&json)
        );
        Ok(base.join(name))
    }
}

/// Where local state lives: $XDG_STATE_HOME/promimport, or ~/.local/state/promimport.
pub fn state_home() -> Result<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .map(|base| base.join("promimport"))
        .ok_or_else(|| {
            Error::invalid(
                "--state",
                "",
                "neither XDG_STATE_HOME nor HOME is set: give --state DIR",
            )
        })
}

pub struct FileLedger {
    path: PathBuf,
    file: File,
    // Held for the ledger's lifetime: a second run on the same state would import the same
    // windows twice and interleave its lines with ours.
    _lock: File,
}

impl FileLedger {
    /// Opens (or creates) the state directory and returns the entries recorded so far.
    pub fn open(dir: &Path, identity: &ImportIdentity) -> Result<(Self, Vec<LedgerEntry>)> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::LedgerIo { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(Error::Ledger {
                path: dir.to_path_buf(),
                reason: "another promimport run is using this state directory; wait for it or give another --state".into(),
            });
        }

        check_identity(dir, identity)?;

        let path = dir.join("ledger.jsonl");
        let (entries, whole) = match std::fs::read(&path) {
            Ok(bytes) => {
                // Everything after the last newline is a torn record (possibly not UTF-8).
                let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let text = String::from_utf8_lossy(&bytes[..whole]);
                if whole < bytes.len() {
                    tracing::warn!(ledger = %path.display(), bytes = bytes.len() - whole, "cutting off a torn last record; its window will be imported again");
                }
                (parse_entries(&path, &text)?, Some((whole, bytes.len())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(e) => return Err(io(&path)(e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        match whole {
            Some((whole, len)) if whole < len => {
                file.set_len(whole as u64).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
            }
            Some(_) => {}
            // A new file: its directory entry must survive a crash too, or so would its records.
            None => sync_dir(dir).map_err(io(dir))?,
        }
        Ok((
            FileLedger {
                path,
                file,
                _lock: lock,
            },
            entries,
        ))
    }

    /// Appends one finished window and syncs it to disk before returning.
    pub fn append(&mut self, entry: &LedgerEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(|e| Error::Internal(e.to_string()))?;
        line.push(b'\n');
        let io = |source| Error::LedgerIo {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(|source| Error::LedgerIo {
            path: self.path.clone(),
            source,
        })
    }
}

/// The state directory holds this import (or, new, is claimed for it): a second import in the
/// same directory would skip windows the first one did.
fn check_identity(dir: &Path, identity: &ImportIdentity) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::LedgerIo { path, source }
    };
    let identity_path = dir.join("import.json");
    match std::fs::read(&identity_path) {
        Ok(bytes) => {
            let recorded: ImportIdentity =
                serde_json::from_slice(&bytes).map_err(|e| Error::Ledger {
                    path: identity_path.clone(),
                    reason: format!("unreadable ({e}); remove the state directory to start over"),
                })?;
            if &recorded != identity {
                return Err(Error::Ledger {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "belongs to another import ({} -> {}, match {:?}); give another --state, or remove this one to start over",
                        recorded.source, recorded.dest, recorded.selectors
                    ),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let json =
                serde_json::to_vec_pretty(identity).map_err(|e| Error::Internal(e.to_string()))?;
            std::fs::write(&identity_path, json).map_err(io(&identity_path))?;
        }
        Err(e) => return Err(io(&identity_path)(e)),
    }
    Ok(())
}

impl super::Ledger for FileLedger {
    async fn record(&mut self, entry: &LedgerEntry) -> Result<()> {
        self.append(entry)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Parses whole lines (the caller cut off a torn tail); a bad whole line was edited by hand.
fn parse_entries(path: &Path, text: &str) -> Result<Vec<LedgerEntry>> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                return Err(Error::Ledger {
                    path: path.to_path_buf(),
                    reason: format!(
                        "line {} is not a ledger entry ({e}); fix or remove the line",
                        i + 1
                    ),
                });
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::WindowStatus;
    use crate::outcome::WindowOutcome;
    use crate::window::Window;

    fn identity(dest: &str) -> ImportIdentity {
        ImportIdentity {
            source: "http://a:9090/api/v1/read".into(),
            dest: dest.into(),
            selectors: vec!["up".into()],
            labels: LabelRules::default(),
            dest_headers_crc32c: 0,
        }
    }

    fn entry(start: i64) -> LedgerEntry {
        LedgerEntry {
            window: Window {
                start_ms: start,
                end_ms: start + 10,
            },
            status: WindowStatus::Done,
            finished_at: "2026-11-24T00:00:00Z".into(),
            outcome: WindowOutcome {
                samples_read: 3,
                samples_written: 3,
                ..Default::default()
            },
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("promimport-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_record_torn_at_any_byte_is_cut_off_and_the_ledger_stays_readable() {
        let dir = temp_dir("torn");
        let id = identity("http://b/api/v1/write");
        {
            let (mut ledger, _) = FileLedger::open(&dir, &id).unwrap();
            ledger.append(&entry(0)).unwrap();
            ledger.append(&entry(10)).unwrap();
        }
        let path = dir.join("ledger.jsonl");
        let whole = std::fs::read(&path).unwrap();
        let last_line = serde_json::to_vec(&entry(20)).unwrap().len() + 1;
        // Torn after 0..=len-1 bytes of a third record: every tear a crash can leave.
        for kept in 0..last_line {
            let mut torn = whole.clone();
            torn.extend_from_slice(
                &[serde_json::to_vec(&entry(20)).unwrap(), b"\n".to_vec()].concat()[..kept],
            );
            std::fs::write(&path, &torn).unwrap();
            {
                let (mut ledger, entries) = FileLedger::open(&dir, &id).unwrap();
                assert_eq!(
                    entries,
                    vec![entry(0), entry(10)],
                    "torn after {kept} bytes"
                );
                ledger.append(&entry(30)).unwrap();
            }
            let (_, entries) = FileLedger::open(&dir, &id).unwrap();
            assert_eq!(
                entries,
                vec![entry(0), entry(10), entry(30)],
                "a second run after a tear at {kept} bytes"
            );
        }
        // A tail of zeros, as a file system may leave after a crash, is a tear too.
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 64]);
        std::fs::write(&path, &zeros).unwrap();
        let (_, entries) = FileLedger::open(&dir, &id).unwrap();
        assert_eq!(entries, vec![entry(0), entry(10)]);
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_survive_a_reopen_and_a_torn_last_line_is_ignored() {
        let dir = temp_dir("reopen");
        let id = identity("http://b/api/v1/write");
        {
            let (mut ledger, entries) = FileLedger::open(&dir, &id).unwrap();
            assert!(entries.is_empty());
            ledger.append(&entry(0)).unwrap();
            ledger.append(&entry(10)).unwrap();
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.join("ledger.jsonl"))
            .unwrap();
        file.write_all(b"{\"window\":{\"sta").unwrap();
        let (_, entries) = FileLedger::open(&dir, &id).unwrap();
        assert_eq!(entries, vec![entry(0), entry(10)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_directory_refuses_another_import_and_a_second_user() {
        let dir = temp_dir("identity");
        let (_held, _) = FileLedger::open(&dir, &identity("http://b/api/v1/write")).unwrap();
        let err = FileLedger::open(&dir, &identity("http://b/api/v1/write"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another promimport run"), "{err}");
        drop(_held);
        let err = FileLedger::open(&dir, &identity("http://c/api/v1/write"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("belongs to another import"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_middle_line_is_an_error_naming_the_line() {
        let err = parse_entries(Path::new("l"), "garbage\n{}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn the_default_state_dir_names_both_ends() {
        let dir = identity("http://cortex:8080/api/v1/push")
            .default_state_dir()
            .unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("a-9090-to-cortex-8080-"), "{name}");
    }
}
