//! Snapshots: the live entries of a store, in a directory of their own.
//!
//! A snapshot is one put record per live entry (the log's record format, deadlines absolute,
//! values compressed as the store compresses them) in `snapshots/<id>/`. It is written in
//! parts with an index of them (`parts.rs`, [`SnapshotLayout::Parts`]), loaded at once on
//! several threads. Snapshots written before parts existed are a nori-wal log
//! ([`SnapshotLayout::Log`]), replayed by the same code as the store's log; the manifest's
//! version says which a snapshot is, and both are loaded. A snapshot is built in
//! `snapshots/<id>.tmp/`, synced, and renamed into place: a snapshot directory without the
//! suffix is complete.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kv_durable::{load_log, CompressionPolicy, LogReplay, Sink};
use kv_wal::fs::FileSystem;
use kv_wal::{Encoded, Expiry, FsyncPolicy, RecoveryMode, SizeLimits, WalConfig};

use crate::error::{Error, Result};
use crate::manifest::{SnapshotLayout, SnapshotSum};
use crate::pace::Pace;
use crate::parts::{self, PartsWriter};

/// The directory of snapshots inside the store's directory.
pub const SNAPSHOTS: &str = "snapshots";
/// The suffix of a snapshot being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// The segment size of a snapshot written as a log (it is read with it).
const SEGMENT_SIZE: u64 = 1 << 30;

/// The name of snapshot `id`'s directory in `snapshots/`.
pub(crate) fn snapshot_name(id: u64) -> String {
    format!("{id:06}")
}

/// The directory of snapshot `id` in the store directory `dir`.
pub fn snapshot_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(SNAPSHOTS).join(snapshot_name(id))
}

/// The directory snapshot `id` is written in until it is complete.
pub(crate) fn tmp_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(SNAPSHOTS).join(format!("{id:06}{TMP_SUFFIX}"))
}

fn config(path: PathBuf, fs: &Arc<dyn FileSystem>, limits: SizeLimits) -> WalConfig {
    WalConfig::new(path)
        .file_system(Arc::clone(fs))
        .fsync_policy(FsyncPolicy::Os)
        .preallocate(false)
        .write_window(false)
        .max_segment_size(SEGMENT_SIZE)
        .recovery_mode(RecoveryMode::Strict)
        .limits(limits)
}

/// Removes directory `path` and the files in it; a missing directory is not an error.
pub(crate) fn remove_dir_all(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    let names = match fs.read_dir(path) {
        Ok(names) => names,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", path, e)),
    };
    for name in names {
        let file = path.join(name);
        fs.remove_file(&file)
            .map_err(|e| Error::io("remove", &file, e))?;
    }
    fs.remove_dir(path)
        .map_err(|e| Error::io("remove the directory", path, e))
}

/// How entries are encoded into a snapshot: checked against the limits, values compressed
/// as the store compresses them, deadlines absolute.
#[derive(Debug, Clone, Copy)]
pub struct Encoding {
    compression: CompressionPolicy,
    limits: SizeLimits,
}

impl Encoding {
    /// Appends the put record of one live entry (`deadline` in unix ms) to `out`.
    ///
    /// # Errors
    ///
    /// [`kv_wal::Error::KeyTooLarge`] or [`kv_wal::Error::ValueTooLarge`] over the size
    /// limits.
    pub fn push(
        &self,
        out: &mut Encoded,
        key: &[u8],
        value: &[u8],
        deadline: Option<u64>,
    ) -> kv_wal::Result<()> {
        self.limits.check_lengths(key.len(), value.len())?;
        out.push_put(
            key,
            value,
            deadline.map_or(Expiry::Never, Expiry::AtUnixMillis),
            self.compression.for_len(value.len()),
        );
        Ok(())
    }
}

/// Writes snapshot `id` of the store in `dir`, in parts: the records of each shard, encoded
/// elsewhere (with [`Encoding`], on any thread), are appended in the order given.
#[derive(Debug)]
pub struct SnapshotWriter {
    id: u64,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    parts: PartsWriter,
    encoding: Encoding,
}

impl SnapshotWriter {
    /// Starts snapshot `id` of a state of `shards` shards in `dir/snapshots/<id>.tmp/`,
    /// replacing any leftover of an earlier attempt.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be made.
    pub fn create(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        id: u64,
        shards: usize,
        compression: CompressionPolicy,
        limits: SizeLimits,
    ) -> Result<Self> {
        let tmp = tmp_dir(dir, id);
        remove_dir_all(fs.as_ref(), &tmp)?;
        // A finished snapshot of this id can only be left by a compaction that failed before
        // its manifest named it: garbage, and in the way of the rename.
        remove_dir_all(fs.as_ref(), &snapshot_dir(dir, id))?;
        kv_wal::fs::create_dir_all_durably(fs.as_ref(), &tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        Ok(SnapshotWriter {
            id,
            dir: dir.to_path_buf(),
            fs: Arc::clone(fs),
            parts: PartsWriter::new(fs, &tmp, shards),
            encoding: Encoding {
                compression,
                limits,
            },
        })
    }

    /// Writes at `pace`'s rate (by default as fast as the disk takes it).
    pub(crate) fn paced(mut self, pace: Pace) -> Self {
        self.parts = self.parts.paced(pace);
        self
    }

    /// How this snapshot's entries are to be encoded.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Appends the encoded records of one shard (every shard once, empty or not: parts are
    /// cut between shards, and inside one that would take a part past its size).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a part cannot be created, written or synced.
    pub fn write(&mut self, encoded: &Encoded) -> Result<()> {
        self.parts.write_shard(encoded)
    }

    /// Writes the rest, syncs, and renames the snapshot into place (then syncs the
    /// snapshots directory): from here on it is complete and durable. Returns its sum, for
    /// the manifest that will name it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a write, a sync or the rename fails; the snapshot is then not in
    /// place.
    pub fn finish(self) -> Result<SnapshotSum> {
        let id = self.id;
        let (tmp, done) = (tmp_dir(&self.dir, id), snapshot_dir(&self.dir, id));
        // Every part, the index and the directory's names are durable before the rename.
        let sum = self.parts.finish()?;
        self.fs
            .rename(&tmp, &done)
            .map_err(|e| Error::io("rename the finished snapshot to", &done, e))?;
        let parent = self.dir.join(SNAPSHOTS);
        self.fs
            .sync_dir(&parent)
            .map_err(|e| Error::io("sync the directory", &parent, e))?;
        Ok(sum)
    }
}

/// The ids of the segments of the log in `path`, in order.
fn segment_ids(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs
        .read_dir(path)
        .map_err(|e| Error::io("list", path, e))?
        .iter()
        .filter_map(|name| kv_wal::segment::parse_file_name(name))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The total length of the segments of the log in `path`, from their sizes.
fn segments_len(fs: &dyn FileSystem, path: &Path) -> Result<u64> {
    let mut bytes = 0;
    for id in segment_ids(fs, path)? {
        let file_path = path.join(kv_wal::segment::file_name(id));
        let file = fs
            .open(&file_path, kv_wal::fs::OpenMode::Read)
            .map_err(|e| Error::io("open", &file_path, e))?;
        bytes += file.size().map_err(|e| Error::io("read", &file_path, e))?;
    }
    Ok(bytes)
}

/// The length and CRC-32 of the segments of the log in `path`, in segment order.
///
/// CRC-32 (IEEE), not the log's CRC-32C: every record ends with the CRC-32C of its own
/// bytes, and a CRC-32C run over such records depends only on their lengths (each record
/// brings the register back to the same residue), so it could not tell two snapshots of
/// valid records of the same lengths apart.
fn segments_sum(fs: &dyn FileSystem, path: &Path) -> Result<(u64, u32)> {
    let ids = segment_ids(fs, path)?;
    let mut bytes = 0u64;
    let mut crc = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    for id in ids {
        let file_path = path.join(kv_wal::segment::file_name(id));
        let file = fs
            .open(&file_path, kv_wal::fs::OpenMode::Read)
            .map_err(|e| Error::io("open", &file_path, e))?;
        let mut at = 0u64;
        loop {
            let read = file
                .read_at(&mut buffer, at)
                .map_err(|e| Error::io("read", &file_path, e))?;
            if read == 0 {
                break;
            }
            crc.update(&buffer[..read]);
            at += read as u64;
        }
        bytes += at;
    }
    Ok((bytes, crc.finalize()))
}

/// Loads snapshot `id` of the store in `dir` into `sink` at time `now`, laid out as `sum`
/// says (a log when there is no sum). The snapshot must be whole: any damage, a torn tail
/// included, is an error, and so is a snapshot whose files differ from `sum` (the manifest's
/// record of it, if it has one): shorter, longer or altered, even at a record boundary, or
/// a part missing.
pub fn load<S: Sink>(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    id: u64,
    sum: Option<SnapshotSum>,
    sink: &S,
    now: u64,
    limits: SizeLimits,
) -> Result<LogReplay> {
    // The manifest names it, so it must be there: opening it as a log would create it.
    let path = snapshot_dir(dir, id);
    let names = fs
        .read_dir(&path)
        .map_err(|e| Error::io("open the snapshot the manifest names", &path, e))?;
    if let Some(sum) = sum.filter(|sum| sum.layout == SnapshotLayout::Parts) {
        return parts::load(fs, &path, &names, id, sum, sink, now, limits);
    }
    if !names
        .iter()
        .any(|name| kv_wal::segment::parse_file_name(name).is_some())
    {
        return Err(Error::io(
            "find a segment in the snapshot the manifest names",
            &path,
            std::io::Error::from(ErrorKind::NotFound),
        ));
    }
    let damaged = |reason: String| Error::CorruptSnapshot {
        id,
        path: path.clone(),
        reason,
    };
    // The length before anything else: replaying opens the snapshot as a log, and closing
    // that cuts a tail of zeros, so a snapshot lengthened by zeros would be changed before
    // it was found different (and then match its sum).
    if let Some(sum) = sum {
        let bytes = segments_len(fs.as_ref(), &path)?;
        if bytes != sum.bytes {
            return Err(damaged(format!(
                "its segments hold {bytes} bytes, the manifest says {}",
                sum.bytes
            )));
        }
    }
    // Records next: damage inside one is reported with its segment and offset.
    let replayed = load_log(config(path.clone(), fs, limits), sink, now)
        .map_err(|source| Error::Load { id, source })?;
    if let Some(sum) = sum {
        let (bytes, crc) = segments_sum(fs.as_ref(), &path)?;
        if bytes != sum.bytes {
            return Err(damaged(format!(
                "its segments hold {bytes} bytes, the manifest says {}",
                sum.bytes
            )));
        }
        if crc != sum.crc {
            return Err(damaged(format!(
                "its checksum is {crc:#010x}, the manifest says {:#010x}",
                sum.crc
            )));
        }
    }
    match sum {
        Some(sum) if replayed.records != sum.records => Err(damaged(format!(
            "it holds {} records, the manifest says {}",
            replayed.records, sum.records
        ))),
        _ => Ok(replayed),
    }
}
