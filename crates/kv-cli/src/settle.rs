//! Reading a store that another process may be writing and compacting while kv reads it.
//!
//! The commands that only read take no lock, so the files can change under their open: a
//! compaction removes the segments and the snapshot the manifest just read named, a rotation
//! seals a segment that was the newest a moment before. Recovery refuses whatever does not
//! add up (a missing segment or snapshot, a sealed segment without a successor), so such an
//! open fails rather than reading less than was there; it is then simply tried again.
//!
//! Damage on disk fails the same way every time, so an open is tried again only while its
//! failures differ or the directory changes under it: a failure seen twice in a row, with no
//! file of the directory changed (name, length, modification time) from before the first of
//! the two opens to after the second, is the answer; so is one seen three times in a row
//! whatever changed (a store that is damaged and written at once). After [`ATTEMPTS`]
//! opens that kept failing differently, the last failure is reported as such.
//!
//! An open can also succeed and still be wrong: if a compaction switches the manifest and
//! deletes the segments the old one named between the moment the open checked that the
//! log's first segment is there and the moment it listed the log, the open starts the log
//! later than the manifest it read says, silently. A compaction deletes nothing before its
//! new manifest is in place, and the manifest changes with every compaction, so an open
//! that saw the same manifest before and after it saw no deletion: [`unchanged_manifest`]
//! runs an open and reports one that a compaction overlapped as a transient failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How many times an open is tried at most.
pub const ATTEMPTS: usize = 10;

/// Why an open did not settle.
#[derive(Debug)]
pub enum Unsettled<E> {
    /// The same failure, from a directory that stood still: the store's own answer.
    Stable(E),
    /// Every attempt failed, differently or while the directory changed; the last failure.
    Changing(E),
}

/// Runs `attempt` until it succeeds or its failure settles (see the module's
/// documentation). `describe` tells failures apart, or says (`None`) that one is transient
/// and never the answer; `dir` is the store's directory.
pub fn settle<T, E>(
    dir: &Path,
    mut attempt: impl FnMut() -> Result<T, E>,
    describe: impl Fn(&E) -> Option<String>,
) -> Result<T, Unsettled<E>> {
    // The failures in a row that were alike, and the directory before the first of them.
    let mut alike = 0;
    let mut previous: Option<(String, Fingerprint)> = None;
    let mut pause = Duration::from_millis(50);
    for n in 1..=ATTEMPTS {
        let before = Fingerprint::of(dir);
        let error = match attempt() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let after = Fingerprint::of(dir);
        match (describe(&error), &previous) {
            (None, _) => {
                alike = 0;
                previous = None;
            }
            (Some(message), Some((last, since))) if *last == message => {
                alike += 1;
                if *since == after || alike >= 3 {
                    return Err(Unsettled::Stable(error));
                }
            }
            (Some(message), _) => {
                alike = 1;
                previous = Some((message, before));
            }
        }
        if n == ATTEMPTS {
            return Err(Unsettled::Changing(error));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    unreachable!("the last attempt returns")
}

/// What a compaction that overlapped an open leaves: the open may have missed what it
/// deleted.
#[derive(Debug)]
pub struct Compacted;

/// Runs `open` on the store in `dir`; a compaction (a new manifest) during it fails it with
/// [`Compacted`] (see the module's documentation). The result of `open` itself is inside.
pub fn unchanged_manifest<T>(dir: &Path, open: impl FnOnce() -> T) -> Result<T, Compacted> {
    let manifest = || std::fs::read(dir.join(kv_compact::MANIFEST)).ok();
    let before = manifest();
    let opened = open();
    if manifest() == before {
        Ok(opened)
    } else {
        Err(Compacted)
    }
}

/// Every file under a directory with its length and modification time: what tells a store
/// that is being written from one that stands still.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, Option<FileState>)>);

/// A file's length and modification time.
type FileState = (u64, Option<SystemTime>);

impl Fingerprint {
    fn of(dir: &Path) -> Self {
        let mut files = Vec::new();
        collect(dir, &mut files);
        files.sort();
        Fingerprint(files)
    }
}

/// What a file that vanished mid-walk is noted as: gone (`None`), which differs from any
/// file that is there.
fn collect(dir: &Path, files: &mut Vec<(PathBuf, Option<FileState>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => collect(&path, files),
            Ok(meta) => files.push((path, Some((meta.len(), meta.modified().ok())))),
            Err(_) => files.push((path, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_failure_of_a_still_directory_is_the_answer_after_two_tries() {
        let dir = tempfile::tempdir().unwrap();
        let tries = Cell::new(0);
        let result: Result<(), _> = settle(
            dir.path(),
            || {
                tries.set(tries.get() + 1);
                Err("damaged")
            },
            |e| Some(e.to_string()),
        );
        assert!(matches!(result, Err(Unsettled::Stable("damaged"))));
        assert_eq!(tries.get(), 2);
    }

    #[test]
    fn failures_that_differ_are_tried_again_until_one_succeeds_or_the_tries_run_out() {
        let dir = tempfile::tempdir().unwrap();
        let tries = Cell::new(0);
        let result = settle(
            dir.path(),
            || {
                tries.set(tries.get() + 1);
                if tries.get() < 4 {
                    Err(format!("segment {} missing", tries.get()))
                } else {
                    Ok(tries.get())
                }
            },
            |e| Some(e.clone()),
        );
        assert_eq!(result.unwrap(), 4);

        let tries = Cell::new(0);
        let result: Result<(), _> = settle(
            dir.path(),
            || {
                tries.set(tries.get() + 1);
                Err(tries.get())
            },
            |n| Some(n.to_string()),
        );
        assert!(matches!(result, Err(Unsettled::Changing(n)) if n == ATTEMPTS));
    }

    #[test]
    fn a_transient_failure_is_never_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let tries = Cell::new(0);
        let result: Result<(), _> = settle(
            dir.path(),
            || {
                tries.set(tries.get() + 1);
                Err("compacted")
            },
            |_| None,
        );
        assert!(matches!(result, Err(Unsettled::Changing("compacted"))));
        assert_eq!(tries.get(), ATTEMPTS);
    }

    #[test]
    fn an_open_is_refused_when_the_manifest_changed_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join(kv_compact::MANIFEST);
        assert_eq!(unchanged_manifest(dir.path(), || 1).unwrap(), 1);
        std::fs::write(&manifest, b"one").unwrap();
        assert_eq!(unchanged_manifest(dir.path(), || 2).unwrap(), 2);
        let result = unchanged_manifest(dir.path(), || std::fs::write(&manifest, b"two"));
        assert!(result.is_err());
    }

    #[test]
    fn the_same_failure_while_files_change_is_tried_again_then_taken_the_third_time() {
        let dir = tempfile::tempdir().unwrap();
        let tries = Cell::new(0);
        let result: Result<(), _> = settle(
            dir.path(),
            || {
                tries.set(tries.get() + 1);
                std::fs::write(dir.path().join("segment"), vec![0u8; tries.get()]).unwrap();
                Err("torn")
            },
            |e| Some(e.to_string()),
        );
        assert!(matches!(result, Err(Unsettled::Stable("torn"))));
        assert_eq!(tries.get(), 3);
    }
}
