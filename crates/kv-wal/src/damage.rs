//! Telling free space, a torn tail and real damage apart.
//!
//! When a segment's bytes stop forming records, three different things can be going on:
//! - a run of zero bytes to the end: space reserved by preallocation, not data;
//! - a unit cut short, with nothing valid after it: a crash in mid-write (only acceptable at
//!   the end of the newest segment);
//! - a bad record with valid records after it: damage, never a crash's doing.

use crate::cursor::SegmentCursor;
use crate::error::CorruptionKind;

/// What the bytes at a cursor's stop are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Zeros from `end` on: the segment's data ends at `end`.
    FreeSpace {
        /// Where the data ends.
        end: u64,
    },
    /// The unit at `unit_start` is cut short and nothing valid follows it.
    Tail {
        /// Where the damaged unit begins: where the log must be cut.
        unit_start: u64,
        /// The first bad record.
        damage: u64,
        /// What is wrong with it.
        kind: CorruptionKind,
        /// Where the non-zero bytes end.
        data_end: u64,
    },
    /// A bad record, with a valid record at `resume` after it.
    Middle {
        /// Where the damaged unit begins.
        unit_start: u64,
        /// The first bad record.
        damage: u64,
        /// What is wrong with it.
        kind: CorruptionKind,
        /// The first valid record after the damage; the cursor is left there.
        resume: u64,
    },
}

impl Damage {
    /// The first bad record and what is wrong with it, unless this is free space.
    pub(crate) fn fault(&self) -> Option<(u64, CorruptionKind)> {
        match *self {
            Damage::FreeSpace { .. } => None,
            Damage::Tail { damage, kind, .. } | Damage::Middle { damage, kind, .. } => {
                Some((damage, kind))
            }
        }
    }
}

/// Classifies the stop of `cursor` at `damage`.
pub(crate) fn classify(
    cursor: &mut SegmentCursor,
    damage: u64,
    kind: CorruptionKind,
) -> std::io::Result<Damage> {
    let unit_start = cursor.offset();
    let data_end = cursor.data_end()?;
    if damage >= data_end && unit_start == damage {
        return Ok(Damage::FreeSpace { end: damage });
    }
    if damage < data_end {
        if let Some(resume) = cursor.find_record(damage, data_end)? {
            return Ok(Damage::Middle {
                unit_start,
                damage,
                kind,
                resume,
            });
        }
    }
    // A record that runs past the end of the file was cut there, zero bytes and all; any
    // other bad tail counts up to its last non-zero byte.
    let data_end = match kind {
        CorruptionKind::Truncated | CorruptionKind::UnterminatedBatch => cursor.end(),
        _ => data_end.max(damage),
    };
    Ok(Damage::Tail {
        unit_start,
        damage,
        kind,
        data_end,
    })
}
