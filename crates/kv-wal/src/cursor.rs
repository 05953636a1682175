//! A streaming, validating cursor over one segment file.
//!
//! The cursor reads the file through a bounded buffer and hands out records one *unit* at a
//! time: a unit is a single record, or every record of an atomic batch. A unit is checked
//! whole (every checksum, and that the batch ends) before its first record is handed out, so
//! a reader never sees part of a batch.

use std::sync::Arc;

use crate::error::CorruptionKind;
use crate::fs::WalFile;
use crate::record::{self, Decoded, Layout, RecordRef};

/// The page size in which a disk writes back what was not synced (and so may lose it).
pub(crate) const PAGE: u64 = 4096;

/// How much the cursor reads at a time. Large enough that a scan is bound by checksumming,
/// not by system calls; a unit larger than this grows the buffer to fit it.
const READ_CHUNK: usize = 1 << 20;

/// What lies at the cursor after [`SegmentCursor::next_unit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A complete unit is ready for [`SegmentCursor::next_in_unit`].
    Unit,
    /// The cursor reached its end bound cleanly.
    End,
    /// The bytes at the cursor do not form a complete unit; the first bad record is at
    /// `damage` (the unit starts at [`SegmentCursor::offset`]).
    Stop {
        /// Offset of the first record that fails.
        damage: u64,
        /// What is wrong with it.
        kind: CorruptionKind,
    },
}

/// A cursor over the bytes `[start, end)` of one segment.
#[derive(Debug)]
pub(crate) struct SegmentCursor {
    file: Arc<dyn WalFile>,
    end: u64,
    /// The buffer; `buf[..valid]` holds the file's bytes from offset `buf_start`.
    buf: Vec<u8>,
    valid: usize,
    buf_start: u64,
    /// The next record to hand out.
    at: u64,
    /// `[at, unit_end)` holds validated records of complete units.
    unit_end: u64,
    /// The layout of the record at `at` when the pending unit is that one record: the
    /// common case hands it out without parsing it a second time.
    single: Option<Layout>,
    /// Where the segment's non-zero bytes end, once asked.
    data_end: Option<u64>,
}

impl SegmentCursor {
    pub(crate) fn new(file: Arc<dyn WalFile>, start: u64, end: u64) -> Self {
        SegmentCursor {
            file,
            end,
            buf: Vec::new(),
            valid: 0,
            buf_start: start,
            at: start,
            unit_end: start,
            single: None,
            data_end: None,
        }
    }

    /// The offset of the next record: the start of the pending or damaged unit.
    pub(crate) fn offset(&self) -> u64 {
        self.at
    }

    /// The end bound.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Whether records of a validated unit are waiting to be handed out.
    pub(crate) fn has_pending(&self) -> bool {
        self.at < self.unit_end
    }

    /// Moves the cursor to `offset`, dropping any pending unit.
    pub(crate) fn seek(&mut self, offset: u64) {
        self.at = offset;
        self.unit_end = offset;
        self.single = None;
        if offset < self.buf_start || offset > self.buf_start + self.valid as u64 {
            self.buf_start = offset;
            self.valid = 0;
        }
    }

    /// The buffered bytes from `offset` on, reading more first so that at least `len` bytes
    /// (or everything up to the end bound) are there. Keeps every byte from `self.at` on.
    fn ensure(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        debug_assert!(offset >= self.at && offset >= self.buf_start);
        let wanted_end = offset.saturating_add(len as u64).min(self.end);
        let buffered_end = self.buf_start + self.valid as u64;
        if buffered_end < wanted_end {
            // Drop what lies before the cursor, then read after what is kept.
            let keep_from = (self.at - self.buf_start) as usize;
            self.buf.copy_within(keep_from..self.valid, 0);
            self.valid -= keep_from;
            self.buf_start = self.at;
            let needed = (wanted_end - self.buf_start) as usize;
            let target = needed
                .max(self.valid + READ_CHUNK)
                .min((self.end - self.buf_start) as usize);
            if self.buf.len() < target {
                self.buf.resize(target, 0);
            }
            while self.valid < target {
                let read_at = self.buf_start + self.valid as u64;
                let n = self
                    .file
                    .read_at(&mut self.buf[self.valid..target], read_at)?;
                if n == 0 {
                    // The file is shorter than the bound said: it ends here.
                    self.end = read_at;
                    break;
                }
                self.valid += n;
            }
        }
        let from = (offset - self.buf_start) as usize;
        Ok(&self.buf[from.min(self.valid)..self.valid])
    }

    /// Validates the next unit. Call only when no records are pending.
    pub(crate) fn next_unit(&mut self) -> std::io::Result<Step> {
        debug_assert!(!self.has_pending());
        let mut offset = self.at;
        if offset >= self.end {
            return Ok(Step::End);
        }
        let mut want = record::MAX_HEADER_LEN;
        loop {
            if offset >= self.end {
                return Ok(Step::Stop {
                    damage: offset,
                    kind: CorruptionKind::UnterminatedBatch,
                });
            }
            let available = self.ensure(offset, want)?;
            let have = available.len();
            match record::parse(available, true) {
                Ok(layout) => {
                    if !layout.continues_batch() {
                        if offset == self.at {
                            self.single = Some(layout);
                        }
                        self.unit_end = offset + layout.len() as u64;
                        return Ok(Step::Unit);
                    }
                    offset += layout.len() as u64;
                    want = record::MAX_HEADER_LEN;
                }
                Err(Decoded::Incomplete { .. })
                    if have as u64 >= self.end.saturating_sub(offset) =>
                {
                    return Ok(Step::Stop {
                        damage: offset,
                        kind: CorruptionKind::Truncated,
                    });
                }
                Err(Decoded::Incomplete { len }) => {
                    want = len.unwrap_or(have + record::MAX_HEADER_LEN)
                }
                Err(Decoded::Corrupt(kind)) => {
                    return Ok(Step::Stop {
                        damage: offset,
                        kind,
                    })
                }
                Err(Decoded::Record(..)) => unreachable!("parse reports records as Ok"),
            }
        }
    }

    /// Hands out the next record of the validated unit, with its offset.
    pub(crate) fn next_in_unit(&mut self) -> Option<(u64, RecordRef<'_>)> {
        if !self.has_pending() {
            return None;
        }
        let offset = self.at;
        let from = (offset - self.buf_start) as usize;
        let buf = &self.buf[from..self.valid];
        // The unit was validated in this very buffer, so it parses again.
        let layout = match self.single.take() {
            Some(layout) => layout,
            None => record::parse(buf, false).expect("a validated record parses again"),
        };
        self.at += layout.len() as u64;
        Some((offset, layout.record(buf)))
    }

    /// Whether the damaged record at `damage`, which its header says runs to `claimed_end`
    /// (if believed), lost a page to a power cut: where the zeros begin. Either the bytes from
    /// `damage` to the next page boundary are all zero, or a whole page that starts inside
    /// the record (or inside its longest header) is. Pages the disk never got read as what
    /// was there before them, which in the newest segment is zeros.
    pub(crate) fn hole_in(
        &mut self,
        damage: u64,
        claimed_end: Option<u64>,
        data_end: u64,
    ) -> std::io::Result<Option<u64>> {
        let first_boundary = (damage / PAGE + 1) * PAGE;
        let head = self.read_bytes(damage, first_boundary - damage)?;
        if head.len() as u64 == first_boundary - damage && head.iter().all(|&b| b == 0) {
            return Ok(Some(damage));
        }
        let extent_end = claimed_end
            .unwrap_or(0)
            .max(damage + record::MAX_HEADER_LEN as u64)
            .min(data_end);
        let mut page = first_boundary;
        while page < extent_end {
            let bytes = self.read_bytes(page, PAGE)?;
            if bytes.len() as u64 == PAGE && bytes.iter().all(|&b| b == 0) {
                return Ok(Some(page));
            }
            page += PAGE;
        }
        Ok(None)
    }

    /// Steps over the next record of the validated unit if it is one of the log's own (a
    /// seal or an opening, never handed to readers); whether it did.
    pub(crate) fn skip_log_meta(&mut self) -> bool {
        if !self.has_pending() {
            return false;
        }
        let from = (self.at - self.buf_start) as usize;
        let layout = match self.single {
            Some(layout) => layout,
            None => record::parse(&self.buf[from..self.valid], false)
                .expect("a validated record parses again"),
        };
        if !layout.is_log_meta() {
            return false;
        }
        self.single = None;
        self.at += layout.len() as u64;
        true
    }

    /// The offset just past the last non-zero byte of the segment (up to the end bound):
    /// everything from there on is free space left by preallocation. Reads only the file's
    /// data regions, backwards from the last one (the preallocated tail is a hole the file
    /// layer skips), and only once per cursor: salvage asks at every piece of damage.
    pub(crate) fn data_end(&mut self) -> std::io::Result<u64> {
        if let Some(end) = self.data_end {
            return Ok(end.min(self.end));
        }
        let regions = self.data_regions(0)?;
        let mut found = 0;
        for &(start, end) in regions.iter().rev() {
            if let Some(last) = self.last_nonzero(start, end)? {
                found = last + 1;
                break;
            }
        }
        self.data_end = Some(found);
        Ok(found)
    }

    /// The data regions of the file in `[from, self.end)`, in order.
    fn data_regions(&self, from: u64) -> std::io::Result<Vec<(u64, u64)>> {
        let mut regions = Vec::new();
        let mut at = from;
        while at < self.end {
            match self.file.data_after(at)? {
                Some((start, end)) if start < self.end && end > start.max(at) => {
                    let start = start.max(at);
                    let end = end.min(self.end);
                    regions.push((start, end));
                    at = end;
                }
                Some((start, _)) if start < self.end => {
                    // An answer that does not move on: take the rest as data.
                    regions.push((at, self.end));
                    break;
                }
                _ => break,
            }
        }
        Ok(regions)
    }

    /// The last non-zero byte in `[start, end)`, reading backwards.
    fn last_nonzero(&self, start: u64, mut end: u64) -> std::io::Result<Option<u64>> {
        let mut chunk = vec![0u8; 64 * 1024];
        while end > start {
            let from = end.saturating_sub(chunk.len() as u64).max(start);
            let len = (end - from) as usize;
            let filled = self.read_fully(&mut chunk[..len], from)?;
            if let Some(i) = last_nonzero_in(&chunk[..filled]) {
                return Ok(Some(from + i as u64));
            }
            end = from;
        }
        Ok(None)
    }

    /// Reads as much of `buf` as the file holds at `offset`.
    fn read_fully(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }

    /// The offset of the first non-zero byte in `[from, to)`, or `to` if there is none;
    /// holes are skipped unread.
    pub(crate) fn first_nonzero(&self, from: u64, to: u64) -> std::io::Result<u64> {
        let mut chunk = vec![0u8; 64 * 1024];
        for (start, end) in self.data_regions(from)? {
            let mut at = start;
            while at < end.min(to) {
                let len = (end.min(to) - at).min(chunk.len() as u64) as usize;
                let n = self.read_fully(&mut chunk[..len], at)?;
                if n == 0 {
                    return Ok(to);
                }
                if let Some(i) = chunk[..n].iter().position(|&b| b != 0) {
                    return Ok(at + i as u64);
                }
                at += n as u64;
            }
            if end >= to {
                break;
            }
        }
        Ok(to)
    }

    /// The bytes `[offset, offset + len)`, or as many of them as the file holds. Moves the
    /// cursor to `offset`.
    pub(crate) fn read_bytes(&mut self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        self.seek(offset);
        let available = self.ensure(offset, len as usize)?;
        Ok(available[..available.len().min(len as usize)].to_vec())
    }

    /// The key length, stored value length and whole length the header at `offset` claims
    /// for its record, if the header reads.
    pub(crate) fn claimed_lengths(
        &mut self,
        offset: u64,
    ) -> std::io::Result<Option<record::Claim>> {
        self.seek(offset);
        let available = self.ensure(offset, record::MAX_HEADER_LEN)?;
        Ok(record::claimed_lengths(available))
    }

    /// The length of the whole, checksummed record at `self.at`, if there is one.
    fn record_len_here(&mut self) -> std::io::Result<Option<u64>> {
        Ok(self.record_here()?.map(|layout| layout.len() as u64))
    }

    /// Where the first unit ending at or after `from` ends: past the first whole record
    /// there that does not continue an atomic batch. What follows is a unit's start, where
    /// salvage may resume without handing out the end of a batch whose start was damaged.
    /// `None` if the records stop first; the cursor is then at the record that does not read.
    pub(crate) fn after_unit_end(&mut self, from: u64) -> std::io::Result<Option<u64>> {
        let mut at = from;
        loop {
            self.seek(at);
            let Some(layout) = self.record_here()? else {
                return Ok(None);
            };
            at += layout.len() as u64;
            if !layout.continues_batch() {
                return Ok(Some(at));
            }
        }
    }

    /// The layout of the whole, checksummed record at `self.at`, if there is one.
    fn record_here(&mut self) -> std::io::Result<Option<record::Layout>> {
        let offset = self.at;
        let mut want = record::MAX_HEADER_LEN;
        loop {
            let available = self.ensure(offset, want)?;
            match record::parse(available, true) {
                Ok(layout) => return Ok(Some(layout)),
                Err(Decoded::Incomplete { len: Some(len) })
                    if len > available.len() && offset + (len as u64) <= self.end =>
                {
                    want = len;
                }
                Err(_) => return Ok(None),
            }
        }
    }

    /// Whether valid records follow one another from `offset` until the data ends (nothing
    /// but zeros, or the end bound, after the last one). Leaves the cursor at `offset`.
    pub(crate) fn chain_holds_from(&mut self, offset: u64, data_end: u64) -> std::io::Result<bool> {
        self.seek(offset);
        let mut records = 0;
        let holds = loop {
            match self.record_len_here()? {
                Some(len) => {
                    records += 1;
                    self.at += len;
                    self.unit_end = self.at;
                }
                None => break records > 0 && self.at >= data_end,
            }
        };
        self.seek(offset);
        Ok(holds)
    }

    /// The offset of the first whole, checksummed record that starts in `(after, limit)` and,
    /// when `chained`, is followed by valid records to the end of the data. Moves the cursor
    /// past `after`: the bytes before are given up.
    pub(crate) fn find_record(
        &mut self,
        after: u64,
        limit: u64,
        chained: Option<u64>,
    ) -> std::io::Result<Option<u64>> {
        let mut offset = after + 1;
        while offset < limit {
            self.seek(offset);
            if self.record_len_here()?.is_some() {
                match chained {
                    None => return Ok(Some(offset)),
                    Some(data_end) if self.chain_holds_from(offset, data_end)? => {
                        return Ok(Some(offset))
                    }
                    Some(_) => {}
                }
            }
            offset += 1;
        }
        Ok(None)
    }
}

/// The index of the last non-zero byte of `bytes`, looking at eight bytes at a time (most of
/// what recovery looks at this way is zeros).
fn last_nonzero_in(bytes: &[u8]) -> Option<usize> {
    let words = bytes.len() / 8;
    let tail = &bytes[words * 8..];
    if let Some(i) = tail.iter().rposition(|&b| b != 0) {
        return Some(words * 8 + i);
    }
    let word = bytes[..words * 8]
        .chunks_exact(8)
        .rposition(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) != 0)?;
    let at = word * 8;
    bytes[at..at + 8]
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::last_nonzero_in;

    #[test]
    fn the_last_non_zero_byte_is_found_wherever_it_lies() {
        for len in 0..40 {
            assert_eq!(last_nonzero_in(&vec![0; len]), None);
            for at in 0..len {
                let mut bytes = vec![0; len];
                bytes[at] = 1;
                if at > 0 {
                    bytes[0] = 2;
                }
                assert_eq!(last_nonzero_in(&bytes), Some(at), "len {len}, at {at}");
            }
        }
    }
}
