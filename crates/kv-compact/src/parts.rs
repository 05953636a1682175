//! The parts layout of a snapshot (manifest version 3): its records in a few part files,
//! loaded at once on several threads, and an index of them.
//!
//! ```text
//! snapshots/<id>/part-0000 ... put records back to back, in the log's record format
//!                              (each with its CRC-32C), no seal, no other framing
//! snapshots/<id>/PARTS         magic "KVPARTS1" (8) | parts u32 LE
//!                              | per part: records u64 LE | bytes u64 LE | CRC-32 u32 LE
//!                              | CRC-32C u32 LE of everything before
//! ```
//!
//! A part holds records as the compaction read them, shard after shard, in that order. A
//! part ends between shards, or inside a shard (between two records) once it reaches
//! [`PART_BYTES`]: so a part is never much longer than that, whatever the size of a shard
//! (a load holds a few parts at once, never the snapshot). A shard split over parts is in
//! consecutive parts, in order: the later copy of a key (a shard's walk may give one twice)
//! is in the same part or a later one, and loading the parts in order keeps it.
//! The index gives each part's record count, length and CRC-32 (IEEE: a CRC-32C run over
//! records that end in their own CRC-32C depends only on their lengths), and the manifest
//! holds the sum of the whole: the records, the bytes of the parts and the index, and the
//! index's CRC-32. So a part cut short, lengthened, altered, swapped with another or missing,
//! and an index that does not match its parts, are all found at load, as damage.
//!
//! Nothing is deduplicated or sorted for the load: applying the parts in order gives the
//! state, so the loader is free to read them at once and to size each shard's table from
//! the counts before inserting ([`kv_durable::Sink::load_parts`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kv_durable::{op_of, ApplyOp, LogReplay, Sink};
use kv_wal::fs::{FileSystem, OpenMode, WalFile};
use kv_wal::{Compression, Decoded, Encoded, RecordKind, SizeLimits};

use crate::error::{Error, Result};
use crate::manifest::{SnapshotLayout, SnapshotSum};
use crate::pace::Pace;

/// The index of a snapshot's parts.
pub(crate) const INDEX: &str = "PARTS";
const INDEX_MAGIC: &[u8; 8] = b"KVPARTS1";
const INDEX_ENTRY: usize = 8 + 8 + 4;
/// More parts than this in an index is damage: a snapshot is written in at most
/// [`MAX_PARTS`].
const MAX_INDEX_PARTS: usize = 1 << 16;
/// Parts the shards are spread over (unless parts reach [`PART_BYTES`] first): enough to
/// spread a load over the cores (each worker reads whole parts), few enough that each part
/// is long.
pub(crate) const MAX_PARTS: usize = 8;
/// A part is ended before the record that would take it past this size (a record longer
/// than this gets a part of its own), inside a shard if need be: a load holds a copy of a
/// few parts at once, never of the whole snapshot, and a shard can be of any size (the
/// ordered index has as many shards as cores).
pub(crate) const PART_BYTES: u64 = 64 << 20;
/// Nor is a part ended, whatever its shards, before this size: every part costs the
/// compaction an fsync, and a small snapshot loads fast enough on one thread.
const MIN_PART_BYTES: u64 = 1 << 20;
/// Bytes a part is read in at a time (a record longer than this is read whole).
const READ_BUFFER: usize = 1 << 20;

/// The file name of part `i`.
pub(crate) fn part_name(i: usize) -> String {
    format!("part-{i:04}")
}

/// The number of the part named `name`, if it names one.
fn parse_part_name(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("part-")?;
    (digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What the index says of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PartSum {
    records: u64,
    bytes: u64,
    crc: u32,
}

fn encode_index(parts: &[PartSum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 + parts.len() * INDEX_ENTRY + 4);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for part in parts {
        out.extend_from_slice(&part.records.to_le_bytes());
        out.extend_from_slice(&part.bytes.to_le_bytes());
        out.extend_from_slice(&part.crc.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode_index(bytes: &[u8]) -> std::result::Result<Vec<PartSum>, &'static str> {
    if bytes.get(..8) != Some(INDEX_MAGIC) || bytes.len() < 8 + 4 + 4 {
        return Err("its index of parts is not one");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("its index of parts fails its checksum");
    }
    let count = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
    let entries = &body[12..];
    if count == 0 || count > MAX_INDEX_PARTS || entries.len() != count * INDEX_ENTRY {
        return Err("its index of parts has the wrong length");
    }
    Ok(entries
        .chunks_exact(INDEX_ENTRY)
        .map(|entry| PartSum {
            records: u64::from_le_bytes(entry[..8].try_into().expect("8 bytes")),
            bytes: u64::from_le_bytes(entry[8..16].try_into().expect("8 bytes")),
            crc: u32::from_le_bytes(entry[16..].try_into().expect("4 bytes")),
        })
        .collect())
}

/// Writes a snapshot's parts and index into its (temporary) directory: the records of
/// `shards_per_part` shards go into each part, in the order given, more while they hold
/// under [`MIN_PART_BYTES`]; and a part is cut at a record boundary, inside a shard if need
/// be, before it passes `part_bytes` ([`PART_BYTES`]).
#[derive(Debug)]
pub(crate) struct PartsWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    shards_per_part: usize,
    part_bytes: u64,
    done: Vec<PartSum>,
    current: Option<OpenPart>,
    pace: Pace,
}

/// The part being written.
struct OpenPart {
    file: Arc<dyn WalFile>,
    path: PathBuf,
    sum: PartSum,
    crc: crc32fast::Hasher,
    shards: usize,
}

impl std::fmt::Debug for OpenPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPart")
            .field("path", &self.path)
            .field("sum", &self.sum)
            .finish_non_exhaustive()
    }
}

impl PartsWriter {
    /// Writes into `dir` (which exists) the records of `shards` shards, given one shard at a
    /// time.
    pub(crate) fn new(fs: &Arc<dyn FileSystem>, dir: &Path, shards: usize) -> Self {
        Self::with_part_bytes(fs, dir, shards, PART_BYTES)
    }

    /// As [`new`](Self::new), cutting parts at `part_bytes` (tests use small parts).
    pub(crate) fn with_part_bytes(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        shards: usize,
        part_bytes: u64,
    ) -> Self {
        let shards = shards.max(1);
        PartsWriter {
            fs: Arc::clone(fs),
            dir: dir.to_path_buf(),
            shards_per_part: shards.div_ceil(shards.min(MAX_PARTS)),
            part_bytes: part_bytes.max(1),
            done: Vec::new(),
            current: None,
            pace: Pace::new(None, Arc::default()),
        }
    }

    /// Writes at `pace`'s rate, in its slices.
    pub(crate) fn paced(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Appends one shard's records to the current part (starting one if need be), cutting
    /// it between records where it would pass its size, and ends the part once it holds
    /// its share of shards.
    pub(crate) fn write_shard(&mut self, encoded: &Encoded) -> Result<()> {
        let (mut bytes, mut records) = (encoded.as_bytes(), encoded.records() as u64);
        loop {
            let room = self
                .part_bytes
                .saturating_sub(self.current.as_ref().map_or(0, |p| p.sum.bytes));
            if bytes.len() as u64 <= room {
                break;
            }
            let empty = self.current.as_ref().is_none_or(|p| p.sum.bytes == 0);
            let (len, count) = records_within(bytes, room, empty);
            if len == 0 && empty {
                // Not records this can walk (never so for an `Encoded`): left whole.
                break;
            }
            self.append(&bytes[..len], count)?;
            self.end_part()?;
            (bytes, records) = (&bytes[len..], records - count);
        }
        self.append(bytes, records)?;
        let part = self.current.as_mut().expect("append opened a part");
        part.shards += 1;
        let share = part.shards >= self.shards_per_part && part.sum.bytes >= MIN_PART_BYTES;
        if share || part.sum.bytes >= self.part_bytes {
            self.end_part()?;
        }
        Ok(())
    }

    /// Appends `records` records, `bytes`, to the current part (starting one if need be).
    fn append(&mut self, bytes: &[u8], records: u64) -> Result<()> {
        let part = match &mut self.current {
            Some(part) => part,
            None => {
                let path = self.dir.join(part_name(self.done.len()));
                let file = self
                    .fs
                    .open(&path, OpenMode::CreateNew)
                    .map_err(|e| Error::io("create", &path, e))?;
                self.current.insert(OpenPart {
                    file,
                    path,
                    sum: PartSum::default(),
                    crc: crc32fast::Hasher::new(),
                    shards: 0,
                })
            }
        };
        if !bytes.is_empty() {
            let mut at = part.sum.bytes;
            for slice in bytes.chunks(self.pace.slice()) {
                part.file
                    .write_all_at(slice, at)
                    .map_err(|e| Error::io("write", &part.path, e))?;
                at += slice.len() as u64;
                self.pace.wrote(slice.len())?;
            }
            part.crc.update(bytes);
            part.sum.bytes += bytes.len() as u64;
            part.sum.records += records;
        }
        Ok(())
    }

    /// Syncs the current part and records its sum.
    fn end_part(&mut self) -> Result<()> {
        if let Some(part) = self.current.take() {
            part.file
                .sync_data()
                .map_err(|e| Error::io("sync", &part.path, e))?;
            self.done.push(PartSum {
                crc: part.crc.finalize(),
                ..part.sum
            });
        }
        Ok(())
    }

    /// Ends the last part, writes the index and syncs it and the directory: every file of
    /// the snapshot is then durable under its name. Returns the snapshot's sum.
    pub(crate) fn finish(mut self) -> Result<SnapshotSum> {
        self.end_part()?;
        if self.done.is_empty() {
            // No shard at all: one empty part, so that an index never lists none.
            self.write_shard(&Encoded::new())?;
            self.end_part()?;
        }
        let index = encode_index(&self.done);
        let path = self.dir.join(INDEX);
        let file = self
            .fs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &path, e))?;
        file.write_all_at(&index, 0)
            .map_err(|e| Error::io("write", &path, e))?;
        file.sync_data().map_err(|e| Error::io("sync", &path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("sync the directory", &self.dir, e))?;
        Ok(SnapshotSum {
            records: self.done.iter().map(|p| p.records).sum(),
            bytes: self.done.iter().map(|p| p.bytes).sum::<u64>() + index.len() as u64,
            crc: crc32fast::hash(&index),
            layout: SnapshotLayout::Parts,
        })
    }
}

/// The length and count of the whole records at the front of `bytes` (encoded records,
/// back to back) that fit in `room` bytes; at least one if `at_least_one` (a record longer
/// than a part then gets a part of its own). Only walked for a shard that does not fit in
/// the current part: decoding checks each record's CRC-32C again, a cost of the
/// compaction, not of any write.
fn records_within(bytes: &[u8], room: u64, at_least_one: bool) -> (usize, u64) {
    let (mut len, mut count) = (0usize, 0u64);
    while let Decoded::Record(_, next) = kv_wal::decode(&bytes[len..]) {
        if (len + next) as u64 > room && !(at_least_one && count == 0) {
            break;
        }
        len += next;
        count += 1;
    }
    (len, count)
}

/// Reads the whole of file `path`, refusing one longer than `max` bytes (`Ok(None)` then).
fn read_small(fs: &dyn FileSystem, path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = fs.open(path, OpenMode::Read)?;
    let size = file.size()?;
    if size > max {
        return Ok(None);
    }
    let mut bytes = vec![0u8; size as usize];
    let mut at = 0;
    while at < bytes.len() {
        match file.read_at(&mut bytes[at..], at as u64)? {
            0 => break,
            n => at += n,
        }
    }
    bytes.truncate(at);
    Ok(Some(bytes))
}

/// Loads snapshot `id`, laid out in parts in `path` (which holds the files `names`), into `sink` at time `now`: checks the
/// index against `sum` and the directory, then has the sink read the parts (at once, if it
/// likes), each checked record by record and against the index as it is read. Any
/// difference is [`Error::CorruptSnapshot`]; what the sink was given is then to be thrown
/// away with it.
#[allow(clippy::too_many_arguments)] // `snapshot::load`'s, and the listing it made
pub(crate) fn load<S: Sink>(
    fs: &Arc<dyn FileSystem>,
    path: &Path,
    names: &[String],
    id: u64,
    sum: SnapshotSum,
    sink: &S,
    now: u64,
    limits: SizeLimits,
) -> Result<LogReplay> {
    let damaged = |reason: String| Error::CorruptSnapshot {
        id,
        path: path.to_path_buf(),
        reason,
    };
    let index_path = path.join(INDEX);
    let max_index = (8 + 4 + MAX_INDEX_PARTS * INDEX_ENTRY + 4) as u64;
    let index = match read_small(fs.as_ref(), &index_path, max_index) {
        Ok(Some(index)) => index,
        Ok(None) => return Err(damaged("its index of parts is too long".into())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(damaged(format!("its index of parts ({INDEX}) is missing")))
        }
        Err(e) => return Err(Error::io("read", index_path, e)),
    };
    let crc = crc32fast::hash(&index);
    if crc != sum.crc {
        return Err(damaged(format!(
            "its index's checksum is {crc:#010x}, the manifest says {:#010x}",
            sum.crc
        )));
    }
    let parts = decode_index(&index).map_err(|reason| damaged(reason.into()))?;
    let records: u64 = parts.iter().map(|p| p.records).sum();
    let bytes = parts
        .iter()
        .fold(index.len() as u64, |at, p| at.saturating_add(p.bytes));
    if records != sum.records || bytes != sum.bytes {
        return Err(damaged(format!(
            "its index lists {records} records in {bytes} bytes, the manifest says {} in {}",
            sum.records, sum.bytes
        )));
    }
    if let Some(extra) = names
        .iter()
        .filter_map(|name| parse_part_name(name))
        .find(|&i| i >= parts.len())
    {
        return Err(damaged(format!(
            "it holds part {extra}, its index lists {} parts",
            parts.len()
        )));
    }
    // Each part's first failure; the first of all is reported, and stops the others.
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    let read = |i: usize, apply: &mut ApplyOp<'_>| {
        let result = read_part(fs.as_ref(), path, i, parts[i], limits, &failed, apply);
        if let Err(reason) = result {
            failed.store(true, Ordering::Relaxed);
            let mut first = failure.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(match reason {
                PartError::Damaged(reason) => damaged(format!("part {i}: {reason}")),
                PartError::Io(e) => e,
                PartError::Stopped => return,
            });
        }
    };
    let part_bytes: Vec<u64> = parts.iter().map(|p| p.bytes).collect();
    let expired_dropped = sink.load_parts(now, &part_bytes, &read);
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut replayed = LogReplay {
        records,
        expired_dropped,
        ..LogReplay::default()
    };
    replayed.recovery.records = records;
    replayed.recovery.bytes_scanned = bytes;
    Ok(replayed)
}

/// Why a part was not read whole.
enum PartError {
    /// It differs from its index or holds something a snapshot never does.
    Damaged(String),
    /// It could not be read.
    Io(Error),
    /// Another part failed first.
    Stopped,
}

/// Reads part `i` of the snapshot in `path`, passing each record to `apply`, and checks it
/// against `sum`; stops early (unchecked) once `stop` is set.
fn read_part(
    fs: &dyn FileSystem,
    path: &Path,
    i: usize,
    sum: PartSum,
    limits: SizeLimits,
    stop: &AtomicBool,
    apply: &mut ApplyOp<'_>,
) -> std::result::Result<(), PartError> {
    let file_path = path.join(part_name(i));
    let file = match fs.open(&file_path, OpenMode::Read) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(PartError::Damaged("it is missing".into()))
        }
        Err(e) => return Err(PartError::Io(Error::io("open", &file_path, e))),
    };
    let io = |e| PartError::Io(Error::io("read", &file_path, e));
    let size = file.size().map_err(io)?;
    if size != sum.bytes {
        return Err(PartError::Damaged(format!(
            "it holds {size} bytes, its index says {}",
            sum.bytes
        )));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; READ_BUFFER.min(size as usize).max(1)];
    // `buffer[start..end]` is read and not yet decoded; `offset` is where `end` is in the file.
    let (mut start, mut end, mut offset) = (0usize, 0usize, 0u64);
    let mut records = 0u64;
    loop {
        match kv_wal::decode(&buffer[start..end]) {
            Decoded::Record(record, len) => {
                let at = offset - (end - start) as u64;
                if record.kind() != RecordKind::Put {
                    return Err(PartError::Damaged(format!(
                        "a record that is not a put at offset {at}"
                    )));
                }
                match record.compression() {
                    Compression::None => apply(op_of(&record, record.stored_value())),
                    _ => match record.value(limits.max_value_size) {
                        Ok(value) => apply(op_of(&record, &value)),
                        Err(kind) => {
                            return Err(PartError::Damaged(format!(
                                "the value at offset {at} does not decompress ({kind:?})"
                            )))
                        }
                    },
                }
                records += 1;
                start += len;
            }
            Decoded::Incomplete { len } => {
                if offset == size {
                    if start == end {
                        break;
                    }
                    return Err(PartError::Damaged(format!(
                        "it ends inside a record at offset {}",
                        offset - (end - start) as u64
                    )));
                }
                if stop.load(Ordering::Relaxed) {
                    return Err(PartError::Stopped);
                }
                // Keep what is left, make room for the whole record if it is longer than the
                // buffer (never past the part's end), and read on.
                buffer.copy_within(start..end, 0);
                end -= start;
                start = 0;
                let left = size - offset;
                let want = len.map_or(0, |len| len.min(end + left as usize));
                if want > buffer.len() {
                    buffer.resize(want, 0);
                }
                if end == buffer.len() {
                    let grown = (buffer.len() * 2).min(end + left as usize);
                    buffer.resize(grown, 0);
                }
                let read = file.read_at(&mut buffer[end..], offset).map_err(io)?;
                if read == 0 {
                    return Err(PartError::Damaged(format!(
                        "it ends at {offset} bytes, its index says {size}"
                    )));
                }
                crc.update(&buffer[end..end + read]);
                end += read;
                offset += read as u64;
            }
            Decoded::Corrupt(kind) => {
                return Err(PartError::Damaged(format!(
                    "damage ({kind:?}) at offset {}",
                    offset - (end - start) as u64
                )))
            }
        }
    }
    let crc = crc.finalize();
    if crc != sum.crc {
        return Err(PartError::Damaged(format!(
            "its checksum is {crc:#010x}, its index says {:#010x}",
            sum.crc
        )));
    }
    if records != sum.records {
        return Err(PartError::Damaged(format!(
            "it holds {records} records, its index says {}",
            sum.records
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_round_trips_and_refuses_damage() {
        let parts = [
            PartSum {
                records: 3,
                bytes: 400,
                crc: 7,
            },
            PartSum::default(),
        ];
        let index = encode_index(&parts);
        assert_eq!(decode_index(&index).unwrap(), parts);
        for at in 0..index.len() {
            let mut bytes = index.clone();
            bytes[at] ^= 0x10;
            assert!(decode_index(&bytes).is_err(), "flip at {at}");
        }
        for len in 0..index.len() {
            assert!(decode_index(&index[..len]).is_err(), "cut to {len}");
        }
        assert!(decode_index(&encode_index(&[])).is_err(), "no part");
    }

    #[test]
    fn part_names_parse_back_and_nothing_else_does() {
        assert_eq!(parse_part_name(&part_name(7)), Some(7));
        for name in ["part-7", "part-00007", "PARTS", "000000.wal", "part-00x1"] {
            assert_eq!(parse_part_name(name), None, "{name}");
        }
    }

    /// A shard longer than a part is cut between records into several parts (a record
    /// longer than a part alone in one), none longer than the part size but for that
    /// record, and the snapshot loads to the state applying its records in order gives,
    /// later copies of a key over earlier ones, with either index.
    #[test]
    fn a_shard_longer_than_a_part_is_cut_between_records_and_loads_in_order() {
        use kv_core::{IndexKind, State};
        use parking_lot::RwLock;

        let fs: Arc<dyn FileSystem> = Arc::new(kv_wal::fs::StdFileSystem);
        // Two shards; the first long, with keys written twice (its walk may give a key
        // twice, the later copy last) and one value longer than a part.
        let shards: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
            (0..600u32)
                .map(|i| {
                    let value = if i == 300 {
                        vec![9; 5_000]
                    } else {
                        i.to_le_bytes().repeat(6)
                    };
                    (format!("a{}", i % 400).into_bytes(), value)
                })
                .collect(),
            (0..20u32)
                .map(|i| (format!("b{i}").into_bytes(), vec![1; 10]))
                .collect(),
        ];
        let part_bytes = 2_048u64;
        let dir = tempfile::tempdir().unwrap();
        let mut writer = PartsWriter::with_part_bytes(&fs, dir.path(), shards.len(), part_bytes);
        for records in &shards {
            let mut encoded = Encoded::new();
            for (key, value) in records {
                encoded.push_put(key, value, kv_wal::Expiry::Never, Compression::None);
            }
            writer.write_shard(&encoded).unwrap();
        }
        let sum = writer.finish().unwrap();
        let listed = decode_index(&std::fs::read(dir.path().join(INDEX)).unwrap()).unwrap();
        assert!(listed.len() > 10, "{} parts", listed.len());
        assert_eq!(sum.records, 620);
        assert_eq!(listed.iter().map(|p| p.records).sum::<u64>(), 620);
        for part in &listed {
            assert!(part.records > 0, "{listed:?}");
            assert!(part.bytes <= part_bytes || part.records == 1, "{part:?}");
        }
        assert!(
            listed.iter().any(|p| p.bytes > part_bytes),
            "the long value's part"
        );
        let names = fs.read_dir(dir.path()).unwrap();
        for kind in [IndexKind::Ordered, IndexKind::Hash] {
            let expected = RwLock::new(State::new(kind));
            for (key, value) in shards.iter().flatten() {
                expected.apply(
                    kv_core::OpRef::Put {
                        key,
                        value,
                        expiry: kv_core::Expiry::Never,
                    },
                    0,
                );
            }
            let loaded = RwLock::new(State::new(kind));
            let limits = SizeLimits::default();
            load(&fs, dir.path(), &names, 1, sum, &loaded, 0, limits).unwrap();
            let (loaded, expected) = (loaded.read(), expected.read());
            assert_eq!(loaded.len(), expected.len());
            assert_eq!(loaded.len(), 420);
            for (key, _) in shards.iter().flatten() {
                assert_eq!(
                    loaded.get(key, 0).map(|e| e.value().to_vec()),
                    expected.get(key, 0).map(|e| e.value().to_vec()),
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn shards_are_spread_over_at_most_max_parts_of_a_least_size() {
        let fs: Arc<dyn FileSystem> = Arc::new(kv_wal::fs::StdFileSystem);
        let big = vec![7u8; MIN_PART_BYTES as usize];
        // (shards, bytes of each shard's value, parts)
        for (shards, value, parts) in [
            (1, 1, 1),
            (2, big.len(), 2),
            (8, big.len(), 8),
            (32, 1, 1),
            (12, big.len(), 6),
            (13, big.len(), 7),
            (16, big.len() / 2, 8),
            (16, big.len() / 4, 4),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut writer = PartsWriter::new(&fs, dir.path(), shards);
            let mut encoded = Encoded::new();
            encoded.push_put(
                b"k",
                &big[..value],
                kv_wal::Expiry::Never,
                Compression::None,
            );
            for _ in 0..shards {
                writer.write_shard(&encoded).unwrap();
            }
            let sum = writer.finish().unwrap();
            assert_eq!(sum.records, shards as u64);
            let index = std::fs::read(dir.path().join(INDEX)).unwrap();
            let listed = decode_index(&index).unwrap();
            assert_eq!(listed.len(), parts, "{shards} shards of {value} bytes");
            assert_eq!(listed.iter().map(|p| p.records).sum::<u64>(), shards as u64);
        }
    }
}
