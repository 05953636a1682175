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
//! - On every file system but those known to write a preallocated block in place: ext2/3/4,
//!   XFS and tmpfs ([`writes_in_place`]). Elsewhere a store into the mapping may need a block
//!   that was not reserved: btrfs, bcachefs and ZFS copy every written block to a new one,
//!   and overlayfs (Docker), FUSE, NFS or ecryptfs report their own type whatever lies below
//!   them (overlayfs over btrfs copies too). Then the page fault or writeback of the store can
//!   meet a full disk, and the process gets SIGBUS instead of an error it could handle. The
//!   log writes with `pwrite` there, whose failure is an error like any other. A list of what
//!   is safe, not of what is not: a file system this crate does not know gets the slower
//!   path, never the SIGBUS. (A Docker volume is a bind mount: it reports the host's file
//!   system, and gets a window where the host's does.) One case the list does not catch: on
//!   XFS, blocks a segment shares with a reflinked copy of it (`cp --reflink`) are copied on
//!   their first write, reserved or not.
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

/// `statfs` magic numbers (`f_type`) of file systems where a write into blocks `fallocate`
/// reserved goes to those blocks, so that it needs no new space.
const IN_PLACE_MAGICS: [u32; 3] = [
    0xEF53,      // ext2, ext3 and ext4 share it
    0x5846_5342, // XFS ("XFSB")
    0x0102_1994, // tmpfs (its reserved pages are the file's pages)
];

/// Whether a file system with `statfs` magic number `f_type` is one where a write window is
/// safe (see the module's documentation).
pub(crate) fn writes_in_place(f_type: u32) -> bool {
    IN_PLACE_MAGICS.contains(&f_type)
}

/// The `statfs` magic number of the file system `file` lies on.
pub(crate) fn file_system_type(file: &File) -> io::Result<u32> {
    let stat = rustix::fs::fstatfs(file)?;
    // `f_type` is a signed long on some targets and 32 bits on others; the magic numbers
    // are 32-bit values either way.
    Ok(stat.f_type as u32)
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
        // that writes in place (`StdFile::map_window` checks `writes_in_place`), so touching
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

    /// Faults in `[at, at + len)` of the file (clipped to the window) writable, in one
    /// call, ahead of the copies that will land there (`MADV_POPULATE_WRITE`). Best effort:
    /// a kernel without it (before Linux 5.14) leaves the copies to fault one page at a time.
    pub fn prefault(&self, at: u64, len: u64) {
        let from = at.max(self.offset).min(self.end());
        let to = at.saturating_add(len).min(self.end());
        if to > from {
            let _ = self.map.advise_range(
                memmap2::Advice::PopulateWrite,
                (from - self.offset) as usize,
                (to - from) as usize,
            );
        }
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
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// Whether a window must be allowed on a file system the kernel's mount table names
    /// `fs_type`: the allow-list written out by name, apart from the magic numbers.
    fn expected_by_name(fs_type: &str) -> bool {
        matches!(fs_type, "ext2" | "ext3" | "ext4" | "xfs" | "tmpfs")
    }

    /// The file system type `/proc/self/mountinfo` gives for the mount holding `path`: the
    /// one with the file's device number, else the longest mount point above the path.
    fn mounted_type(path: &Path) -> String {
        let dev = std::fs::metadata(path).unwrap().dev();
        let device = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
        let path = path.canonicalize().unwrap();
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut by_prefix: Option<(usize, String)> = None;
        for line in table.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-").unwrap();
            let fs_type = fields[dash + 1].to_string();
            if fields[2] == device {
                return fs_type;
            }
            let mount_point = Path::new(fields[4]);
            let len = mount_point.as_os_str().len();
            if path.starts_with(mount_point) && by_prefix.as_ref().is_none_or(|(l, _)| len >= *l) {
                by_prefix = Some((len, fs_type));
            }
        }
        by_prefix.expect("no mount holds the path").1
    }

    fn allowed(file: &File) -> bool {
        writes_in_place(file_system_type(file).unwrap())
    }

    #[test]
    fn only_file_systems_that_write_reserved_blocks_in_place_are_allowed() {
        for (name, magic) in [
            ("ext4", 0xEF53),
            ("XFS", 0x5846_5342),
            ("tmpfs", 0x0102_1994),
        ] {
            assert!(writes_in_place(magic), "{name}");
        }
        for (name, magic) in [
            ("btrfs", 0x9123_683E),
            ("bcachefs", 0xCA45_1A4E),
            ("ZFS", 0x2FC1_2FC1),
            ("overlayfs", 0x794C_7630),
            ("FUSE", 0x6573_5546),
            ("NFS", 0x6969),
            ("ecryptfs", 0xF15F),
            ("CIFS", 0xFF53_4D42),
            ("F2FS", 0xF2F5_2010),
        ] {
            assert!(!writes_in_place(magic), "{name}");
        }
    }

    #[test]
    fn the_test_directory_gets_a_window_as_its_mount_table_entry_says() {
        // Test directories under the system's temporary directory and under this crate.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in [
            tempfile::tempdir().unwrap(),
            tempfile::tempdir_in(here).unwrap(),
        ] {
            let path = dir.path().join("segment");
            let file = File::create(&path).unwrap();
            let fs_type = mounted_type(&path);
            assert_eq!(allowed(&file), expected_by_name(&fs_type), "{fs_type}");
        }
    }

    #[test]
    fn tmpfs_gets_a_window_and_procfs_does_not() {
        if Path::new("/dev/shm").is_dir() {
            let dir = tempfile::tempdir_in("/dev/shm").unwrap();
            let path = dir.path().join("segment");
            let file = File::create(&path).unwrap();
            assert_eq!(allowed(&file), mounted_type(&path) == "tmpfs");
        }
        let status = Path::new("/proc/self/status");
        assert_eq!(mounted_type(status), "proc");
        assert!(!allowed(&File::open(status).unwrap()));
    }

    #[test]
    fn prefaulting_changes_no_byte_and_stays_inside_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(1 << 20).unwrap();
        let mut window = WriteWindow::map(&file, 256 << 10, 256 << 10).unwrap();
        window.write(256 << 10, b"record");
        // Inside, across the end, before the start, wholly past it: none may fail or write.
        window.prefault(256 << 10, 64 << 10);
        window.prefault(448 << 10, 256 << 10);
        window.prefault(0, 300 << 10);
        window.prefault(900 << 10, 64 << 10);
        drop(window);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        assert_eq!(&bytes[256 << 10..(256 << 10) + 6], b"record");
        let zeros = bytes
            .iter()
            .enumerate()
            .filter(|(i, _)| !((256 << 10)..(256 << 10) + 6).contains(i))
            .all(|(_, &b)| b == 0);
        assert!(zeros, "a prefault wrote a byte");
    }
}
