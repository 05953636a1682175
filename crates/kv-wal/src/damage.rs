//! Telling free space, a torn tail and real damage apart.
//!
//! When a segment's bytes stop forming records, three different things can be going on:
//! - a run of zero bytes to the end: space reserved by preallocation, not data;
//! - a unit cut short, with nothing valid after it: a crash in mid-write (only acceptable at
//!   the end of the newest segment);
//! - a bad record with valid records after it: damage, never a crash's doing.

use crate::config::SizeLimits;
use crate::cursor::{SegmentCursor, PAGE};
use crate::error::CorruptionKind;

/// How far past a damaged record recovery looks for the valid records that prove the damage
/// is not a torn tail, when the damaged record's own header cannot say where it ends. Beyond
/// this, recovery refuses rather than guess (salvage mode looks further). When the header
/// can say (it reads, and its lengths are within the limits), the search goes on to the end
/// it claims: a record longer than the window, torn or damaged, is told apart the same way.
const SEARCH_WINDOW: u64 = 64 * 1024;

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
    /// A page (or the rest of one) of zeros inside the damaged unit, with data after it:
    /// what a power cut leaves when the disk wrote back a later unsynced page and not an
    /// earlier one. In the newest segment that is the never-synced tail (see
    /// [`classify`]); elsewhere it is damage like [`Damage::Middle`].
    Hole {
        /// Where the damaged unit begins: where the log is cut.
        unit_start: u64,
        /// Where the zeros begin.
        damage: u64,
        /// Where the non-zero bytes end.
        data_end: u64,
        /// The first unit after it that salvage may resume at, if there is one.
        resume: Option<u64>,
    },
    /// A bad record, with valid records from `resume` on; or, when `resume` is `None`, data
    /// after the damage that the bounded search could not account for.
    Middle {
        /// Where the damaged unit begins.
        unit_start: u64,
        /// The first bad record.
        damage: u64,
        /// What is wrong with it.
        kind: CorruptionKind,
        /// The first valid record after the damage; the cursor is left there.
        resume: Option<u64>,
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
            Damage::Hole { damage, .. } => Some((damage, CorruptionKind::Hole)),
        }
    }

    /// This damage where it cannot be the never-synced tail of the newest segment: there a
    /// hole is damage like any other.
    pub(crate) fn hole_as_middle(self) -> Damage {
        match self {
            Damage::Hole {
                unit_start,
                damage,
                resume,
                ..
            } => Damage::Middle {
                unit_start,
                damage,
                kind: CorruptionKind::Hole,
                resume,
            },
            other => other,
        }
    }
}

/// Classifies the stop of `cursor` at `damage`. `salvage` searches the whole rest of the
/// segment for any valid record; otherwise valid data after the damage counts only when
/// records chain from it to the end of the data, so a record that happens to be embedded in a
/// torn value cannot make a crash look like damage.
///
/// A header whose lengths exceed `limits` is not believed: no writer of this log wrote such
/// a record, so its length field is damaged, and where it says the record ends means nothing.
///
/// Damage with data after it is a [`Damage::Hole`] when the damaged record lost a page to
/// zeros. Such a hole lies past the last completed sync: an `fdatasync` writes back every
/// page of the file written before it, so a page the disk never got was never synced, and
/// neither was anything written after it. A page of zeros inside synced records would take
/// a disk that lost a page it acknowledged; recovery assumes, as for a torn record at the
/// end, that it does not.
///
/// In salvage, where to resume is moved to a unit's start: the record found may be the
/// middle of an atomic batch whose start was damaged.
pub(crate) fn classify(
    cursor: &mut SegmentCursor,
    damage: u64,
    kind: CorruptionKind,
    salvage: bool,
    limits: &SizeLimits,
) -> std::io::Result<Damage> {
    let unit_start = cursor.offset();
    let data_end = cursor.data_end()?;
    // Damage that begins with zeros at a unit's start (a stray byte in preallocated space,
    // or a write whose first pages never reached the disk) is named where its non-zero
    // bytes begin, not where the valid data ends.
    let fault = if unit_start == damage && damage < data_end {
        cursor.first_nonzero(damage, data_end)?
    } else {
        damage
    };
    // A record that runs past the end of the file was cut there, zero bytes and all; any
    // other bad tail counts up to its last non-zero byte.
    let tail = Damage::Tail {
        unit_start,
        damage: fault,
        kind,
        data_end: match kind {
            CorruptionKind::Truncated | CorruptionKind::UnterminatedBatch => cursor.end(),
            _ => data_end.max(damage),
        },
    };
    if damage >= data_end {
        return Ok(if unit_start == damage {
            Damage::FreeSpace { end: damage }
        } else {
            tail
        });
    }
    // The damaged record's header says where the next record starts, if it is believed.
    let header = cursor.claimed_lengths(damage)?;
    let claim = header.filter(|claim| {
        claim.klen <= limits.max_key_size as u64 && claim.vlen <= limits.max_value_size as u64
    });
    let claimed_end = claim.map(|claim| damage + claim.len);
    let found = find_resume(cursor, damage, claimed_end, data_end, salvage)?;
    let resume = match found {
        Found::Tail => return Ok(tail),
        Found::Unknown => None,
        Found::At(resume) => Some(resume),
    };
    // Salvage resumes at a unit's start. When the damaged record's flags say it ends its
    // unit, the first valid record after it starts the next one; otherwise (a batch goes on,
    // or the flags are lost) the record found may be inside that batch, and salvage skips to
    // the end of the unit it is in.
    let ends_unit = header.is_some_and(|header| !header.continues_batch);
    let resume = match resume {
        Some(at) if salvage && !ends_unit => unit_start_after(cursor, at, data_end)?,
        other => other,
    };
    // Salvage found no unit to resume at: all the rest is the damaged unit, a hole in it or
    // not (a `Hole` or `Middle` without a place to resume would refuse what salvage takes).
    if salvage && resume.is_none() {
        return Ok(tail);
    }
    // A hole counts only with a valid record after it (chained to the end or not: more
    // pages may be lost further on): a lone non-zero byte far into the zeros is damage to
    // report, not a write the disk kept part of.
    if let Some(zeros) = cursor.hole_in(damage, claimed_end, data_end)? {
        let near = data_end.min(zeros + PAGE + SEARCH_WINDOW);
        if resume.is_some() || cursor.find_record(zeros, near, None)?.is_some() {
            return Ok(Damage::Hole {
                unit_start,
                damage: zeros,
                data_end,
                resume,
            });
        }
    }
    Ok(Damage::Middle {
        unit_start,
        damage: fault,
        kind,
        resume,
    })
}

/// For salvage: the start of the first unit after the one the valid record at `at` is in.
/// When that unit is broken a second time before it ends (two damaged spots in one atomic
/// batch), the search goes on from the next valid record after the break.
fn unit_start_after(
    cursor: &mut SegmentCursor,
    mut at: u64,
    data_end: u64,
) -> std::io::Result<Option<u64>> {
    loop {
        if let Some(end) = cursor.after_unit_end(at)? {
            return Ok(Some(end));
        }
        // `after_unit_end` stopped at the record that does not read.
        let broken = cursor.offset();
        match cursor.find_record(broken, data_end, None)? {
            Some(next) => at = next,
            None => return Ok(None),
        }
    }
}

/// What the search after a damaged record found.
enum Found {
    /// Nothing valid follows and the data ends where a torn write can: a torn tail.
    Tail,
    /// Data follows that the bounded search cannot account for.
    Unknown,
    /// A valid record (chained to the end of the data, unless salvaging) starts here.
    At(u64),
}

fn find_resume(
    cursor: &mut SegmentCursor,
    damage: u64,
    claimed_end: Option<u64>,
    data_end: u64,
    salvage: bool,
) -> std::io::Result<Found> {
    if let Some(next) = claimed_end.filter(|&end| end < data_end) {
        if cursor.chain_holds_from(next, data_end)? {
            return Ok(Found::At(next));
        }
    }
    if salvage {
        return Ok(match cursor.find_record(damage, data_end, None)? {
            Some(resume) => Found::At(resume),
            None => Found::Tail,
        });
    }
    let limit = data_end.min((damage + 1 + SEARCH_WINDOW).max(claimed_end.unwrap_or(0)));
    if let Some(resume) = cursor.find_record(damage, limit, Some(data_end))? {
        return Ok(Found::At(resume));
    }
    let header_says_torn = claimed_end.is_some_and(|end| end >= data_end);
    Ok(if header_says_torn || limit >= data_end {
        Found::Tail
    } else {
        Found::Unknown
    })
}
