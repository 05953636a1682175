//! The exclusive lock that keeps two handles from writing one log.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name inside the log directory. It is not a segment, so nori-wal ignores it.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// An exclusive advisory lock (`flock`) on `DIR/LOCK`, held while this value lives. It is
/// per open file, so a second open in the same process is refused as well.
///
/// Layers above use it too: the store locks its own directory before it cleans up or reads
/// a snapshot there, so that a second open can never touch files the first one owns.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks directory `dir` (which must exist), or fails with
    /// [`Error::DirectoryLocked`] if another handle holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path: PathBuf = dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open the lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::DirectoryLocked {
                path: dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }
}
