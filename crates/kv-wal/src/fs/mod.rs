//! The file layer: the one seam through which the log touches the disk.
//!
//! Everything the log does to files goes through [`FileSystem`] and [`WalFile`], so tests can
//! swap in a layer that fails on command (the `fault-injection` feature's
//! `fault::FaultyFileSystem`), or one whose power can be cut (`volatile::VolatileFileSystem`),
//! and check what survives.

#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(feature = "fault-injection")]
pub mod volatile;
mod window;

pub use window::WriteWindow;

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::lock::DirLock;

/// Creates `dir` and whichever of its parents are missing, and makes each new name durable
/// by syncing the directory it was made in: a directory created but never synced in its
/// parent can vanish in a power loss with everything synced inside it. Directories that
/// already exist are left as they are.
///
/// # Errors
///
/// The error of the creation or of a directory sync, as the file layer returned it.
pub fn create_dir_all_durably(fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if fs.read_dir(path).is_ok() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)?;
    for made in missing.iter().rev() {
        let parent = made
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs.sync_dir(parent)?;
    }
    Ok(())
}

/// An open file of the log.
///
/// # Errors
///
/// Every method returns the operating system's error (or the one a test layer injects) as
/// it is: the log decides what it means.
pub trait WalFile: Send + Sync + Debug {
    /// Reads into `buf` from `offset`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file's length, cutting or extending it with zeros.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn size(&self) -> io::Result<u64>;
    /// Reserves disk blocks up to `len` bytes without changing what reads return.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Drops the file's clean pages from the page cache (`posix_fadvise(DONTNEED)`), so that
    /// reads that follow come from the disk. After a failed `fdatasync` Linux keeps the pages
    /// that never reached the disk in the cache, clean: a reopen in the same boot would read
    /// them as if they were there. Best effort; by default it does nothing (a layer with no
    /// page cache).
    fn drop_cached_pages(&self) -> io::Result<()> {
        Ok(())
    }
    /// Brings `[offset, offset + len)` into the page cache ahead of writes to it, so that
    /// they find their pages there: see `ahead.rs`.
    /// Best effort; by default it does nothing.
    fn warm(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// The first region holding data at or after `offset`, as `[start, end)`: what
    /// `SEEK_DATA` and `SEEK_HOLE` answer. Every byte outside such regions reads as zero, so
    /// recovery skips the preallocated tail without reading it. `Ok(None)` when no data
    /// follows. By default the whole file is one region of data (a correct answer for any
    /// layer, only slower to scan).
    fn data_after(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        let size = self.size()?;
        Ok((offset < size).then_some((offset, size)))
    }
    /// Maps `[offset, offset + len)`, which `allocate` reserved, for appends by memory copy;
    /// `Ok(None)` where the layer cannot (the log then writes with `write_all_at`).
    fn map_window(&self, offset: u64, len: usize) -> io::Result<Option<WriteWindow>> {
        let _ = (offset, len);
        Ok(None)
    }
}

/// How [`FileSystem::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    Write,
    /// Read and write; the file must not exist yet.
    CreateNew,
}

/// Directory operations of the log, and the way it opens files.
///
/// # Errors
///
/// Every method returns the operating system's error (or the one a test layer injects) as
/// it is, but `lock_dir`, which is [`Error::DirectoryLocked`](crate::Error::DirectoryLocked)
/// when another handle holds the directory.
pub trait FileSystem: Send + Sync + Debug {
    /// Opens the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (fsync on the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Keeps any other handle from opening the log in `dir` while the returned lock lives:
    /// by default a [`DirLock`] on the directory `dir` itself in the real file system (so
    /// `dir` must exist there). A layer whose files are not on the real disk (in memory)
    /// locks nothing.
    fn lock_dir(&self, dir: &Path) -> crate::Result<Option<DirLock>> {
        DirLock::acquire(dir).map(Some)
    }
}

/// The real file system, through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

/// A file of the real file system.
#[derive(Debug)]
struct StdFile {
    file: File,
    /// Whether the file lies on a file system where a write window is safe
    /// ([`window::writes_in_place`]), found out at the first mapping and kept: a log that
    /// cannot map tries at every append.
    window_allowed: OnceLock<bool>,
}

impl StdFile {
    /// Opens `path`; `fs_type`, if given, is taken for the `statfs` magic number of its file
    /// system instead of asking the kernel (a test's way to run as on another one).
    fn open(path: &Path, mode: OpenMode, fs_type: Option<u32>) -> io::Result<StdFile> {
        let mut options = OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::Write => {
                options.write(true);
            }
            OpenMode::CreateNew => {
                options.write(true).create_new(true);
            }
        }
        let window_allowed = OnceLock::new();
        if let Some(fs_type) = fs_type {
            let _ = window_allowed.set(window::writes_in_place(fs_type));
        }
        Ok(StdFile {
            file: options.open(path)?,
            window_allowed,
        })
    }
}

impl WalFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        // Mode 0, not KEEP_SIZE: the file's length covers the reserved blocks, so an append
        // inside them changes no metadata and fdatasync has only data to flush (measured here:
        // 9,400 syncs/s against 6,100/s on a growing file). A crash leaves a zero tail, which
        // recovery knows is free space.
        rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len)
            .map_err(io::Error::from)
    }

    fn map_window(&self, offset: u64, len: usize) -> io::Result<Option<WriteWindow>> {
        // A file system that cannot say what it is gets no window either.
        let allowed = *self.window_allowed.get_or_init(|| {
            window::file_system_type(&self.file).is_ok_and(window::writes_in_place)
        });
        if !allowed {
            return Ok(None);
        }
        WriteWindow::map(&self.file, offset, len).map(Some)
    }

    fn data_after(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        data_region_after(&self.file, offset)
    }

    fn drop_cached_pages(&self) -> io::Result<()> {
        rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
    }

    fn warm(&self, offset: u64, len: u64) -> io::Result<()> {
        // Read, not `posix_fadvise(WILLNEED)`: measured here, that advice left a 256 MiB
        // preallocated file's pages to be made by the first writes into them (a
        // `MADV_POPULATE_WRITE` of it took 500 ms after it, 22 ms after reading the file).
        let mut buf = vec![0; WARM_CHUNK];
        let end = offset.saturating_add(len);
        let mut at = offset;
        while at < end {
            let want = usize::try_from(end - at).map_or(WARM_CHUNK, |left| left.min(WARM_CHUNK));
            match self.file.read_at(&mut buf[..want], at)? {
                0 => break,
                read => at += read as u64,
            }
        }
        Ok(())
    }
}

/// How much [`WalFile::warm`] reads at a time.
const WARM_CHUNK: usize = 256 << 10;

/// [`WalFile::data_after`] for a real file: `SEEK_DATA`, then `SEEK_HOLE`. Blocks reserved
/// by `fallocate` and never written are holes to both (ext4, XFS, btrfs, tmpfs). A file
/// system that cannot say answers as if the whole file were data, as does any error here: the
/// answer only saves reading zeros. Only positional reads and writes use the descriptor, so
/// moving its offset disturbs nothing.
///
/// # Errors
///
/// The operating system's error; callers read the whole file then.
pub fn data_region_after(file: &File, offset: u64) -> io::Result<Option<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let size = file.metadata()?.len();
    if offset >= size {
        return Ok(None);
    }
    let start = match seek(file, SeekFrom::Data(offset)) {
        Ok(start) => start,
        Err(rustix::io::Errno::NXIO) => return Ok(None),
        Err(_) => return Ok(Some((offset, size))),
    };
    match seek(file, SeekFrom::Hole(start)) {
        Ok(end) if end > start => Ok(Some((start, end))),
        _ => Ok(Some((start, size))),
    }
}

impl FileSystem for StdFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>> {
        Ok(Arc::new(StdFile::open(path, mode, None)?))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}
