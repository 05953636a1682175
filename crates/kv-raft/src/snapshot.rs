//! A snapshot's data: the files of a store checkpoint, opened, to be streamed to a follower
//! file by file and chunk by chunk (never as one buffer), and received the same way.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::files::{create_dir_durably, sync_dir};

/// The data of a snapshot: every file of a store checkpoint, held open, so that the snapshot
/// stays readable while it is sent even if a newer one replaces it on disk meanwhile.
///
/// To send one: [`files`](Self::files) lists each file's path (relative to the snapshot) and
/// length; [`read_at`](Self::read_at) reads a chunk of one. To receive one:
/// [`SnapshotInbox::receive`](crate::SnapshotInbox::receive).
#[derive(Debug, Clone)]
pub struct SnapshotData {
    inner: Arc<Files>,
}

#[derive(Debug)]
struct Files {
    dir: PathBuf,
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, u64, File)>,
    /// A received snapshot's directory is its own: removed when the last handle drops,
    /// unless an install took it ([`SnapshotData::take_dir`]). openraft drops a received
    /// snapshot without installing it when it is not newer than what is committed or the
    /// vote changed; left behind, each would be a full store copy until the next open.
    received: Option<AtomicBool>,
}

impl Drop for Files {
    fn drop(&mut self) {
        if self
            .received
            .as_ref()
            .is_some_and(|taken| !taken.load(Ordering::Acquire))
        {
            // Best effort: a removal a crash undoes leaves garbage the next open removes.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl SnapshotData {
    /// Opens every file under `dir`.
    pub(crate) fn open(dir: &Path) -> Result<SnapshotData> {
        Self::open_as(dir, None)
    }

    fn open_as(dir: &Path, received: Option<AtomicBool>) -> Result<SnapshotData> {
        let mut files = Files {
            dir: dir.to_path_buf(),
            dirs: Vec::new(),
            files: Vec::new(),
            received,
        };
        walk(dir, Path::new(""), &mut files)?;
        Ok(SnapshotData {
            inner: Arc::new(files),
        })
    }

    /// Whether this is a snapshot received into its own directory (by a
    /// [`SnapshotWriter`]), which an install may move into place instead of copying.
    pub(crate) fn is_received(&self) -> bool {
        self.inner.received.is_some()
    }

    /// Marks a received snapshot's directory as taken by an install (renamed into place):
    /// dropping the last handle no longer removes it.
    pub(crate) fn take_dir(&self) {
        if let Some(taken) = &self.inner.received {
            taken.store(true, Ordering::Release);
        }
    }

    /// The directory the snapshot was opened from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The sub-directories of the snapshot (relative paths, parents first): a receiver
    /// creates them even when empty.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.inner.dirs.iter().map(PathBuf::as_path)
    }

    /// Every file of the snapshot: its path relative to the snapshot, and its length.
    pub fn files(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.inner
            .files
            .iter()
            .map(|(p, len, _)| (p.as_path(), *len))
    }

    /// Total bytes of the snapshot's files.
    pub fn len(&self) -> u64 {
        self.inner.files.iter().map(|(_, len, _)| len).sum()
    }

    /// Whether the snapshot holds no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads from the `file`-th file (in the order of [`files`](Self::files)) at `offset`
    /// into `buf`; returns how many bytes were read (0 at its end).
    ///
    /// # Errors
    ///
    /// The operating system's, or `InvalidInput` for a file number out of range.
    pub fn read_at(&self, file: usize, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let (_, len, f) = self.inner.files.get(file).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no such snapshot file")
        })?;
        if offset >= *len {
            return Ok(0);
        }
        let want = buf.len().min((*len - offset) as usize);
        f.read_at(&mut buf[..want], offset)
    }

    /// Copies the snapshot into the new directory `target`, every file and directory
    /// synced: once this returns, the copy is durable.
    pub(crate) fn copy_to(&self, target: &Path) -> Result<()> {
        create_dir_durably(target)?;
        for dir in &self.inner.dirs {
            let path = target.join(dir);
            fs::create_dir(&path).map_err(|e| Error::io("create", &path, e))?;
        }
        let mut buf = vec![0; 1 << 20];
        for (index, (rel, len, _)) in self.inner.files.iter().enumerate() {
            let path = target.join(rel);
            let out = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
            let mut at = 0;
            while at < *len {
                let n = self.read_at(index, at, &mut buf).map_err(|e| {
                    Error::io("read the snapshot file", self.inner.dir.join(rel), e)
                })?;
                if n == 0 {
                    return Err(Error::Corrupt(format!(
                        "the snapshot file {} ended before its length",
                        self.inner.dir.join(rel).display()
                    )));
                }
                out.write_all_at(&buf[..n], at)
                    .map_err(|e| Error::io("write", &path, e))?;
                at += n as u64;
            }
            out.sync_all().map_err(|e| Error::io("sync", &path, e))?;
        }
        sync_tree_dirs(target, &self.inner.dirs)
    }
}

/// Syncs every directory of a tree, deepest first, then `root`.
fn sync_tree_dirs(root: &Path, dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs.iter().rev() {
        sync_dir(&root.join(dir))?;
    }
    sync_dir(root)
}

fn walk(root: &Path, rel: &Path, out: &mut Files) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| Error::io("list", &dir, e))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io("list", &dir, e))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = fs::metadata(&path).map_err(|e| Error::io("inspect", &path, e))?;
        if meta.is_dir() {
            out.dirs.push(rel.clone());
            walk(root, &rel, out)?;
        } else {
            let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            out.files.push((rel, meta.len(), file));
        }
    }
    Ok(())
}

/// A snapshot being received into a directory of the state machine's: create its
/// directories, write its files' chunks, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct SnapshotWriter {
    dir: PathBuf,
    dirs: Vec<PathBuf>,
    open: Option<(PathBuf, File)>,
    /// Whether `finish` made it a snapshot; a writer dropped before (a transfer that
    /// failed) removes what it wrote.
    finished: bool,
    /// Whether a call failed. The writer is then failed for good and `finish` refuses: a
    /// failed write or sync may have lost data, and syncing the files again through new
    /// descriptors (as `finish` does) can succeed on Linux without reporting an earlier
    /// writeback failure.
    failed: bool,
}

impl SnapshotWriter {
    pub(crate) fn create(dir: PathBuf) -> Result<SnapshotWriter> {
        create_dir_durably(&dir)?;
        Ok(SnapshotWriter {
            dir,
            dirs: Vec::new(),
            open: None,
            finished: false,
            failed: false,
        })
    }

    /// Creates the directory `rel` (relative to the snapshot; its parent must exist).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for a path that is not a plain relative one; [`Error::Io`].
    pub fn create_dir(&mut self, rel: &Path) -> Result<()> {
        let result = self.try_create_dir(rel);
        self.failed |= result.is_err();
        result
    }

    fn try_create_dir(&mut self, rel: &Path) -> Result<()> {
        self.refuse_if_failed()?;
        let path = self.dir.join(checked(rel)?);
        fs::create_dir(&path).map_err(|e| Error::io("create", &path, e))?;
        self.dirs.push(rel.to_path_buf());
        Ok(())
    }

    fn refuse_if_failed(&self) -> Result<()> {
        if self.failed {
            return Err(Error::Corrupt(format!(
                "an earlier write of the snapshot being received into {} failed: it cannot \
                 be finished; receive it again",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Writes `bytes` at `offset` of the file `rel` (relative to the snapshot), creating it.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for a path that is not a plain relative one; [`Error::Io`].
    pub fn write(&mut self, rel: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
        let result = self.try_write(rel, offset, bytes);
        self.failed |= result.is_err();
        result
    }

    fn try_write(&mut self, rel: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
        self.refuse_if_failed()?;
        if self.open.as_ref().is_none_or(|(p, _)| p != rel) {
            self.close_file()?;
            let path = self.dir.join(checked(rel)?);
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("create", &path, e))?;
            self.open = Some((rel.to_path_buf(), file));
        }
        let (_, file) = self.open.as_ref().expect("opened above");
        file.write_all_at(bytes, offset)
            .map_err(|e| Error::io("write", self.dir.join(rel), e))
    }

    /// Syncs and closes the file being written. A failure fails the writer (the caller
    /// marks it): the error is reported once, on this descriptor.
    fn close_file(&mut self) -> Result<()> {
        if let Some((rel, file)) = &self.open {
            file.sync_all()
                .map_err(|e| Error::io("sync", self.dir.join(rel), e))?;
        }
        self.open = None;
        Ok(())
    }

    /// Makes what was written durable and opens it as a snapshot, for
    /// [`openraft::Raft::install_full_snapshot`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::Corrupt`] when an earlier call of this writer failed.
    pub fn finish(mut self) -> Result<SnapshotData> {
        self.refuse_if_failed()?;
        self.close_file()?;
        // Every file was synced on the descriptor it was written through, each time the
        // writer moved to another file (`close_file`): a sync through a new descriptor
        // would prove nothing more.
        let data = SnapshotData::open_as(&self.dir, Some(AtomicBool::new(false)))?;
        // From here on the directory is the data's: removed with its last handle.
        self.finished = true;
        sync_tree_dirs(&self.dir, &self.dirs)?;
        Ok(data)
    }
}

impl SnapshotWriter {
    /// [`finish`](Self::finish), then checks that the snapshot received holds exactly the
    /// files the sender listed ([`SnapshotData::files`] on its side: each path and length),
    /// so that a chunk lost in transfer is an error here rather than damage found at install.
    ///
    /// # Errors
    ///
    /// As [`finish`](Self::finish); [`Error::Corrupt`] when the files differ from the list
    /// (what was received is then removed).
    pub fn finish_expecting<'a>(
        self,
        files: impl IntoIterator<Item = (&'a Path, u64)>,
    ) -> Result<SnapshotData> {
        let data = self.finish()?;
        let mut expected: Vec<(&Path, u64)> = files.into_iter().collect();
        expected.sort();
        let mut received: Vec<(&Path, u64)> = data.files().collect();
        received.sort();
        if received != expected {
            return Err(Error::Corrupt(format!(
                "the snapshot received into {} holds {} files of {} bytes, the sender listed \
                 {} files of {} bytes",
                data.dir().display(),
                received.len(),
                received.iter().map(|(_, len)| len).sum::<u64>(),
                expected.len(),
                expected.iter().map(|(_, len)| len).sum::<u64>(),
            )));
        }
        Ok(data)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: what is left is garbage the next open removes anyway.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `rel` if it is a plain relative path (no `..`, no root): a sender cannot write outside
/// the snapshot's directory.
fn checked(rel: &Path) -> Result<&Path> {
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::Corrupt(format!(
            "a snapshot path {} is not a plain relative path",
            rel.display()
        )));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before: `finish` went on after a failed write, syncing the files anew, and returned a
    /// snapshot missing what the failed write held.
    #[test]
    fn after_a_failed_write_the_writer_refuses_to_finish() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SnapshotWriter::create(dir.path().join("in")).unwrap();
        writer.write(Path::new("first"), 0, b"kept").unwrap();
        writer.create_dir(Path::new("sub")).unwrap();
        // A file where a directory is: the open fails.
        assert!(matches!(
            writer.write(Path::new("sub"), 0, b"lost"),
            Err(Error::Io { .. })
        ));
        assert!(writer.write(Path::new("later"), 0, b"x").is_err());
        assert!(matches!(writer.finish(), Err(Error::Corrupt(_))));
        // And what it wrote is gone with it.
        assert!(!dir.path().join("in").exists());
    }

    #[test]
    fn a_snapshot_unlike_the_senders_list_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let list = [(Path::new("a"), 4), (Path::new("b"), 2)];
        let mut writer = SnapshotWriter::create(dir.path().join("in")).unwrap();
        writer.write(Path::new("a"), 0, b"abcd").unwrap();
        writer.write(Path::new("b"), 0, b"x").unwrap();
        assert!(matches!(
            writer.finish_expecting(list),
            Err(Error::Corrupt(_))
        ));
        assert!(!dir.path().join("in").exists());
        let mut writer = SnapshotWriter::create(dir.path().join("in")).unwrap();
        writer.write(Path::new("b"), 0, b"xy").unwrap();
        writer.write(Path::new("a"), 0, b"abcd").unwrap();
        let data = writer.finish_expecting(list).unwrap();
        assert_eq!(data.len(), 6);
    }

    #[test]
    fn a_sender_cannot_write_outside_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../escape", "/etc/passwd", "a/../../b", ""] {
            let mut writer = SnapshotWriter::create(dir.path().join("in")).unwrap();
            assert!(
                matches!(
                    writer.write(Path::new(bad), 0, b"x"),
                    Err(Error::Corrupt(_))
                ),
                "{bad:?} was accepted"
            );
            // Such a sender's transfer is over.
            assert!(writer.finish().is_err());
        }
        assert!(!dir.path().join("escape").exists());
        let mut writer = SnapshotWriter::create(dir.path().join("in")).unwrap();
        writer.write(Path::new("manifest"), 0, b"ok").unwrap();
        let data = writer.finish().unwrap();
        assert_eq!(
            data.files().collect::<Vec<_>>(),
            [(Path::new("manifest"), 2)]
        );
    }
}
