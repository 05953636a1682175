//! The manifest: which snapshot is current, how to tell it is whole, and where the log
//! continues after it.
//!
//! ```text
//! version 1: magic "KVMANIF1" (8) | snapshot id u64 LE (0 = none) | first log segment u64 LE
//!            | CRC-32C u32 LE                                                    (28 bytes)
//! version 2: magic "KVMANIF2" (8) | snapshot id u64 LE (never 0) | first log segment u64 LE
//!            | snapshot records u64 LE | snapshot bytes u64 LE | snapshot CRC-32 u32 LE
//!            | CRC-32C u32 LE of everything before                               (48 bytes)
//! version 3: as version 2, magic "KVMANIF3": the snapshot is laid out in parts (48 bytes)
//! ```
//!
//! Version 2 names a snapshot together with its sum ([`SnapshotSum`]: its record count, the
//! bytes of its segments and a checksum over all of them), so that a snapshot cut short at a
//! record boundary, emptied, or with a segment lost is refused at open; its own records'
//! checksums cannot tell. A manifest without a snapshot is written as version 1, which every
//! version reads; version 1 manifests naming a snapshot (written before sums existed) are
//! still read, and their snapshot is checked record by record only.
//!
//! The version also says how the snapshot is laid out ([`SnapshotLayout`]): versions 1 and 2
//! name a snapshot written as one log, version 3 one written in parts, loaded at once (see
//! `parts.rs`). Version 3's sum covers its part files and its index of parts, and its
//! checksum is the index's (which holds each part's own).
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

const MAGIC_V1: &[u8; 8] = b"KVMANIF1";
const MAGIC_V2: &[u8; 8] = b"KVMANIF2";
const MAGIC_V3: &[u8; 8] = b"KVMANIF3";
/// The newest version this build reads and writes.
const NEWEST_VERSION: u8 = 3;
const LEN_V1: usize = 8 + 8 + 8 + 4;
const LEN_V2: usize = 8 + 8 + 8 + 8 + 8 + 4 + 4;

/// How a snapshot's records are laid out in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotLayout {
    /// One log of put records (segments `000000.wal`, ...), replayed like the store's log:
    /// what manifests of versions 1 and 2 name.
    #[default]
    Log,
    /// Part files of put records and an index of them (`PARTS`), loaded at once: what a
    /// manifest of version 3 names.
    Parts,
}

/// What a whole snapshot is: compared at load with what its directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotSum {
    /// Records (one per live entry) written to it.
    pub records: u64,
    /// Bytes of its files: its segments ([`SnapshotLayout::Log`]), or its parts and their
    /// index ([`SnapshotLayout::Parts`]).
    pub bytes: u64,
    /// CRC-32 (IEEE; see `snapshot.rs` for why not CRC-32C) of its segments, in segment
    /// order ([`SnapshotLayout::Log`]), or of its index of parts ([`SnapshotLayout::Parts`]).
    pub crc: u32,
    /// How its records are laid out.
    pub layout: SnapshotLayout,
}

/// What the manifest says. A directory without one (what nori-wal writes) is a log with no
/// snapshot, read from its first segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Manifest {
    /// The current snapshot's id, if there is one.
    pub snapshot: Option<u64>,
    /// The first log segment to replay after the snapshot.
    pub log_from: u64,
    /// The snapshot's sum; `None` for a manifest written before sums existed (or without a
    /// snapshot).
    pub sum: Option<SnapshotSum>,
}

impl Manifest {
    /// The manifest's bytes, as [`write`](Self::write) stores them: version 2 or 3 (by the
    /// snapshot's layout) when it names a snapshot with its sum, version 1 otherwise.
    pub fn encode(&self) -> Vec<u8> {
        let (snapshot, sum) = match (self.snapshot, self.sum) {
            (Some(id), Some(sum)) if id != 0 => (id, sum),
            _ => {
                let mut out = Vec::with_capacity(LEN_V1);
                out.extend_from_slice(MAGIC_V1);
                out.extend_from_slice(&self.snapshot.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&self.log_from.to_le_bytes());
                let crc = crc32c::crc32c(&out);
                out.extend_from_slice(&crc.to_le_bytes());
                return out;
            }
        };
        let mut out = Vec::with_capacity(LEN_V2);
        out.extend_from_slice(match sum.layout {
            SnapshotLayout::Log => MAGIC_V2,
            SnapshotLayout::Parts => MAGIC_V3,
        });
        out.extend_from_slice(&snapshot.to_le_bytes());
        out.extend_from_slice(&self.log_from.to_le_bytes());
        out.extend_from_slice(&sum.records.to_le_bytes());
        out.extend_from_slice(&sum.bytes.to_le_bytes());
        out.extend_from_slice(&sum.crc.to_le_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a manifest's bytes (either version); `Err` says what is wrong.
    ///
    /// # Errors
    ///
    /// What is wrong, when the bytes are not a manifest of a known version or fail their
    /// checksum.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Manifest, &'static str> {
        let len = match bytes.get(..8) {
            Some(magic) if magic == MAGIC_V1 => LEN_V1,
            Some(magic) if magic == MAGIC_V2 || magic == MAGIC_V3 => LEN_V2,
            _ => return Err("not a manifest"),
        };
        if bytes.len() != len {
            return Err("wrong length");
        }
        let body = len - 4;
        let crc = u32::from_le_bytes(bytes[body..].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&bytes[..body]) {
            return Err("checksum mismatch");
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let snapshot = Some(word(8)).filter(|&id| id != 0);
        let sum = if len == LEN_V2 {
            if snapshot.is_none() {
                return Err("a snapshot sum without a snapshot");
            }
            Some(SnapshotSum {
                records: word(24),
                bytes: word(32),
                crc: u32::from_le_bytes(bytes[40..44].try_into().expect("4 bytes")),
                layout: if &bytes[..8] == MAGIC_V3 {
                    SnapshotLayout::Parts
                } else {
                    SnapshotLayout::Log
                },
            })
        } else {
            None
        };
        Ok(Manifest {
            snapshot,
            log_from: word(16),
            sum,
        })
    }

    /// Reads the manifest of `dir`, if it has one.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptManifest`] when it is damaged; [`Error::Io`] when it cannot be read.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let file = match fs.open(&path, OpenMode::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let size = file.size().map_err(|e| Error::io("read", &path, e))?;
        let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX).min(LEN_V2 + 1)];
        let mut read = 0;
        while read < bytes.len() {
            match file.read_at(&mut bytes[read..], read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) => return Err(Error::io("read", &path, e)),
            }
        }
        bytes.truncate(read);
        if let Some(version) = newer_version(&bytes) {
            return Err(Error::NewerManifest {
                path,
                version,
                known: NEWEST_VERSION,
            });
        }
        Manifest::decode(&bytes)
            .map(Some)
            .map_err(|reason| Error::CorruptManifest { path, reason })
    }

    /// Makes this the manifest of `dir`, atomically and durably.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a step fails; the old manifest stays unless the rename was done.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        self.write_staged(fs, dir).map_err(|(_, e)| e)
    }

    /// [`write`](Self::write), saying on failure whether the old manifest is certainly still
    /// in force.
    pub(crate) fn write_staged(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
    ) -> std::result::Result<(), (Stage, Error)> {
        let before = |e| (Stage::BeforeRename, e);
        let tmp = dir.join(MANIFEST_TMP);
        match fs.remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(before(Error::io("remove", tmp, e))),
        }
        let file = fs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| before(Error::io("create", &tmp, e)))?;
        file.write_all_at(&self.encode(), 0)
            .map_err(|e| before(Error::io("write", &tmp, e)))?;
        file.sync_data()
            .map_err(|e| before(Error::io("sync", &tmp, e)))?;
        drop(file);
        let path = dir.join(MANIFEST);
        let renaming = |e| (Stage::Renaming, e);
        fs.rename(&tmp, &path)
            .map_err(|e| renaming(Error::io("rename a new manifest to", &path, e)))?;
        fs.sync_dir(dir)
            .map_err(|e| renaming(Error::io("sync the directory", dir, e)))
    }
}

/// How far a failed [`Manifest::write_staged`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// It failed before the rename: the old manifest is in force.
    BeforeRename,
    /// The rename or the directory sync after it failed: which manifest the disk keeps is
    /// unknown.
    Renaming,
}

/// The version a manifest's magic names, when it is `KVMANIF` and a digit past the newest
/// version this build knows: a newer kv wrote it. Damage is told apart: any other start
/// (version 0 never existed), and a manifest of a known version whose digit was flipped
/// (its checksum, which covers the magic, holds again once the digit is put back).
fn newer_version(bytes: &[u8]) -> Option<u8> {
    let digit = *bytes.strip_prefix(&MAGIC_V1[..7])?.first()?;
    let version = digit.is_ascii_digit().then(|| digit - b'0')?;
    let flipped = || {
        (1..=NEWEST_VERSION).any(|known| {
            let mut restored = bytes.to_vec();
            restored[7] = b'0' + known;
            Manifest::decode(&restored).is_ok()
        })
    };
    (version > NEWEST_VERSION && !flipped()).then_some(version)
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
            sum: Some(SnapshotSum {
                records: 5,
                bytes: 300,
                crc: 0xdead_beef,
                layout: SnapshotLayout::Log,
            }),
        };
        let parts = Manifest {
            sum: manifest.sum.map(|sum| SnapshotSum {
                layout: SnapshotLayout::Parts,
                ..sum
            }),
            ..manifest
        };
        parts.write(&StdFileSystem, dir.path()).unwrap();
        assert_eq!(
            Manifest::read(&StdFileSystem, dir.path()).unwrap(),
            Some(parts)
        );
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
        let old = Manifest {
            sum: None,
            ..manifest
        };
        for manifest in [manifest, old, parts] {
            let encoded = manifest.encode();
            for at in 0..encoded.len() {
                let mut bytes = encoded.clone();
                bytes[at] ^= 1;
                assert!(Manifest::decode(&bytes).is_err(), "flip at {at}");
            }
            assert!(Manifest::decode(&encoded[..encoded.len() - 1]).is_err());
        }
        std::fs::write(dir.path().join(MANIFEST), b"garbage").unwrap();
        let err = Manifest::read(&StdFileSystem, dir.path()).unwrap_err();
        assert!(matches!(err, Error::CorruptManifest { .. }), "{err}");
    }

    /// A manifest of a version past this build's is not damage: a typed error that names
    /// its version. A known manifest whose version digit is flipped, version 0, and a digit
    /// that is not one stay damage.
    #[test]
    fn a_newer_version_is_told_apart_from_damage() {
        let dir = tempfile::tempdir().unwrap();
        let read = |bytes: &[u8]| {
            std::fs::write(dir.path().join(MANIFEST), bytes).unwrap();
            Manifest::read(&StdFileSystem, dir.path()).unwrap_err()
        };
        for (magic, len) in [(b"KVMANIF4", 60), (b"KVMANIF9", 8), (b"KVMANIF4", 48)] {
            let mut bytes = magic.to_vec();
            bytes.resize(len, 0xa5);
            let err = read(&bytes);
            let version = magic[7] - b'0';
            assert!(
                matches!(err, Error::NewerManifest { version: v, known: 3, .. } if v == version),
                "{err}"
            );
            assert!(err.to_string().contains("newer version of kv"), "{err}");
        }
        let manifest = Manifest {
            snapshot: Some(4),
            log_from: 9,
            sum: Some(SnapshotSum {
                records: 10,
                bytes: 500,
                crc: 3,
                layout: SnapshotLayout::Parts,
            }),
        };
        let damaged = |bytes: &[u8]| {
            let err = read(bytes);
            assert!(matches!(err, Error::CorruptManifest { .. }), "{err}");
        };
        let mut flipped = manifest.encode();
        flipped[7] ^= 0x04; // '3' -> '7'
        damaged(&flipped);
        let mut zero = manifest.encode();
        zero[7] = b'0';
        damaged(&zero);
        let mut letter = manifest.encode();
        letter[7] = b'x';
        damaged(&letter);
    }
}

#[cfg(test)]
mod versions {
    use super::*;

    /// A manifest as the previous version wrote it, byte by byte.
    #[test]
    fn reads_a_version_1_manifest() {
        let mut bytes = b"KVMANIF1".to_vec();
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(&9u64.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let manifest = Manifest::decode(&bytes).unwrap();
        assert_eq!(
            manifest,
            Manifest {
                snapshot: Some(3),
                log_from: 9,
                sum: None
            }
        );
        assert_eq!(manifest.encode(), bytes);
    }

    #[test]
    fn a_sum_is_written_as_version_2_and_only_with_a_snapshot() {
        let sum = SnapshotSum {
            records: 1,
            bytes: 2,
            crc: 3,
            layout: SnapshotLayout::Log,
        };
        let with = Manifest {
            snapshot: Some(1),
            log_from: 2,
            sum: Some(sum),
        };
        assert_eq!(&with.encode()[..8], MAGIC_V2);
        assert_eq!(with.encode().len(), LEN_V2);
        assert_eq!(Manifest::decode(&with.encode()), Ok(with));
        // Version 2 with snapshot id 0 is refused: a sum names a snapshot.
        let mut bytes = with.encode();
        bytes[8..16].copy_from_slice(&0u64.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..LEN_V2 - 4]);
        bytes[LEN_V2 - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(Manifest::decode(&bytes).is_err());
    }
}

#[cfg(test)]
mod layouts {
    use super::*;

    /// The layout is the version: a manifest of version 2 (what the previous version wrote
    /// for every compaction) still names a snapshot written as a log.
    #[test]
    fn version_2_names_a_log_and_version_3_parts() {
        for (layout, magic) in [
            (SnapshotLayout::Log, MAGIC_V2),
            (SnapshotLayout::Parts, MAGIC_V3),
        ] {
            let manifest = Manifest {
                snapshot: Some(4),
                log_from: 5,
                sum: Some(SnapshotSum {
                    records: 6,
                    bytes: 7,
                    crc: 8,
                    layout,
                }),
            };
            let bytes = manifest.encode();
            assert_eq!(&bytes[..8], magic);
            assert_eq!(Manifest::decode(&bytes), Ok(manifest));
        }
    }
}
