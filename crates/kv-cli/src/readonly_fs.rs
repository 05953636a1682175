//! A file layer for `kv verify` that reads a store's log where it lies and refuses every
//! change, so that checking a log cannot alter it whatever the layers above try.
//!
//! Opening a log in place is not read-only even in `RecoveryMode::Strict`: closing cuts the
//! zero tail a crash leaves in a preallocated segment, and the log's exclusive lock would
//! shut out other readers. So `verify` opens a private directory holding only an empty
//! `wal/`, and this layer maps every path under it onto the store's directory: the lock
//! (which the log takes without this layer) is taken on the private directory, and every
//! file is opened read-only, whatever mode is asked for. Writes, truncation,
//! allocation, creation, removal and renames fail with `PermissionDenied`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kv_wal::fs::{FileSystem, OpenMode, WalFile};

/// Maps the directory the store is opened with onto the real one, read-only.
#[derive(Debug)]
pub struct ReadOnlyLog {
    /// The store directory the store is opened with (private to this process).
    shown: PathBuf,
    /// The store's real directory.
    real: PathBuf,
}

impl ReadOnlyLog {
    /// A layer that serves `shown` from `real`.
    pub fn new(shown: PathBuf, real: PathBuf) -> Self {
        ReadOnlyLog { shown, real }
    }

    /// A removal changes nothing when there is nothing to remove: then the answer is the real
    /// one, `NotFound` (opening a store removes what a crash may have left, if it is there).
    fn refuse_removal(&self, path: &Path) -> io::Result<()> {
        let real = self.real_path(path)?;
        match std::fs::symlink_metadata(&real) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            _ => Err(refused("remove", &real)),
        }
    }

    fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        real_path(&self.shown, &self.real, path, WHO)
    }
}

/// Who refuses, in this layer's messages.
const WHO: &str = "kv verify";

fn refused(what: &str, path: &Path) -> io::Error {
    refusal(WHO, what, path)
}

/// The real path that `path`, under the private directory `shown`, stands for under `real`;
/// refused (by `who`) outside it. Shared by the read-only layers.
pub(crate) fn real_path(shown: &Path, real: &Path, path: &Path, who: &str) -> io::Result<PathBuf> {
    match path.strip_prefix(shown) {
        Ok(rest) => Ok(real.join(rest)),
        Err(_) => Err(refusal(who, "reach outside the store", path)),
    }
}

/// A read-only layer's refusal to `what` `path`.
pub(crate) fn refusal(who: &str, what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{who} changes nothing: refused to {what} {}",
            path.display()
        ),
    )
}

impl FileSystem for ReadOnlyLog {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>> {
        if mode == OpenMode::CreateNew {
            return Err(refused("create", path));
        }
        let real = self.real_path(path)?;
        Ok(Arc::new(ReadOnlyFile {
            file: File::open(&real)?,
            path: real,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let real = self.real_path(path)?;
        if real.is_dir() {
            Ok(())
        } else {
            Err(refused("create the directory", &real))
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.real_path(path)?)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.refuse_removal(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.refuse_removal(path)
    }

    fn rename(&self, from: &Path, _to: &Path) -> io::Result<()> {
        Err(refused("rename", from))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        Err(refused("sync the directory", path))
    }
}

/// A segment opened read-only.
#[derive(Debug)]
struct ReadOnlyFile {
    file: File,
    path: PathBuf,
}

/// `read_at`, again after an interruption by a signal.
pub(crate) fn read_at_retrying(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

impl WalFile for ReadOnlyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_at_retrying(&self.file, buf, offset)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(refused("write to", &self.path))
    }

    /// Nothing was written through this layer, so there is nothing to make durable.
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(refused("change the length of", &self.path))
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// So that checking a crashed store skips its preallocated zeros without reading them.
    fn data_after(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        kv_wal::fs::data_region_after(&self.file, offset)
    }

    fn allocate(&self, _len: u64) -> io::Result<()> {
        Err(refused("allocate space in", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_open_read_only_and_refuse_changes() {
        let real = tempfile::tempdir().unwrap();
        std::fs::write(real.path().join("000000.wal"), b"abc").unwrap();
        let layer = ReadOnlyLog::new(PathBuf::from("/shown/wal"), real.path().to_path_buf());

        assert_eq!(
            layer.read_dir(Path::new("/shown/wal")).unwrap(),
            ["000000.wal"]
        );
        let file = layer
            .open(Path::new("/shown/wal/000000.wal"), OpenMode::Write)
            .unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), 3);
        assert_eq!(&buf, b"abc");
        for e in [
            file.write_all_at(b"x", 0).unwrap_err(),
            file.set_len(0).unwrap_err(),
            file.allocate(100).unwrap_err(),
            layer
                .open(Path::new("/shown/wal/000001.wal"), OpenMode::CreateNew)
                .err()
                .unwrap(),
            layer
                .remove_file(Path::new("/shown/wal/000000.wal"))
                .unwrap_err(),
            layer.remove_dir(Path::new("/shown/wal")).unwrap_err(),
            layer
                .open(Path::new("/elsewhere"), OpenMode::Read)
                .err()
                .unwrap(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        }
        assert_eq!(
            layer
                .remove_file(Path::new("/shown/wal/MISSING"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound,
            "removing what is not there is answered as the file system would"
        );
        assert_eq!(
            std::fs::read(real.path().join("000000.wal")).unwrap(),
            b"abc"
        );
    }
}
