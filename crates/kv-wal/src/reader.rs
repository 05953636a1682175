//! Reading the log back, streaming, from any position.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{RecoveryMode, SizeLimits};
use crate::cursor::{SegmentCursor, Step};
use crate::damage::{classify, Damage};
use crate::error::{Error, Result};
use crate::fs::{FileSystem, OpenMode};
use crate::position::Position;
use crate::record::{Record, RecordRef};
use crate::recovery::{Corruption, DamageAction};
use crate::seal_check::torn_seal_at;
use crate::segment;

/// A streaming reader over the log, from a start position up to the end the log had when the
/// reader was made. It holds one bounded buffer, never a whole segment, and hands out the
/// records of an atomic batch only once the whole batch has been read and checked.
///
/// Use [`next_ref`](Self::next_ref) to borrow each record without copying it, or iterate to
/// get owned [`Record`]s with their values decompressed.
#[derive(Debug)]
pub struct WalReader {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segments: VecDeque<u64>,
    from: Position,
    until: Position,
    salvage: bool,
    limits: SizeLimits,
    current: Option<(u64, SegmentCursor)>,
    skipped: Vec<Corruption>,
}

impl WalReader {
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        segments: Vec<u64>,
        from: Position,
        until: Position,
        mode: RecoveryMode,
        limits: SizeLimits,
    ) -> Self {
        let segments = segments
            .into_iter()
            .filter(|&id| id >= from.segment && id <= until.segment)
            .collect();
        WalReader {
            fs,
            dir,
            segments,
            from,
            until,
            salvage: mode == RecoveryMode::Salvage,
            limits,
            current: None,
            skipped: Vec::new(),
        }
    }

    /// Damage skipped so far (only in salvage mode; otherwise damage is an error).
    pub fn skipped(&self) -> &[Corruption] {
        &self.skipped
    }

    /// Opens the next segment; `false` when there is none.
    fn open_next(&mut self) -> Result<bool> {
        let Some(id) = self.segments.pop_front() else {
            return Ok(false);
        };
        let path = self.dir.join(segment::file_name(id));
        let file = self
            .fs
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let file_len = file
            .size()
            .map_err(|e| Error::io("read the length of", &path, e))?;
        let end = if id == self.until.segment {
            self.until.offset.min(file_len)
        } else {
            file_len
        };
        let start = if id == self.from.segment {
            self.from.offset.min(end)
        } else {
            0
        };
        self.current = Some((id, SegmentCursor::new(file, start, end)));
        Ok(true)
    }

    /// Gets a complete unit ready in the current cursor; `false` at the end of the log.
    fn prepare(&mut self) -> Result<bool> {
        loop {
            let Some((id, cursor)) = self.current.as_mut() else {
                if !self.open_next()? {
                    return Ok(false);
                }
                continue;
            };
            let id = *id;
            if cursor.has_pending() {
                if cursor.skip_log_meta() {
                    continue;
                }
                return Ok(true);
            }
            let io_error = |e| Error::io("read segment", self.dir.join(segment::file_name(id)), e);
            match cursor.next_unit().map_err(io_error)? {
                Step::Unit => continue,
                Step::End => self.current = None,
                Step::Stop { damage, kind } => {
                    let found = classify(cursor, damage, kind, self.salvage, &self.limits)
                        .map_err(io_error)?;
                    // A seal a crash tore while rotation closed this segment: recovery
                    // accepted it, as the next segment's opening states where it ends.
                    if id != self.until.segment
                        && torn_seal_at(cursor, &found, id, None)
                            .map_err(io_error)?
                            .is_some()
                    {
                        self.current = None;
                        continue;
                    }
                    // Outside the newest segment (which recovery cut) a hole is damage.
                    let found = found.hole_as_middle();
                    match found {
                        Damage::FreeSpace { .. } => self.current = None,
                        _ if !self.salvage => {
                            let (offset, kind) = found.fault().expect("damage has a fault");
                            return Err(Error::Corrupt {
                                segment: id,
                                offset,
                                kind,
                            });
                        }
                        Damage::Tail {
                            unit_start,
                            damage,
                            kind,
                            data_end,
                        } => {
                            self.skipped.push(Corruption {
                                segment: id,
                                offset: damage,
                                kind,
                                bytes: data_end - unit_start,
                                action: DamageAction::Skipped,
                            });
                            self.current = None;
                        }
                        Damage::Middle {
                            unit_start,
                            damage,
                            kind,
                            resume: Some(resume),
                        } => {
                            self.skipped.push(Corruption {
                                segment: id,
                                offset: damage,
                                kind,
                                bytes: resume - unit_start,
                                action: DamageAction::Skipped,
                            });
                            cursor.seek(resume);
                        }
                        // Salvage classifies damage with nowhere to resume as a tail, so this
                        // is not expected; refused, as recovery would, never a panic.
                        Damage::Middle { .. } | Damage::Hole { .. } => {
                            let (offset, kind) = found.fault().expect("damage has a fault");
                            return Err(Error::Corrupt {
                                segment: id,
                                offset,
                                kind,
                            });
                        }
                    }
                }
            }
        }
    }

    /// The next record, borrowed from the reader's buffer, with its position.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] at damage the reader's recovery mode does not skip; [`Error::Io`]
    /// when a segment cannot be read.
    pub fn next_ref(&mut self) -> Result<Option<(Position, RecordRef<'_>)>> {
        if !self.prepare()? {
            return Ok(None);
        }
        let (id, cursor) = self.current.as_mut().expect("prepared");
        let id = *id;
        let (offset, record) = cursor.next_in_unit().expect("prepared");
        Ok(Some((Position::new(id, offset), record)))
    }
}

impl Iterator for WalReader {
    type Item = Result<(Position, Record)>;

    fn next(&mut self) -> Option<Self::Item> {
        let limit = self.limits.max_value_size;
        match self.next_ref() {
            Ok(Some((position, record))) => Some(
                record
                    .to_record(limit)
                    .map(|r| (position, r))
                    .map_err(|kind| Error::Corrupt {
                        segment: position.segment,
                        offset: position.offset,
                        kind,
                    }),
            ),
            Ok(None) => None,
            Err(e) => {
                self.segments.clear();
                self.current = None;
                Some(Err(e))
            }
        }
    }
}
