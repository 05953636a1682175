//! A write window: part of a preallocated segment mapped into memory, so an append is a
//! memory copy instead of a system call.
//!
//! Why: a `pwrite` costs about a microsecond here whatever its size, which caps a single
//! writer near 600,000 small appends a second; a copy into a shared file mapping costs tens of
//! nanoseconds. The bytes land in the same page cache a `pwrite` fills, so a process that is
//! killed right after the copy loses nothing, `fdatasync` on the file makes them durable, and
//! reads through the file see them. The window is a few MiB, remapped as appends move on, so
//! the process's resident memory does not grow with the log.
//!
//! Where there is no window:
//! - On copy-on-write file systems (btrfs, bcachefs, ZFS: [`is_copy_on_write`]). There a
//!   write to a block, even one `fallocate` reserved, goes to a newly allocated block, so
//!   the page fault or writeback of a store into the mapping can meet a full disk, and the
//!   process gets SIGBUS instead of an error it could handle. The log writes with `pwrite`
//!   there, whose failure is an error like any other.
//! - A segment truncated by another process while mapped (one that ignores the directory
//!   lock: the log's own handles never do) makes the next store past the new end raise
//!   SIGBUS, which kills the process before it acknowledges that write. Nothing the log
//!   acknowledged is lost to it, since what was cut was gone anyway; preventing it would take
//!   a SIGBUS handler, which this crate does not install.
//!
//! This is the one module of the crate with `unsafe` code.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::atomic::{compiler_fence, Ordering};

use memmap2::{MmapMut, MmapOptions};

/// `statfs` magic numbers (`f_type`) of file systems that copy blocks on write.
const COPY_ON_WRITE_MAGICS: [u32; 3] = [
    0x9123_683E, // btrfs
    0xCA45_1A4E, // bcachefs
    0x2FC1_2FC1, // ZFS (OpenZFS on Linux)
];

/// Whether a file system with `statfs` magic number `f_type` copies blocks on write.
fn copies_on_write(f_type: u32) -> bool {
    COPY_ON_WRITE_MAGICS.contains(&f_type)
}

/// Whether `file` lies on a file system that copies blocks on write, where a write window
/// could SIGBUS on a full disk (see the module's documentation).
pub(crate) fn is_copy_on_write(file: &File) -> io::Result<bool> {
    let stat = rustix::fs::fstatfs(file)?;
    // `f_type` is a signed long on some targets and 32 bits on others; the magic numbers
    // are 32-bit values either way.
    Ok(copies_on_write(stat.f_type as u32))
}

/// A writable mapping of `[offset, offset + len)` of a segment file.
#[derive(Debug)]
pub struct WriteWindow {
    map: MmapMut,
    offset: u64,
}

impl WriteWindow {
    /// Maps `[offset, offset + len)` of `file`, which must lie within blocks already
    /// allocated to the file (by `fallocate`); `offset` must be a multiple of the page size.
    pub(crate) fn map(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        // SAFETY: memmap2 requires that no one else changes the mapped file while it is
        // mapped, or the mapping could observe torn or vanished memory. The file is a segment
        // of a log directory this process holds the exclusive lock on, and the log writes the
        // segment only through this window or `pwrite`s the kernel keeps coherent with it. The
        // range lies within blocks `fallocate` reserved (the caller checks) on a file system
        // that writes in place (`StdFile::map_window` checks `is_copy_on_write`), so touching
        // it cannot fault for want of disk space, and the log drops the window before any
        // `set_len` that could shrink the file under it. Another process that ignores the
        // lock and truncates the file is the case the module's documentation describes.
        let map = unsafe { MmapOptions::new().offset(offset).len(len).map_mut(file)? };
        Ok(WriteWindow { map, offset })
    }

    /// The first byte of the file the window covers.
    pub fn start(&self) -> u64 {
        self.offset
    }

    /// One past the last byte of the file the window covers.
    pub fn end(&self) -> u64 {
        self.offset + self.map.len() as u64
    }

    /// Whether `[at, at + len)` of the file lies inside the window.
    pub fn covers(&self, at: u64, len: usize) -> bool {
        at >= self.start() && at + len as u64 <= self.end()
    }

    /// Copies `bytes` to file offset `at`, which the window must cover.
    ///
    /// The copy goes strictly forward, eight bytes per store, so that a process killed in the
    /// middle of it leaves a prefix of `bytes` in the page cache: a torn tail that recovery
    /// cuts. A plain `memcpy` may store a unit's first bytes last (glibc's large-copy path
    /// does), which would leave a zero header in front of complete records: damage in the
    /// middle of the log, which recovery refuses. What is stored before a kill is what was
    /// issued before it, whatever the processor's store order, so program order is enough.
    pub fn write(&mut self, at: u64, bytes: &[u8]) {
        assert!(self.covers(at, bytes.len()), "write outside the window");
        let from = (at - self.offset) as usize;
        let target = &mut self.map[from..from + bytes.len()];
        let mut words = target.chunks_exact_mut(8).zip(bytes.chunks_exact(8));
        for (to, word) in words.by_ref() {
            to.copy_from_slice(word);
            // Keeps the compiler from merging or reordering these stores.
            compiler_fence(Ordering::SeqCst);
        }
        let done = bytes.len() - bytes.len() % 8;
        for (to, byte) in target[done..].iter_mut().zip(&bytes[done..]) {
            *to = *byte;
            compiler_fence(Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btrfs_bcachefs_and_zfs_copy_on_write_and_others_do_not() {
        for magic in COPY_ON_WRITE_MAGICS {
            assert!(copies_on_write(magic), "{magic:#x}");
        }
        // ext4 (ext2/3 share it), XFS, tmpfs.
        for magic in [0xEF53, 0x5846_5342, 0x0102_1994] {
            assert!(!copies_on_write(magic), "{magic:#x}");
        }
    }

    #[test]
    fn the_file_system_of_the_test_directory_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let f_type = rustix::fs::fstatfs(&file).unwrap().f_type as u32;
        assert_eq!(is_copy_on_write(&file).unwrap(), copies_on_write(f_type));
        // The test machines run ext4, XFS or tmpfs: a window is used there.
        if [0xEF53, 0x5846_5342, 0x0102_1994].contains(&f_type) {
            assert!(!is_copy_on_write(&file).unwrap());
        }
    }
}
