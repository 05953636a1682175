//! A file layer that fails on command, for crash and fault tests.
//!
//! [`FaultyFileSystem`] passes every call through to [`StdFileSystem`] and counts it; a
//! [`Faults`] handle, shared with the test, makes the n-th call of a kind fail. A test first
//! counts the calls of a clean run, then replays the run once per call with that call failing,
//! and checks what a reopened log holds each time.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{FileSystem, OpenMode, StdFile, StdFileSystem, WalFile, WriteWindow};

/// The kinds of call the faulty layer can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `WalFile::write_all_at`.
    Write,
    /// `WalFile::sync_data`.
    Sync,
    /// `WalFile::set_len`.
    SetLen,
    /// `WalFile::allocate`.
    Allocate,
    /// `WalFile::read_at`.
    Read,
    /// `FileSystem::open`.
    Open,
    /// `FileSystem::remove_file` and `FileSystem::remove_dir`.
    Remove,
    /// `FileSystem::rename`.
    Rename,
    /// `FileSystem::sync_dir`.
    SyncDir,
    /// `WalFile::drop_cached_pages`.
    DropCache,
}

/// What a failing call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with an I/O error of this kind, doing nothing.
    Error(io::ErrorKind),
    /// Fails with "no space left on device" (ENOSPC), doing nothing.
    DiskFull,
    /// For writes: writes the first `keep` bytes, then fails, as a crash in mid-write would.
    TornWrite {
        /// How many bytes reach the file.
        keep: usize,
    },
    /// Waits, then fails with an I/O error: a call still failing while other threads go on.
    SlowError {
        /// How long the call takes before it fails.
        millis: u64,
    },
}

impl Fault {
    fn error(self) -> io::Error {
        match self {
            Fault::Error(kind) => io::Error::new(kind, "injected fault"),
            Fault::DiskFull => io::Error::from_raw_os_error(28),
            Fault::TornWrite { .. } => io::Error::other("injected torn write"),
            Fault::SlowError { .. } => io::Error::other("injected slow failure"),
        }
    }
}

#[derive(Debug)]
struct Rule {
    op: Op,
    skip: u64,
    fault: Fault,
    sticky: bool,
}

#[derive(Debug, Default)]
struct Plan {
    rules: Vec<Rule>,
    counts: HashMap<Op, u64>,
}

/// The test's handle on a [`FaultyFileSystem`]: arms faults and counts calls.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
}

impl Faults {
    /// Makes the call of kind `op` that comes after `skip` more such calls fail once.
    pub fn fail_once(&self, op: Op, skip: u64, fault: Fault) {
        self.arm(op, skip, fault, false);
    }

    /// Makes every call of kind `op` fail, after `skip` more such calls succeed.
    pub fn fail_always(&self, op: Op, skip: u64, fault: Fault) {
        self.arm(op, skip, fault, true);
    }

    fn arm(&self, op: Op, skip: u64, fault: Fault, sticky: bool) {
        self.plan.lock().rules.push(Rule {
            op,
            skip,
            fault,
            sticky,
        });
    }

    /// Removes every armed fault.
    pub fn clear(&self) {
        self.plan.lock().rules.clear();
    }

    /// How many calls of kind `op` were made so far.
    pub fn count(&self, op: Op) -> u64 {
        self.plan.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// Counts a call of kind `op` and says whether it must fail.
    fn check(&self, op: Op) -> Option<Fault> {
        let mut plan = self.plan.lock();
        *plan.counts.entry(op).or_default() += 1;
        let index = plan.rules.iter().position(|rule| rule.op == op)?;
        let rule = &mut plan.rules[index];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let fault = rule.fault;
        if !rule.sticky {
            plan.rules.remove(index);
        }
        Some(fault)
    }

    fn pass(&self, op: Op) -> io::Result<()> {
        match self.check(op) {
            Some(fault @ Fault::SlowError { millis }) => {
                std::thread::sleep(std::time::Duration::from_millis(millis));
                Err(fault.error())
            }
            Some(fault) => Err(fault.error()),
            None => Ok(()),
        }
    }
}

/// The real file system, with faults injected on command through a [`Faults`] handle.
#[derive(Debug, Clone, Default)]
pub struct FaultyFileSystem {
    faults: Faults,
    /// `None`: files never take a write window, so every append is a counted
    /// `write_all_at`. `Some(magic)`: they take one where the real layer would give it on a
    /// file system with that `statfs` magic number.
    windows_as_on: Option<u32>,
}

impl FaultyFileSystem {
    /// A faulty file system and the handle that controls it. Its files take no write window.
    pub fn new() -> (Self, Faults) {
        Self::with_windows(None)
    }

    /// A faulty file system whose files take write windows where the real layer gives them
    /// on a file system of `statfs` magic number `fs_type` (0x794C7630 for overlayfs, say),
    /// whatever the test directory lies on: appends a window takes are not `Op::Write`s.
    pub fn with_windows_as_on(fs_type: u32) -> (Self, Faults) {
        Self::with_windows(Some(fs_type))
    }

    fn with_windows(windows_as_on: Option<u32>) -> (Self, Faults) {
        let faults = Faults::default();
        (
            FaultyFileSystem {
                faults: faults.clone(),
                windows_as_on,
            },
            faults,
        )
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn WalFile>,
    faults: Faults,
    /// Whether `map_window` goes through to the real file.
    windows: bool,
}

impl WalFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.faults.pass(Op::Read)?;
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.faults.check(Op::Write) {
            None => self.inner.write_all_at(buf, offset),
            Some(Fault::TornWrite { keep }) => {
                self.inner
                    .write_all_at(&buf[..keep.min(buf.len())], offset)?;
                Err(Fault::TornWrite { keep }.error())
            }
            Some(fault) => Err(fault.error()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.pass(Op::Sync)?;
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.pass(Op::SetLen)?;
        self.inner.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn drop_cached_pages(&self) -> io::Result<()> {
        self.faults.pass(Op::DropCache)?;
        self.inner.drop_cached_pages()
    }

    /// Not a call faults are injected into: an answer only saves reading zeros.
    fn data_after(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        self.inner.data_after(offset)
    }

    /// Not a call faults are injected into either: it changes no byte, and it runs on the
    /// warmer's thread, whose timing would make the count of calls before a fault vary.
    fn warm(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.warm(offset, len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.faults.pass(Op::Allocate)?;
        self.inner.allocate(len)
    }

    fn map_window(&self, offset: u64, len: usize) -> io::Result<Option<WriteWindow>> {
        if !self.windows {
            return Ok(None);
        }
        self.inner.map_window(offset, len)
    }
}

impl FileSystem for FaultyFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn WalFile>> {
        self.faults.pass(Op::Open)?;
        Ok(Arc::new(FaultyFile {
            inner: Arc::new(StdFile::open(path, mode, self.windows_as_on)?),
            faults: self.faults.clone(),
            windows: self.windows_as_on.is_some(),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFileSystem.create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFileSystem.read_dir(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.faults.pass(Op::Remove)?;
        StdFileSystem.remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.pass(Op::Remove)?;
        StdFileSystem.remove_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.pass(Op::Rename)?;
        StdFileSystem.rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.pass(Op::SyncDir)?;
        StdFileSystem.sync_dir(path)
    }
}
