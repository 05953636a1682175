//! The manifest: which snapshot is current and where the log continues after it.
//!
//! ```text
//! magic "KVMANIF1" (8) | snapshot id u64 LE (0 = none) | first log segment u64 LE | CRC-32C u32 LE
//! ```
//!
//! It is replaced atomically: written to `MANIFEST.tmp`, fsynced, renamed over `MANIFEST`, and
//! the directory fsynced. A crash leaves either the old manifest or the new one, and a stray
//! `MANIFEST.tmp` that opening removes.

use std::io::ErrorKind;
use std::path::Path;

use kv_wal::fs::{FileSystem, OpenMode};

use crate::error::{Error, Result};

/// The manifest's file name in the store's directory.
pub const MANIFEST: &str = "MANIFEST";
/// Where a new manifest is written before it replaces the old one.
pub const MANIFEST_TMP: &str = "MANIFEST.tmp";

const MAGIC: &[u8; 8] = b"KVMANIF1";
const LEN: usize = 8 + 8 + 8 + 4;

/// What the manifest says. A directory without one (what nori-wal writes) is a log with no
/// snapshot, read from its first segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Manifest {
    /// The current snapshot's id, if there is one.
    pub snapshot: Option<u64>,
    /// The first log segment to replay after the snapshot.
    pub log_from: u64,
}

impl Manifest {
    /// The manifest's bytes, as [`write`](Self::write) stores them.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.snapshot.unwrap_or(0).to_le_bytes());
        out[16..24].copy_from_slice(&self.log_from.to_le_bytes());
        let crc = crc32c::crc32c(&out[..24]);
        out[24..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a manifest's bytes; `Err` says what is wrong.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Manifest, &'static str> {
        if bytes.len() != LEN {
            return Err("wrong length");
        }
        if &bytes[..8] != MAGIC {
            return Err("not a manifest");
        }
        let crc = u32::from_le_bytes(bytes[24..].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&bytes[..24]) {
            return Err("checksum mismatch");
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Ok(Manifest {
            snapshot: Some(word(8)).filter(|&id| id != 0),
            log_from: word(16),
        })
    }

    /// Reads the manifest of `dir`, if it has one.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let file = match fs.open(&path, OpenMode::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let size = file.size().map_err(|e| Error::io("read", &path, e))?;
        let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX).min(LEN + 1)];
        let mut read = 0;
        while read < bytes.len() {
            match file.read_at(&mut bytes[read..], read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) => return Err(Error::io("read", &path, e)),
            }
        }
        bytes.truncate(read);
        Manifest::decode(&bytes)
            .map(Some)
            .map_err(|reason| Error::CorruptManifest { path, reason })
    }

    /// Makes this the manifest of `dir`, atomically and durably.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let tmp = dir.join(MANIFEST_TMP);
        match fs.remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", tmp, e)),
        }
        let file = fs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &tmp, e))?;
        file.write_all_at(&self.encode(), 0)
            .map_err(|e| Error::io("write", &tmp, e))?;
        file.sync_data().map_err(|e| Error::io("sync", &tmp, e))?;
        drop(file);
        let path = dir.join(MANIFEST);
        fs.rename(&tmp, &path)
            .map_err(|e| Error::io("rename a new manifest to", &path, e))?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io("sync the directory", dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_wal::fs::StdFileSystem;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::read(&StdFileSystem, dir.path()).unwrap(), None);
        let manifest = Manifest {
            snapshot: Some(7),
            log_from: 42,
        };
        manifest.write(&StdFileSystem, dir.path()).unwrap();
        assert_eq!(
            Manifest::read(&StdFileSystem, dir.path()).unwrap(),
            Some(manifest)
        );
        Manifest::default()
            .write(&StdFileSystem, dir.path())
            .unwrap();
        assert_eq!(
            Manifest::read(&StdFileSystem, dir.path()).unwrap(),
            Some(Manifest::default())
        );
        for at in 0..LEN {
            let mut bytes = manifest.encode();
            bytes[at] ^= 1;
            assert!(Manifest::decode(&bytes).is_err(), "flip at {at}");
        }
        assert!(Manifest::decode(&manifest.encode()[..LEN - 1]).is_err());
        std::fs::write(dir.path().join(MANIFEST), b"garbage").unwrap();
        let err = Manifest::read(&StdFileSystem, dir.path()).unwrap_err();
        assert!(matches!(err, Error::CorruptManifest { .. }), "{err}");
    }
}
