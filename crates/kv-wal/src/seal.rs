//! Seals: what a segment closed by rotation states about itself, so that a segment later cut
//! short at a record boundary, emptied or deleted is noticed (the record format has no
//! per-segment length).
//!
//! Two records of the log's own, each a tombstone of a reserved key flagged with bit 6
//! (`FORMAT.md`, "Seals"):
//! - the *opening*, at offset 0 of every segment a rotation starts, states the previous
//!   segment's id, record count and data length. It is synced, with the new segment's name,
//!   before the previous segment is sealed;
//! - the *seal*, appended to the segment rotation closes, states that segment's id, record
//!   count and data length (the seal's own offset).
//!
//! So a sealed segment proves that the segment after it existed, opening and all: a sealed
//! segment with no successor, or whose successor does not open with the matching opening,
//! is damage, not a crash. Neither record is ever handed to readers.

use crate::record::{self, RecordRef};

/// The first bytes of a seal's or an opening's key.
const MAGIC: &[u8; 8] = b"\0kv-wal\0";
/// Magic, mark, then segment id, record count and data length (u64, little-endian).
const KEY_LEN: usize = MAGIC.len() + 1 + 3 * 8;
/// Where the key starts in the record: one-byte klen, one-byte vlen (0), flags.
const KEY_AT: usize = 3;
/// The whole length of a seal or opening record.
pub(crate) const RECORD_LEN: u64 = (KEY_AT + KEY_LEN + 4) as u64;

/// Which of the two records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// At offset 0 of a segment a rotation started; states the previous segment.
    Opening,
    /// At the end of a segment rotation closed; states that segment.
    Seal,
}

impl Mark {
    fn byte(self) -> u8 {
        match self {
            Mark::Opening => b'O',
            Mark::Seal => b'S',
        }
    }
}

/// What a seal or opening states about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The segment's id.
    pub(crate) segment: u64,
    /// How many records it holds (its seal and opening not counted).
    pub(crate) records: u64,
    /// The length of its data: every byte before its seal.
    pub(crate) len: u64,
}

/// The encoded record.
pub(crate) fn encode(mark: Mark, summary: Summary) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_LEN);
    key.extend_from_slice(MAGIC);
    key.push(mark.byte());
    for field in [summary.segment, summary.records, summary.len] {
        key.extend_from_slice(&field.to_le_bytes());
    }
    let mut out = Vec::with_capacity(RECORD_LEN as usize);
    record::encode_log_meta(&mut out, &key);
    debug_assert_eq!(out.len() as u64, RECORD_LEN);
    out
}

/// Reads a record of the log's own; `None` when it is no seal or opening this version
/// writes (damage: nothing else carries bit 6).
pub(crate) fn decode(record: &RecordRef<'_>) -> Option<(Mark, Summary)> {
    let key = record.key();
    if key.len() != KEY_LEN || !key.starts_with(MAGIC) || !record.stored_value().is_empty() {
        return None;
    }
    let mark = match key[MAGIC.len()] {
        b'O' => Mark::Opening,
        b'S' => Mark::Seal,
        _ => return None,
    };
    let field = |i: usize| {
        let at = MAGIC.len() + 1 + 8 * i;
        u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"))
    };
    Some((
        mark,
        Summary {
            segment: field(0),
            records: field(1),
            len: field(2),
        },
    ))
}

/// Whether `bytes`, found at offset `at` of segment `segment` where its records end, are a
/// seal that a crash tore: every byte either what the seal holds there or zero (a write cut
/// short, or its pages written back out of order). When `records` is unknown (a reader that
/// did not count from the segment's start), the count and checksum bytes are not compared.
pub(crate) fn is_torn_seal(bytes: &[u8], segment: u64, records: Option<u64>, at: u64) -> bool {
    if bytes.is_empty() || bytes.len() as u64 > RECORD_LEN {
        return false;
    }
    let expected = encode(
        Mark::Seal,
        Summary {
            segment,
            records: records.unwrap_or(0),
            len: at,
        },
    );
    let count_at = KEY_AT + MAGIC.len() + 1 + 8;
    let unknown = |i: usize| {
        records.is_none() && ((count_at..count_at + 8).contains(&i) || i >= RECORD_LEN as usize - 4)
    };
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == 0 || b == expected[i] || unknown(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{decode as decode_record, Decoded, RecordKind};

    #[test]
    fn a_seal_is_a_nori_wal_tombstone_that_reads_back() {
        let summary = Summary {
            segment: 7,
            records: 1234,
            len: 99_999,
        };
        let bytes = encode(Mark::Seal, summary);
        let Decoded::Record(record, len) = decode_record(&bytes) else {
            panic!("a seal decodes as a record");
        };
        assert_eq!(len as u64, RECORD_LEN);
        assert_eq!(record.kind(), RecordKind::Delete);
        assert!(record.is_log_meta());
        assert_eq!(decode(&record), Some((Mark::Seal, summary)));
    }

    #[test]
    fn a_torn_seal_is_told_from_other_bytes() {
        let summary = Summary {
            segment: 3,
            records: 10,
            len: 500,
        };
        let bytes = encode(Mark::Seal, summary);
        let mut torn = bytes.clone();
        torn[30..].fill(0);
        assert!(is_torn_seal(&torn, 3, Some(10), 500));
        assert!(is_torn_seal(&bytes[..17], 3, None, 500));
        assert!(!is_torn_seal(&torn, 4, Some(10), 500), "another segment's");
        assert!(!is_torn_seal(&torn, 3, Some(10), 501), "another offset");
        let mut other = bytes.clone();
        other[30] ^= 1;
        assert!(!is_torn_seal(&other, 3, Some(10), 500));
        assert!(!is_torn_seal(&[9; 41], 3, None, 500));
    }
}
