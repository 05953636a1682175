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
    /// Every piece of damage found, torn tails included.
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
    let mut info = RecoveryInfo::default();
    check_contiguous(ids, &config.dir)?;
    let last = *ids
        .last()
        .expect("recover is called with at least one segment");
    let mut tail = None;

    for &id in ids.iter().filter(|&&id| id >= from.segment.min(last)) {
        let is_last = id == last;
        let path = config.dir.join(segment::file_name(id));
        let mode = if is_last {
            OpenMode::Write
        } else {
            OpenMode::Read
        };
        let file = fs
            .open(&path, mode)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let file_len = file
            .size()
            .map_err(|e| Error::io("read the length of", &path, e))?;
        // Every scanned segment is read from its first byte, even the one `from` points into:
        // where its valid data ends must not depend on the caller's idea of a boundary.
        let mut cursor = SegmentCursor::new(file.clone(), 0, file_len);
        info.segments_scanned += 1;

        let data_len = loop {
            let step = cursor
                .next_unit()
                .map_err(|e| Error::io("read segment", &path, e))?;
            match step {
                Step::Unit => {
                    let unit_start = cursor.offset();
                    while let Some((offset, record)) = cursor.next_in_unit() {
                        let position = Position::new(id, offset);
                        if position >= from {
                            visit(position, record);
                        }
                        info.records += 1;
                    }
                    info.bytes_scanned += cursor.offset() - unit_start;
                }
                Step::End => break cursor.end(),
                Step::Stop { damage, kind } => {
                    let salvage = config.recovery_mode == RecoveryMode::Salvage;
                    let damage = classify(&mut cursor, damage, kind, salvage)
                        .map_err(|e| Error::io("read segment", &path, e))?;
                    match settle(config.recovery_mode, id, is_last, damage, &mut info)? {
                        Settled::EndsAt(end) => break end,
                        Settled::ResumeAt(offset) => cursor.seek(offset),
                    }
                }
            }
        };

        if is_last {
            let mut file_len = file_len;
            if data_len < file_len && info.bytes_truncated > 0 {
                file.set_len(data_len)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| Error::io("cut the torn tail of", &path, e))?;
                file_len = data_len;
            }
            info.end = Position::new(id, data_len);
            tail = Some(Tail {
                id,
                file,
                len: data_len,
                file_len,
            });
        }
    }
    info.duration = started.elapsed();
    Ok((info, tail.expect("the last segment is always scanned")))
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
