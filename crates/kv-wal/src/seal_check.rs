//! The checks recovery makes with seals and openings (`seal.rs`): each segment states what
//! it holds, and a sealed segment has its successor.

use std::path::Path;

use crate::config::RecoveryMode;
use crate::cursor::SegmentCursor;
use crate::damage::Damage;
use crate::error::{CorruptionKind, Error, Result};
use crate::recovery::{Corruption, DamageAction, RecoveryInfo};
use crate::seal::{self, Mark, Summary};

/// What the scan of one segment found, for the checks across segments.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) id: u64,
    /// Records (seal and opening not counted).
    pub(crate) records: u64,
    /// Where its records end: at its seal, if it has one.
    pub(crate) data_end: u64,
    /// What its opening says of the segment before it.
    pub(crate) opening: Option<Summary>,
    /// Where its seal is.
    pub(crate) sealed: Option<u64>,
    /// A seal torn by a crash follows its records.
    pub(crate) torn_seal: bool,
    /// Salvage skipped damage in it: its record count says nothing any more.
    pub(crate) skipped: bool,
}

impl Scanned {
    /// Whether `summary` (its seal, or the next segment's opening) states what it holds.
    pub(crate) fn matches(&self, summary: &Summary) -> bool {
        summary.len == self.data_end && (self.skipped || summary.records == self.records)
    }
}

/// Where the seal begins, when `damage`, found where a scan of segment `id` stopped, is a
/// seal a crash tore while rotation closed the segment: a torn tail no longer than a seal,
/// whose bytes are a prefix of the seal the segment would have had (`records`: how many
/// records it holds, when that is known).
pub(crate) fn torn_seal_at(
    cursor: &mut SegmentCursor,
    damage: &Damage,
    id: u64,
    records: Option<u64>,
) -> std::io::Result<Option<u64>> {
    let Damage::Tail {
        unit_start,
        data_end,
        ..
    } = *damage
    else {
        return Ok(None);
    };
    if data_end - unit_start > seal::RECORD_LEN {
        return Ok(None);
    }
    let bytes = cursor.read_bytes(unit_start, data_end - unit_start)?;
    Ok(seal::is_torn_seal(&bytes, id, records, unit_start).then_some(unit_start))
}

/// Takes in a record of the log's own found at `offset` of `seg` (`None`: not a seal or
/// opening this version writes, or not alone in its unit).
pub(crate) fn take_meta(
    mode: RecoveryMode,
    info: &mut RecoveryInfo,
    seg: &mut Scanned,
    offset: u64,
    meta: Option<(Mark, Summary)>,
) -> Result<()> {
    let id = seg.id;
    match meta {
        Some((Mark::Opening, summary))
            if offset == 0 && summary.segment.checked_add(1) == Some(id) =>
        {
            seg.opening = Some(summary);
            Ok(())
        }
        Some((Mark::Seal, summary)) if summary.segment == id => {
            seg.sealed = Some(offset);
            seg.data_end = offset;
            if !seg.matches(&summary) {
                // Records were cut out of the segment, or added to it, after it was sealed.
                let bytes = summary.len.abs_diff(offset);
                let at = summary.len.min(offset);
                seal_fault(mode, info, id, at, CorruptionKind::SegmentLength, bytes)?;
            }
            Ok(())
        }
        _ => seal_fault(
            mode,
            info,
            id,
            offset,
            CorruptionKind::BadSeal,
            seal::RECORD_LEN,
        ),
    }
}

/// The checks across segments: each opening matches the segment before it, and a sealed
/// segment has a successor that opens with its opening.
pub(crate) fn check_seals(
    mode: RecoveryMode,
    dir: &Path,
    scanned: &[Scanned],
    info: &mut RecoveryInfo,
) -> Result<()> {
    for pair in scanned.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        match after.opening {
            Some(said) if !before.matches(&said) => {
                let at = said.len.min(before.data_end);
                let bytes = said.len.abs_diff(before.data_end);
                seal_fault(
                    mode,
                    info,
                    before.id,
                    at,
                    CorruptionKind::SegmentLength,
                    bytes,
                )?;
            }
            Some(_) => {}
            None if before.sealed.is_some() => {
                let bytes = after.data_end;
                seal_fault(
                    mode,
                    info,
                    after.id,
                    0,
                    CorruptionKind::MissingOpening,
                    bytes,
                )?;
            }
            // A seal is written only once the next segment's opening is durable.
            None if before.torn_seal => {
                let at = before.data_end;
                seal_fault(mode, info, before.id, at, CorruptionKind::BadSeal, 0)?;
            }
            None => {}
        }
    }
    let newest = scanned.last().expect("the last segment is always scanned");
    if newest.sealed.is_some() {
        // Rotation makes the next segment durable before it seals this one.
        return Err(Error::MissingSegment {
            id: newest.id + 1,
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// A seal that does not match what it seals: an error, or in salvage mode a reported fault.
pub(crate) fn seal_fault(
    mode: RecoveryMode,
    info: &mut RecoveryInfo,
    segment: u64,
    offset: u64,
    kind: CorruptionKind,
    bytes: u64,
) -> Result<()> {
    if mode != RecoveryMode::Salvage {
        return Err(Error::Corrupt {
            segment,
            offset,
            kind,
        });
    }
    info.corruptions.push(Corruption {
        segment,
        offset,
        kind,
        bytes,
        action: DamageAction::Skipped,
    });
    Ok(())
}
