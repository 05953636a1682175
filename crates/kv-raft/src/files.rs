//! Durable file operations on the state machine's directory: a file replaced atomically,
//! trees copied and synced, names synced in their parent.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// Syncs `dir`, so that names created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync the directory", dir, e))
}

/// Creates `dir` (and its missing parents), each new name synced in its parent.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<()> {
    kv_wal::fs::create_dir_all_durably(&kv_wal::fs::StdFileSystem, dir)
        .map_err(|e| Error::io("create", dir, e))
}

/// Replaces `dir/name` with `bytes` atomically: a crash leaves the old content or the new,
/// never a mix (written to a temporary file, synced, renamed over, directory synced).
pub(crate) fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, &target).map_err(|e| Error::io("rename into place", &target, e))?;
    sync_dir(dir)
}

/// Removes the tree `path` if it exists, then syncs its parent: the removal is durable.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("remove", path, e)),
    }
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}
