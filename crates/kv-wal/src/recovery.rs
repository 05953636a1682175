//! Opening a log: scan every segment, check every record, cut a torn tail.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{RecoveryMode, WalConfig};
use crate::cursor::{SegmentCursor, Step};
use crate::damage::{classify, Damage};
use crate::error::{CorruptionKind, Error, Result};
use crate::fs::{OpenMode, WalFile};
use crate::position::Position;
use crate::record::RecordRef;
use crate::seal;
use crate::seal_check::{check_seals, seal_fault, take_meta, torn_seal_at, Scanned};
use crate::segment;

use std::sync::Arc;

/// What recovery did with a piece of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageAction {
    /// The tail of the newest segment was cut off at the damaged unit.
    Truncated,
    /// The damaged bytes were left in place and skipped (salvage mode).
    Skipped,
}

/// One piece of damage that recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// Segment id.
    pub segment: u64,
    /// Offset of the first bad record.
    pub offset: u64,
    /// What is wrong there.
    pub kind: CorruptionKind,
    /// How many bytes were cut or skipped, from the start of the unit the bad record is in.
    pub bytes: u64,
    /// What recovery did about it.
    pub action: DamageAction,
}

impl std::fmt::Display for Corruption {
    /// One line a tool can print: `segment 3, offset 1234: checksum mismatch; 56 bytes cut`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            DamageAction::Truncated => "cut",
            DamageAction::Skipped => "skipped",
        };
        write!(
            f,
            "segment {}, offset {}: {}; {} bytes {action}",
            self.segment, self.offset, self.kind, self.bytes
        )
    }
}

/// What opening the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Valid records scanned.
    pub records: u64,
    /// Segments scanned.
    pub segments_scanned: u64,
    /// Bytes of records scanned.
    pub bytes_scanned: u64,
    /// Bytes cut from the tail of the newest segment (a torn write).
    pub bytes_truncated: u64,
    /// Every piece of damage found, torn tails included: each cut or skip says which segment,
    /// which offset and how many bytes. An open that cut or skipped anything has a non-empty
    /// list; tools print each entry (it implements `Display`).
    pub corruptions: Vec<Corruption>,
    /// Where the valid log ends: where the next append goes.
    pub end: Position,
    /// How long recovery took.
    pub duration: Duration,
}

/// The newest segment, as recovery leaves it for the writer.
#[derive(Debug)]
pub(crate) struct Tail {
    pub(crate) id: u64,
    pub(crate) file: Arc<dyn WalFile>,
    /// Where the next append goes.
    pub(crate) len: u64,
    /// The file's physical length (past `len` when space was preallocated).
    pub(crate) file_len: u64,
    /// How many records it holds (what its seal will state).
    pub(crate) records: u64,
    /// Where its records start: past its opening, if it has one.
    pub(crate) start: u64,
}

/// Scans the segments `ids` (sorted, non-empty), hands every record at or after `from` to
/// `visit`, and cuts a torn tail off the newest segment.
pub(crate) fn recover(
    config: &WalConfig,
    ids: &[u64],
    from: Position,
    visit: &mut dyn FnMut(Position, RecordRef<'_>),
) -> Result<(RecoveryInfo, Tail)> {
    let started = Instant::now();
    let fs = &*config.file_system;
    let mode = config.recovery_mode;
    let mut info = RecoveryInfo::default();
    check_contiguous(ids, &config.dir)?;
    let last = *ids
        .last()
        .expect("recover is called with at least one segment");
    let mut scanned = Vec::new();
    let mut tail = None;

    for &id in ids.iter().filter(|&&id| id >= from.segment.min(last)) {
        let is_last = id == last;
        let path = config.dir.join(segment::file_name(id));
        let open_mode = if is_last {
            OpenMode::Write
        } else {
            OpenMode::Read
        };
        let file = fs
            .open(&path, open_mode)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let file_len = file
            .size()
            .map_err(|e| Error::io("read the length of", &path, e))?;
        if is_last {
            // Only the newest segment can hold pages whose write-back failed: an older one
            // was synced successfully when rotation closed it, and a failed sync stops the
            // log before anything else is written. Such pages stay in the page cache, clean,
            // until dropped; read from the disk instead, so a reopen in the same boot sees
            // what a reboot would. Best effort: a file system that ignores the advice leaves
            // the case a reboot settles (FORMAT.md).
            let _ = file.drop_cached_pages();
        }
        // Every scanned segment is read from its first byte, even the one `from` points into:
        // where its valid data ends must not depend on the caller's idea of a boundary.
        let mut cursor = SegmentCursor::new(file.clone(), 0, file_len);
        info.segments_scanned += 1;
        let mut seg = Scanned {
            id,
            records: 0,
            data_end: 0,
            opening: None,
            sealed: None,
            torn_seal: false,
            skipped: false,
        };

        let data_len = loop {
            let step = cursor
                .next_unit()
                .map_err(|e| Error::io("read segment", &path, e))?;
            match step {
                Step::Unit => {
                    let unit_start = cursor.offset();
                    if seg.sealed.take().is_some() {
                        // Records after a seal: the segment grew after rotation closed it.
                        seal_fault(mode, &mut info, id, unit_start, CorruptionKind::BadSeal, 0)?;
                    }
                    let mut meta = None;
                    while let Some((offset, record)) = cursor.next_in_unit() {
                        if record.is_log_meta() {
                            let alone = offset == unit_start && !record.continues_batch();
                            meta = Some((offset, seal::decode(&record).filter(|_| alone)));
                            continue;
                        }
                        let position = Position::new(id, offset);
                        if position >= from {
                            visit(position, record);
                        }
                        info.records += 1;
                        seg.records += 1;
                    }
                    info.bytes_scanned += cursor.offset() - unit_start;
                    if let Some((offset, meta)) = meta {
                        take_meta(mode, &mut info, &mut seg, offset, meta)?;
                    }
                }
                Step::End => break cursor.end(),
                Step::Stop { damage, kind } => {
                    let salvage = mode == RecoveryMode::Salvage;
                    let damage = classify(&mut cursor, damage, kind, salvage, &config.limits)
                        .map_err(|e| Error::io("read segment", &path, e))?;
                    // A rotation that a crash interrupted while it sealed this segment.
                    if !is_last && seg.sealed.is_none() {
                        let torn = torn_seal_at(&mut cursor, &damage, id, Some(seg.records))
                            .map_err(|e| Error::io("read segment", &path, e))?;
                        if let Some(seal_start) = torn {
                            seg.torn_seal = true;
                            break seal_start;
                        }
                    }
                    match settle(mode, id, is_last, damage, &mut info)? {
                        Settled::EndsAt(end) => break end,
                        Settled::ResumeAt(offset) => {
                            seg.skipped = true;
                            cursor.seek(offset);
                        }
                    }
                }
            }
        };
        seg.data_end = seg.sealed.unwrap_or(data_len);

        if is_last {
            tail = Some(Tail {
                id,
                file,
                len: data_len,
                file_len,
                records: seg.records,
                start: seg.opening.map_or(0, |_| seal::RECORD_LEN),
            });
        }
        scanned.push(seg);
    }
    check_seals(mode, &config.dir, &scanned, &mut info)?;

    let mut tail = tail.expect("the last segment is always scanned");
    // Only now, every check passed, is anything changed on disk.
    if tail.len < tail.file_len && info.bytes_truncated > 0 {
        let path = config.dir.join(segment::file_name(tail.id));
        tail.file
            .set_len(tail.len)
            .and_then(|()| tail.file.sync_data())
            .map_err(|e| Error::io("cut the torn tail of", &path, e))?;
        tail.file_len = tail.len;
    }
    info.end = Position::new(tail.id, tail.len);
    info.duration = started.elapsed();
    Ok((info, tail))
}

/// What a segment scan does after damage.
enum Settled {
    /// The segment's valid data ends here.
    EndsAt(u64),
    /// Skip to this offset and go on.
    ResumeAt(u64),
}

/// Applies the recovery mode to a piece of damage.
fn settle(
    mode: RecoveryMode,
    segment: u64,
    is_last: bool,
    damage: Damage,
    info: &mut RecoveryInfo,
) -> Result<Settled> {
    let refuse = |offset, kind| Error::Corrupt {
        segment,
        offset,
        kind,
    };
    match damage {
        Damage::FreeSpace { end } => Ok(Settled::EndsAt(end)),
        Damage::Tail {
            unit_start,
            damage: offset,
            kind,
            data_end,
        } => {
            let acceptable = match mode {
                RecoveryMode::Strict => false,
                RecoveryMode::TolerateTornTail => is_last,
                RecoveryMode::Salvage => true,
            };
            if !acceptable {
                return Err(refuse(offset, kind));
            }
            let bytes = data_end - unit_start;
            let action = if is_last {
                info.bytes_truncated += bytes;
                DamageAction::Truncated
            } else {
                DamageAction::Skipped
            };
            info.corruptions.push(Corruption {
                segment,
                offset,
                kind,
                bytes,
                action,
            });
            Ok(Settled::EndsAt(unit_start))
        }
        // The never-synced tail of the newest segment, kept in part and out of order: the
        // log is cut where it begins, as of a point in time (salvage too: its newest segment
        // stays a prefix).
        Damage::Hole {
            unit_start,
            damage: offset,
            data_end,
            ..
        } if is_last && mode != RecoveryMode::Strict => {
            let bytes = data_end - unit_start;
            info.bytes_truncated += bytes;
            info.corruptions.push(Corruption {
                segment,
                offset,
                kind: CorruptionKind::Hole,
                bytes,
                action: DamageAction::Truncated,
            });
            Ok(Settled::EndsAt(unit_start))
        }
        hole @ Damage::Hole { .. } => settle(mode, segment, is_last, hole.hole_as_middle(), info),
        Damage::Middle {
            unit_start,
            damage: offset,
            kind,
            resume,
        } => {
            let Some(resume) = resume.filter(|_| mode == RecoveryMode::Salvage) else {
                return Err(refuse(offset, kind));
            };
            info.corruptions.push(Corruption {
                segment,
                offset,
                kind,
                bytes: resume - unit_start,
                action: DamageAction::Skipped,
            });
            Ok(Settled::ResumeAt(resume))
        }
    }
}

/// Refuses a directory with a gap between its first and last segment.
fn check_contiguous(ids: &[u64], dir: &Path) -> Result<()> {
    for pair in ids.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(Error::MissingSegment {
                id: pair[0] + 1,
                dir: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}
