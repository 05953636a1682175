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
/// documentation). `describe` tells failures apart; `dir` is the store's directory.
pub fn settle<T, E>(
    dir: &Path,
    mut attempt: impl FnMut() -> Result<T, E>,
    describe: impl Fn(&E) -> String,
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
        let message = describe(&error);
        let after = Fingerprint::of(dir);
        match &previous {
            Some((last, since)) if *last == message => {
                alike += 1;
                if *since == after || alike >= 3 {
                    return Err(Unsettled::Stable(error));
                }
            }
            _ => {
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

/// Every file under a directory with its length and modification time: what tells a store
/// that is being written from one that stands still.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint(Vec<(PathBuf, Option<(u64, Option<SystemTime>)>)>);

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
fn collect(dir: &Path, files: &mut Vec<(PathBuf, Option<(u64, Option<SystemTime>)>)>) {
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
            |e| e.to_string(),
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
            Clone::clone,
        );
        assert_eq!(result.unwrap(), 4);

        let tries = Cell::new(0);
        let result: Result<(), _> = settle(
            dir.path(),
            || {
                tries.set(tries.get() + 1);
                Err(tries.get())
            },
            |n| n.to_string(),
        );
        assert!(matches!(result, Err(Unsettled::Changing(n)) if n == ATTEMPTS));
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
            |e| e.to_string(),
        );
        assert!(matches!(result, Err(Unsettled::Stable("torn"))));
        assert_eq!(tries.get(), 3);
    }
}
