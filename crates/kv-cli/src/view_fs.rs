//! A file layer that opens a store as it would be opened in place, without changing it: for
//! the commands that only read (`get`, `scan`, `export`, `stats`), which take no lock and so
//! work on a store another process holds and on a read-only mount, and for `kv repair`,
//! which must never change the store it salvages.
//!
//! Unlike [`ReadOnlyLog`](crate::readonly_fs::ReadOnlyLog), which refuses every change so
//! that `verify` reports anything an open would have to do, this layer lets an open do what
//! it needs and keeps the result to itself, the way an overlay mount does:
//! - the store is opened in a private directory (a temporary one holding the store's
//!   directories, empty); every path under it reads the store's real file, read-only, unless
//!   a file of that name was created in the private directory, which then wins;
//! - new files (a lock file, a manifest, a new segment) are created in the private directory;
//! - cutting a real file (a torn tail) only shortens what this layer shows of it;
//! - removing a real file only hides it; renaming one, or writing to one, is refused;
//! - syncing succeeds: nothing real was changed, so there is nothing to make durable.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kv_wal::fs::{FileSystem, OpenMode, StdFileSystem, WalFile};

use crate::readonly_fs::{read_at_retrying, real_path, refusal};

/// Shows the store in `real` at the private directory `shown`, changing nothing in `real`.
#[derive(Debug)]
pub struct ReadOnlyView {
    shown: PathBuf,
    real: PathBuf,
    /// What the open did to real files, kept here only.
    changes: Mutex<Changes>,
}

#[derive(Debug, Default)]
struct Changes {
    /// Real files' lengths as cut (shared with their open handles).
    lengths: HashMap<PathBuf, Arc<AtomicU64>>,
    /// Real files and directories removed from view.
    hidden: HashSet<PathBuf>,
}

impl ReadOnlyView {
    /// A layer that shows `real` at `shown`, which must be a private directory holding the
    /// store's directories (empty).
    pub fn new(shown: PathBuf, real: PathBuf) -> Self {
        ReadOnlyView {
            shown,
            real,
            changes: Mutex::default(),
        }
    }

    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        real_path(&self.shown, &self.real, path, WHO)
    }

    fn changes(&self) -> std::sync::MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The real file behind `path`, unless the private directory has its own or it was
    /// removed from view.
    fn visible_real(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        if path.symlink_metadata().is_ok() {
            return Ok(None);
        }
        let real = self.real_path(path)?;
        if self.changes().hidden.contains(&real) {
            return Ok(None);
        }
        Ok(real.symlink_metadata().is_ok().then_some(real))
    }
}

/// Who refuses, in this layer's messages.
const WHO: &str = "a read-only view";

fn refused(what: &str, path: &Path) -> io::Error {
    refusal(WHO, what, path)
}

impl FileSystem for ReadOnlyView {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>> {
        let Some(real) = self.visible_real(path)? else {
            return StdFileSystem.open(path, mode);
        };
        if mode == OpenMode::CreateNew {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", real.display()),
            ));
        }
        let file = File::open(&real)?;
        let length = {
            let real_len = file.metadata()?.len();
            let mut changes = self.changes();
            Arc::clone(
                changes
                    .lengths
                    .entry(real.clone())
                    .or_insert_with(|| Arc::new(AtomicU64::new(real_len))),
            )
        };
        Ok(Arc::new(ViewFile {
            file,
            path: real,
            length,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = HashSet::new();
        let real_dir = self.real_path(path)?;
        let hidden = self.changes().hidden.contains(&real_dir);
        // Either side may lack the directory; any other failure is the answer.
        let private = missing_is_none(std::fs::read_dir(path))?;
        let real = if hidden {
            None
        } else {
            missing_is_none(std::fs::read_dir(&real_dir))?
        };
        if private.is_none() && real.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory {}", real_dir.display()),
            ));
        }
        for entry in private.into_iter().flatten() {
            if let Ok(name) = entry?.file_name().into_string() {
                names.insert(name);
            }
        }
        let changes = self.changes();
        for entry in real.into_iter().flatten() {
            let entry = entry?;
            if changes.hidden.contains(&entry.path()) {
                continue;
            }
            if let Ok(name) = entry.file_name().into_string() {
                names.insert(name);
            }
        }
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.visible_real(path)? {
            Some(real) => {
                self.changes().hidden.insert(real);
                Ok(())
            }
            None => std::fs::remove_file(path),
        }
    }

    /// Hides the real directory (the private one mirrors it, so both may exist).
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let real = self.real_path(path)?;
        if real.is_dir() {
            self.changes().hidden.insert(real);
        }
        match std::fs::remove_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.visible_real(from)?.is_some() {
            return Err(refused("rename", from));
        }
        std::fs::rename(from, to)?;
        // The private file now stands for `to`; a real one of that name is out of view.
        if let Ok(real) = self.real_path(to) {
            self.changes().hidden.insert(real);
        }
        Ok(())
    }

    /// Nothing real changes through this layer; the private directory is thrown away.
    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    /// The real store is not locked: readers take no lock (a writer may hold it; the caller
    /// retries an open it disturbs, see `crate::settle`), and `kv repair` holds a shared one
    /// of its own. The private directory is this process's alone.
    fn lock_dir(&self, _dir: &Path) -> kv_wal::Result<Option<kv_wal::DirLock>> {
        Ok(None)
    }
}

fn missing_is_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A real file, read-only, whose length the view may have cut.
#[derive(Debug)]
struct ViewFile {
    file: File,
    path: PathBuf,
    length: Arc<AtomicU64>,
}

impl WalFile for ViewFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let length = self.length.load(Ordering::Acquire);
        let Some(left) = length.checked_sub(offset).filter(|&left| left > 0) else {
            return Ok(0);
        };
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        read_at_retrying(&self.file, &mut buf[..want], offset)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(refused("write to", &self.path))
    }

    /// Nothing was written through this layer, so there is nothing to make durable.
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    /// A cut shortens what the view shows; the file itself keeps every byte.
    fn set_len(&self, len: u64) -> io::Result<()> {
        let shown = self.length.load(Ordering::Acquire);
        if len > shown {
            return Err(refused("extend", &self.path));
        }
        self.length.store(len, Ordering::Release);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.length.load(Ordering::Acquire))
    }

    /// The real file's data regions, within the length the view shows.
    fn data_after(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let length = self.length.load(Ordering::Acquire);
        Ok(kv_wal::fs::data_region_after(&self.file, offset)?
            .map(|(start, end)| (start, end.min(length)))
            .filter(|&(start, end)| start < end))
    }

    /// Reserving space matters only to writes, which this layer refuses.
    fn allocate(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_sees_its_changes_and_the_store_keeps_every_byte() {
        let real = tempfile::tempdir().unwrap();
        let shown = tempfile::tempdir().unwrap();
        std::fs::create_dir(real.path().join("wal")).unwrap();
        std::fs::create_dir(shown.path().join("wal")).unwrap();
        std::fs::write(real.path().join("wal/000000.wal"), b"abcdef").unwrap();
        std::fs::write(real.path().join("garbage.tmp"), b"x").unwrap();
        let view = ReadOnlyView::new(shown.path().to_path_buf(), real.path().to_path_buf());
        let at = |name: &str| shown.path().join(name);

        let file = view.open(&at("wal/000000.wal"), OpenMode::Write).unwrap();
        file.set_len(3).unwrap();
        assert_eq!(file.size().unwrap(), 3);
        let mut buf = [0u8; 6];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        let again = view.open(&at("wal/000000.wal"), OpenMode::Read).unwrap();
        assert_eq!(again.size().unwrap(), 3, "a cut holds for later opens");
        assert!(file.write_all_at(b"x", 0).is_err());
        assert!(file.set_len(10).is_err());

        view.remove_file(&at("garbage.tmp")).unwrap();
        assert_eq!(view.read_dir(shown.path()).unwrap(), ["wal"]);

        let new = view.open(&at("MANIFEST.tmp"), OpenMode::CreateNew).unwrap();
        new.write_all_at(b"m", 0).unwrap();
        view.rename(&at("MANIFEST.tmp"), &at("MANIFEST")).unwrap();
        assert_eq!(view.read_dir(shown.path()).unwrap(), ["MANIFEST", "wal"]);
        assert!(view.rename(&at("wal/000000.wal"), &at("x")).is_err());

        assert_eq!(
            std::fs::read(real.path().join("wal/000000.wal")).unwrap(),
            b"abcdef"
        );
        assert!(real.path().join("garbage.tmp").exists());
        assert!(!real.path().join("MANIFEST").exists());
    }
}
