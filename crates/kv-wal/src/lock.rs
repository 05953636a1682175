//! The lock that keeps two handles from writing one log.
//!
//! The lock is an `flock` on the directory itself, not on a file inside it. A lock file can
//! be unlinked while its holder runs: the next open then creates a fresh file and locks that,
//! and two writers append to one log (a write acknowledged by the second was lost when the
//! first rotated or cut its segment). A directory holding a log cannot be removed while it is
//! in use, and renaming it moves the lock with it, so the lock stays on the one inode every
//! later open finds. It needs no write access, so a read-only directory can be locked too.
//!
//! `flock` locks are per open file description: a second open in the same process conflicts
//! just as another process does. On NFS, Linux emulates `flock` with byte-range locks, which
//! need a file open for writing; a directory cannot be, so locking fails there with an I/O
//! error instead of locking nothing.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// An advisory lock (`flock`) on a log or store directory, held while this value lives:
/// exclusive for the one handle that writes, or shared by readers that must not see a
/// writer's half-done work.
///
/// Layers above use it too: the store locks its own directory before it cleans up or reads
/// a snapshot there, so that a second open can never touch files the first one owns.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Locks directory `dir` (which must exist) exclusively, or fails with
    /// [`Error::DirectoryLocked`] if another handle holds it, shared or exclusive.
    ///
    /// # Errors
    ///
    /// [`Error::DirectoryLocked`] as said; [`Error::Io`] when the directory cannot be
    /// opened.
    pub fn acquire(dir: &Path) -> Result<Self> {
        Self::take(dir, |file| file.try_lock())
    }

    /// Locks directory `dir` (which must exist) shared: any number of readers hold it
    /// together, and none while a writer holds it exclusively ([`Error::DirectoryLocked`]).
    ///
    /// # Errors
    ///
    /// [`Error::DirectoryLocked`] as said; [`Error::Io`] when the directory cannot be
    /// opened.
    pub fn acquire_shared(dir: &Path) -> Result<Self> {
        Self::take(dir, |file| file.try_lock_shared())
    }

    fn take(
        dir: &Path,
        lock: impl Fn(&File) -> std::result::Result<(), TryLockError>,
    ) -> Result<Self> {
        // Opening a directory read-only is allowed (and `File::open` adds O_CLOEXEC, so a
        // child process does not inherit the lock).
        let file = File::open(dir).map_err(|e| Error::io("open the directory to lock", dir, e))?;
        let give_up = Instant::now() + INHERITED_GRACE;
        loop {
            match lock(&file) {
                Ok(()) => return Ok(DirLock { _dir: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::DirectoryLocked {
                        path: dir.to_path_buf(),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", dir, e)),
            }
        }
    }
}

/// How long a lock found taken is tried again before the directory counts as held.
///
/// O_CLOEXEC closes the lock's descriptor in a child process only when the child execs: a
/// process that spawns a child (any thread of it, at any time) lends the child a copy of
/// every descriptor it has open from the fork to the exec, and an `flock` is released only
/// when the last copy is closed. A handle closed and reopened meanwhile (a store closed and
/// opened again, a `kv` command run right after) would find its own released lock still
/// held for that instant. A holder that really holds it still does after this grace.
const INHERITED_GRACE: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exclusive_lock_excludes_every_other_lock_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        for second in [DirLock::acquire, DirLock::acquire_shared] {
            let err = second(dir.path()).unwrap_err();
            assert!(matches!(err, Error::DirectoryLocked { .. }), "{err}");
        }
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn shared_locks_go_together_and_keep_a_writer_out() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire_shared(dir.path()).unwrap();
        let second = DirLock::acquire_shared(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, Error::DirectoryLocked { .. }), "{err}");
        drop((first, second));
        DirLock::acquire(dir.path()).unwrap();
    }

    /// A lock released while another thread spawns child processes (which hold copies of
    /// every descriptor from fork to exec) is free again for the next taker.
    #[test]
    fn a_released_lock_is_free_again_while_other_threads_spawn_processes() {
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = std::process::Command::new("true").status();
                    }
                });
            }
            let until = Instant::now() + Duration::from_secs(2);
            let mut refused = 0;
            for _ in 0..5_000 {
                if Instant::now() >= until {
                    break;
                }
                match DirLock::acquire(dir.path()) {
                    Ok(held) => drop(held),
                    Err(_) => refused += 1,
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(refused, 0, "a released lock was found held");
        });
    }

    #[test]
    fn the_lock_creates_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let _held = DirLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
