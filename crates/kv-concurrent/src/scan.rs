//! Scans over the shards, from either end: a k-way merge of the shards' ranges for the
//! ordered index, a walk of one shard after another for the hash index. Entries are read a
//! chunk at a time, each chunk copied out under one short hold of its shard's read lock.
//!
//! A scan's position ([`Scanner`]) is kept apart from the state it reads, so an owner of the
//! state (the store's handle, shared through an `Arc`) can carry a scan to another thread;
//! [`Scan`] is the same over a borrowed [`Sharded`].
//!
//! Not a snapshot: a write made while a scan runs may be seen or not, and a batch across
//! shards may be seen in part. What a scan promises, writers or not:
//! - every entry present throughout is given: once with the ordered index, at least once
//!   with the hash index (whose walk starts a shard over when its table was reorganised);
//! - nothing absent throughout is given, and no entry expired when it is given;
//! - ordered: the front gives keys in strictly ascending order, the back in strictly
//!   descending order, within the bounds, and every key the front gives is below every key
//!   the back gives: the two ends never cross.

use std::ops::Bound;

use bytes::{Bytes, BytesMut};
use kv_core::{Entry, IndexKind};

use crate::sharded::{restarted, Shard, Sharded, MAX_RESTARTS};

/// An entry as a scan gives it: key, value and deadline (unix ms), the key and value slices
/// of the chunk they were read in.
pub type ScanItem = (Bytes, Bytes, Option<u64>);

/// Entries an ordered scan reads in its first round, spread over the shards (at least
/// [`MIN_FIRST_CHUNK`] each); each later read of a shard doubles its chunk, up to
/// [`MAX_CHUNK`]. Every read is a seek in the shard's tree (a few cache misses), so short scans
/// want few reads, while copying entries they do not return is waste too: a 100-key scan over
/// 2 shards reads 2 × 64 entries once instead of 4, 8, 16 and 32 from each (measured on a
/// million keys: 32 µs a scan with chunks from 4).
const FIRST_ROUND: usize = 128;
const MIN_FIRST_CHUNK: usize = 4;
/// The most entries copied out under one hold of a shard's lock. A long scan reads most of
/// its entries at this size: 256 keeps a writer of the shard waiting tens of microseconds at
/// most (the figure measured for compaction's chunks of 256), and a seek per 256 entries
/// costs a long scan little.
const MAX_CHUNK: usize = 256;
/// The first chunk of each shard of a hash walk (doubling up to [`MAX_CHUNK`] too).
const FIRST_HASH_CHUNK: usize = 32;
/// Bytes set aside per entry of a chunk, before it is read.
const BYTES_PER_ENTRY: usize = 128;

/// Where one entry lies in its chunk's buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    at: usize,
    key: usize,
    value: usize,
    deadline: Option<u64>,
}

/// Entries copied out of one shard under one hold of its lock, in one buffer (one
/// allocation a chunk rather than two an entry, which were most of a short scan's time),
/// given out from either end.
#[derive(Debug, Default)]
struct Chunk {
    buffer: Bytes,
    spans: Vec<Span>,
    /// The entries from `next` up to `end` are not given out yet.
    next: usize,
    end: usize,
}

/// Copies entries into a chunk being read.
struct Filler<'a> {
    buffer: BytesMut,
    spans: &'a mut Vec<Span>,
    values: bool,
}

impl Filler<'_> {
    #[inline]
    fn push(&mut self, entry: &Entry) {
        let (key, value) = (entry.key(), entry.value());
        let value = if self.values { value } else { &[] };
        self.spans.push(Span {
            at: self.buffer.len(),
            key: key.len(),
            value: value.len(),
            deadline: entry.deadline(),
        });
        self.buffer.extend_from_slice(key);
        self.buffer.extend_from_slice(value);
    }
}

impl Chunk {
    fn is_used_up(&self) -> bool {
        self.next == self.end
    }

    fn key_at(&self, index: usize) -> &[u8] {
        let span = &self.spans[index];
        &self.buffer[span.at..span.at + span.key]
    }

    /// The key of the first entry not given out yet.
    #[inline]
    fn front_key(&self) -> Option<&[u8]> {
        (self.next < self.end).then(|| self.key_at(self.next))
    }

    fn item(&self, index: usize) -> ScanItem {
        let Span {
            at,
            key,
            value,
            deadline,
        } = self.spans[index];
        (
            self.buffer.slice(at..at + key),
            self.buffer.slice(at + key..at + key + value),
            deadline,
        )
    }

    #[inline]
    fn take_front(&mut self) -> Option<ScanItem> {
        if self.next == self.end {
            return None;
        }
        self.next += 1;
        Some(self.item(self.next - 1))
    }

    fn take_back(&mut self) -> Option<ScanItem> {
        if self.next == self.end {
            return None;
        }
        self.end -= 1;
        Some(self.item(self.end))
    }

    /// The last key read into the chunk (the one the next read resumes after), as a slice
    /// of its buffer.
    fn last_read_key(&self) -> Option<Bytes> {
        let span = self.spans.last()?;
        Some(self.buffer.slice(span.at..span.at + span.key))
    }

    /// Replaces the chunk with what `read` copies in (`read` takes and releases the lock:
    /// the buffer is frozen after).
    fn fill(&mut self, entries: usize, values: bool, read: impl FnOnce(&mut Filler<'_>)) {
        self.spans.clear();
        let mut filler = Filler {
            buffer: BytesMut::with_capacity(entries * BYTES_PER_ENTRY),
            spans: &mut self.spans,
            values,
        };
        read(&mut filler);
        self.buffer = filler.buffer.freeze();
        self.next = 0;
        self.end = self.spans.len();
    }
}

/// Whether an entry with `deadline` is live at the time `now` gives; the clock is read only
/// for an entry with a deadline (a clock read costs as much as giving out a short entry).
#[inline]
fn live(deadline: Option<u64>, now: &dyn Fn() -> u64) -> bool {
    deadline.is_none_or(|d| d > now())
}

/// The position of a scan over a [`Sharded`] state, kept apart from the state: each call
/// is given the state (always the same one) and a clock. Owned, `Send` and `'static`, so
/// whoever owns the state can carry a scan with it; [`Scan`] pairs it with a borrowed state.
///
/// Reads a chunk of entries per shard at a time, under one short hold of that shard's read
/// lock, copied out into one buffer: an item kept after the scan keeps its chunk's buffer (at
/// most 256 entries) alive. The clock is read once a chunk, and again for each entry with a
/// deadline as it is given, so no entry is given after its deadline. See the module's
/// documentation for what is seen of writes made meanwhile.
#[derive(Debug)]
pub struct Scanner {
    kind: Kind,
    values: bool,
}

#[derive(Debug)]
enum Kind {
    Ordered(Merge),
    Hash(HashWalk),
}

impl Scanner {
    /// The live entries with keys in the range, in key order from the front, in reverse key
    /// order from the back.
    ///
    /// # Errors
    ///
    /// [`kv_core::Error::NotOrdered`] unless `state` keeps the ordered index.
    pub fn range(
        state: &Sharded,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> Result<Scanner, kv_core::Error> {
        if state.index_kind() != IndexKind::Ordered {
            return Err(kv_core::Error::NotOrdered);
        }
        Ok(Scanner {
            kind: Kind::Ordered(Merge::new(
                start.map(Bytes::copy_from_slice),
                end.map(Bytes::copy_from_slice),
            )),
            values: true,
        })
    }

    /// The live entries whose keys start with `prefix`, in key order from the front, in
    /// reverse key order from the back.
    ///
    /// # Errors
    ///
    /// [`kv_core::Error::NotOrdered`] unless `state` keeps the ordered index.
    pub fn prefix(state: &Sharded, prefix: &[u8]) -> Result<Scanner, kv_core::Error> {
        let end = kv_core::prefix_end(prefix);
        Scanner::range(
            state,
            Bound::Included(prefix),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        )
    }

    /// Every live entry: in key order with the ordered index; shard after shard with the
    /// hash index (the front from the first shard up, the back from the last one down, in no
    /// particular order within a shard).
    pub fn all(state: &Sharded) -> Scanner {
        match state.index_kind() {
            IndexKind::Ordered => Scanner::range(state, Bound::Unbounded, Bound::Unbounded)
                .expect("the index is ordered"),
            IndexKind::Hash => Scanner {
                kind: Kind::Hash(HashWalk::new(state.shard_count())),
                values: true,
            },
        }
    }

    /// The same scan, copying keys only: every item's value is empty.
    #[must_use]
    pub fn keys_only(mut self) -> Scanner {
        self.values = false;
        self
    }

    /// The next entry from the front, reading `state` (the one this scan was made for) at
    /// the time `now` gives (unix ms).
    pub fn next(&mut self, state: &Sharded, now: &dyn Fn() -> u64) -> Option<ScanItem> {
        match &mut self.kind {
            Kind::Ordered(merge) => merge.next(state, self.values, now),
            Kind::Hash(walk) => walk.next(state, self.values, now),
        }
    }

    /// The next entry from the back; see [`next`](Self::next).
    pub fn next_back(&mut self, state: &Sharded, now: &dyn Fn() -> u64) -> Option<ScanItem> {
        match &mut self.kind {
            Kind::Ordered(merge) => merge.next_back(state, self.values, now),
            Kind::Hash(walk) => walk.next_back(state, self.values, now),
        }
    }
}

/// One shard's part of one end of an ordered scan.
#[derive(Debug)]
struct Lane {
    /// The last chunk read; for the back end, in descending key order.
    chunk: Chunk,
    /// Where the next read resumes: after the last key read, or the scan's own bound on this
    /// end before the first read.
    from: Bound<Bytes>,
    /// The last key given out of an earlier chunk (the chunk now held gave none yet).
    given_before: Option<Bytes>,
    size: usize,
    exhausted: bool,
}

impl Lane {
    /// The last key this lane gave out, if any.
    fn last_given(&self) -> Option<&[u8]> {
        match self.chunk.next {
            0 => self.given_before.as_deref(),
            n => Some(self.chunk.key_at(n - 1)),
        }
    }

    /// Reads the shard's next chunk once the one held is used up: entries after `from` up
    /// to `far` (this end's bound in its direction: the scan's other bound, or the key the
    /// other end gave last, which only tightens it).
    fn refill<const BACK: bool>(
        &mut self,
        shard: &Shard,
        far: Bound<&[u8]>,
        values: bool,
        now: &dyn Fn() -> u64,
    ) {
        if !self.chunk.is_used_up() || self.exhausted {
            return;
        }
        if let Some(key) = self.chunk.last_read_key() {
            self.given_before = Some(key);
        }
        let size = self.size;
        // At most `size` entries are looked at per hold of the lock, expired or not (a mass
        // expiry not swept yet must not keep writers waiting for the whole range); a chunk
        // of expired entries only gives nothing, and the next is read after the lock was
        // let go.
        loop {
            // The clock is read once a chunk, not once an entry.
            let now = now();
            let from = self.from.as_ref().map(|b| &b[..]);
            let mut examined = 0;
            let mut resume = None;
            self.chunk.fill(size, values, |filler| {
                let state = shard.state.read();
                let (start, end) = if BACK { (far, from) } else { (from, far) };
                let entries = state
                    .range_even_expired(start, end)
                    .expect("the scan checked the index is ordered");
                let mut last = None;
                let mut read = |e: &'_ Entry| {
                    if !e.is_expired(now) {
                        filler.push(e);
                    }
                };
                if BACK {
                    for e in entries.rev().take(size) {
                        read(e);
                        (examined, last) = (examined + 1, Some(e));
                    }
                } else {
                    for e in entries.take(size) {
                        read(e);
                        (examined, last) = (examined + 1, Some(e));
                    }
                }
                // One copy per chunk, under the lock: where the next read resumes.
                resume = last.map(|e| Bytes::copy_from_slice(e.key()));
            });
            if let Some(key) = resume {
                self.from = Bound::Excluded(key);
            }
            self.exhausted = examined < size;
            if !self.chunk.is_used_up() || self.exhausted {
                break;
            }
        }
        self.size = (size * 2).min(MAX_CHUNK);
    }
}

/// One end of an ordered scan: a lane per shard, and which lane gives out next.
#[derive(Debug)]
struct End<const BACK: bool> {
    /// Empty until this end is first used (a scan used from one end never reads for the
    /// other).
    lanes: Vec<Lane>,
    /// The lanes that have an entry buffered, as a binary heap by that entry's key (the
    /// least first at the front, the greatest first at the back). The keys stay in the
    /// lanes' buffers: the heap moves shard numbers only (measured on W8: 19.3 µs a 100-key
    /// scan with a heap of keys and values sliced out ahead, 14.4-15.4 µs this way).
    heap: Vec<usize>,
    /// The lane this end gave its last entry from.
    last: Option<usize>,
}

impl<const BACK: bool> End<BACK> {
    fn new() -> Self {
        End {
            lanes: Vec::new(),
            heap: Vec::new(),
            last: None,
        }
    }

    /// Whether `a` comes before `b` in this end's direction.
    #[inline]
    fn before(a: &[u8], b: &[u8]) -> bool {
        if BACK {
            a > b
        } else {
            a < b
        }
    }

    /// The last key this end gave out.
    fn last_given(&self) -> Option<&[u8]> {
        self.lanes[self.last?].last_given()
    }

    /// Reads every shard's first chunk, from `near` (this end's bound) towards `far`.
    fn start(
        &mut self,
        state: &Sharded,
        near: &Bound<Bytes>,
        far: Bound<&[u8]>,
        values: bool,
        now: &dyn Fn() -> u64,
    ) {
        let shards = state.shard_count();
        self.lanes = (0..shards)
            .map(|shard| {
                let mut lane = Lane {
                    chunk: Chunk::default(),
                    from: near.clone(),
                    given_before: None,
                    size: (FIRST_ROUND / shards).max(MIN_FIRST_CHUNK),
                    exhausted: false,
                };
                lane.refill::<BACK>(state.shard(shard), far, values, now);
                lane
            })
            .collect();
        let lanes = &self.lanes;
        self.heap = (0..shards)
            .filter(|&s| lanes[s].chunk.front_key().is_some())
            .collect();
        // A sorted array is a valid heap.
        self.heap.sort_by(|&a, &b| {
            let (a, b) = (lanes[a].chunk.front_key(), lanes[b].chunk.front_key());
            if BACK {
                b.cmp(&a)
            } else {
                a.cmp(&b)
            }
        });
    }

    /// The key this end would give next.
    #[inline]
    fn peek(&self) -> Option<&[u8]> {
        self.lanes[*self.heap.first()?].chunk.front_key()
    }

    /// Gives out the entry [`peek`](Self::peek) shows, reading its shard's next chunk if that
    /// used its chunk up.
    #[inline]
    fn take(
        &mut self,
        state: &Sharded,
        far: Bound<&[u8]>,
        values: bool,
        now: &dyn Fn() -> u64,
    ) -> ScanItem {
        let shard = self.heap[0];
        let lane = &mut self.lanes[shard];
        let item = lane
            .chunk
            .take_front()
            .expect("a lane in the heap has an entry");
        self.last = Some(shard);
        lane.refill::<BACK>(state.shard(shard), far, values, now);
        if lane.chunk.front_key().is_none() {
            self.heap.swap_remove(0);
        }
        self.sift_down_root();
        item
    }

    /// Restores the heap after its root's key moved on (or the root was replaced).
    fn sift_down_root(&mut self) {
        let (heap, lanes) = (&mut self.heap, &self.lanes);
        let before =
            |a: usize, b: usize| match (lanes[a].chunk.front_key(), lanes[b].chunk.front_key()) {
                (Some(a), Some(b)) => Self::before(a, b),
                _ => unreachable!("every lane in the heap has an entry"),
            };
        let mut at = 0;
        loop {
            let left = 2 * at + 1;
            if left >= heap.len() {
                return;
            }
            let right = left + 1;
            let child = if right < heap.len() && before(heap[right], heap[left]) {
                right
            } else {
                left
            };
            if !before(heap[child], heap[at]) {
                return;
            }
            heap.swap(at, child);
            at = child;
        }
    }
}

/// An ordered scan: a merge of the shards' ranges from each end.
///
/// The two ends meet without crossing: an end gives a key only if it lies strictly before
/// the last key the other end gave, in its direction, and reads no further than that key.
/// Keys are unique across shards and each end's keys strictly monotonic, so no entry is
/// given by both ends, and once an end's next key reaches the other's last, it stays there.
/// Once either end has run out, both stay out: a key written later between the last keys
/// given must not reopen a scan that said it was over (`FusedIterator`).
#[derive(Debug)]
struct Merge {
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    front: End<false>,
    back: End<true>,
    finished: bool,
}

/// The bound an end reads up to: `bound`, or just short of the key the other end gave last.
fn far<'a>(bound: &'a Bound<Bytes>, other_last: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match other_last {
        Some(key) => Bound::Excluded(key),
        None => bound.as_ref().map(|b| &b[..]),
    }
}

impl Merge {
    fn new(start: Bound<Bytes>, end: Bound<Bytes>) -> Self {
        Merge {
            start,
            end,
            front: End::new(),
            back: End::new(),
            finished: false,
        }
    }

    fn next(&mut self, state: &Sharded, values: bool, now: &dyn Fn() -> u64) -> Option<ScanItem> {
        let Merge {
            start,
            end,
            front,
            back,
            finished,
        } = self;
        if *finished {
            return None;
        }
        let item = step(front, back, start, end, state, values, now);
        *finished = item.is_none();
        item
    }

    fn next_back(
        &mut self,
        state: &Sharded,
        values: bool,
        now: &dyn Fn() -> u64,
    ) -> Option<ScanItem> {
        let Merge {
            start,
            end,
            front,
            back,
            finished,
        } = self;
        if *finished {
            return None;
        }
        let item = step(back, front, end, start, state, values, now);
        *finished = item.is_none();
        item
    }
}

/// The next live entry of end `this`, reading from its own bound `near` towards `away`
/// (the scan's other bound) but never reaching the key `other` gave last: `None` once
/// nothing is left before it.
fn step<const BACK: bool, const OTHER: bool>(
    this: &mut End<BACK>,
    other: &End<OTHER>,
    near: &Bound<Bytes>,
    away: &Bound<Bytes>,
    state: &Sharded,
    values: bool,
    now: &dyn Fn() -> u64,
) -> Option<ScanItem> {
    let other_last = if other.lanes.is_empty() {
        None
    } else {
        other.last_given()
    };
    if this.lanes.is_empty() {
        this.start(state, near, far(away, other_last), values, now);
    }
    loop {
        let key = this.peek()?;
        // Strictly before the other end's last key, in this end's direction.
        let reached = |last: &[u8]| if BACK { key <= last } else { key >= last };
        if other_last.is_some_and(reached) {
            return None;
        }
        let item = this.take(state, far(away, other_last), values, now);
        if live(item.2, now) {
            return Some(item);
        }
    }
}

/// Where a hash walk stands in one shard: its `kv_core` cursor and the chunk last read.
#[derive(Debug)]
struct ShardWalk {
    cursor: kv_core::Cursor,
    chunk: Chunk,
    size: usize,
    /// Times the walk was sent back to the shard's first bucket by a reorganised table.
    restarts: usize,
    done: bool,
}

impl Default for ShardWalk {
    fn default() -> Self {
        ShardWalk {
            cursor: kv_core::Cursor::default(),
            chunk: Chunk::default(),
            size: FIRST_HASH_CHUNK,
            restarts: 0,
            done: false,
        }
    }
}

impl ShardWalk {
    /// Reads the shard's next chunk (the one held is used up). As in
    /// [`Sharded::for_each_in_shard_chunked`]: after [`MAX_RESTARTS`] restarts the rest of
    /// the shard is read under one hold of the lock, so that the walk ends.
    fn refill(&mut self, shard: &Shard, values: bool, now: u64) {
        let max = if self.restarts >= MAX_RESTARTS {
            usize::MAX
        } else {
            self.size
        };
        let before = self.cursor.clone();
        let (cursor, mut done) = (&mut self.cursor, false);
        self.chunk.fill(self.size, values, |filler| {
            let state = shard.state.read();
            done = state.walk(cursor, max, now, |e| filler.push(e));
        });
        self.done = done;
        if restarted(&before, &self.cursor) {
            self.restarts += 1;
        }
        self.size = (self.size * 2).min(MAX_CHUNK);
    }
}

/// A walk over the shards of a hash index: the front walks shards from the first up, the
/// back from the last down. When both ends are in the same shard they share its walk (one
/// cursor, one chunk taken from both ends), so no entry is given twice by the two.
#[derive(Debug)]
struct HashWalk {
    /// The shard the front walks.
    front_shard: usize,
    /// One past the shard the back walks; the walk is over when it reaches `front_shard`.
    back_end: usize,
    /// The front's walk, and the shared one when both ends are in one shard.
    front: ShardWalk,
    /// The back's walk, while it is in a shard of its own.
    back: ShardWalk,
}

impl HashWalk {
    fn new(shards: usize) -> Self {
        HashWalk {
            front_shard: 0,
            back_end: shards,
            front: ShardWalk::default(),
            back: ShardWalk::default(),
        }
    }

    fn shared(&self) -> bool {
        self.front_shard + 1 == self.back_end
    }

    fn next(&mut self, state: &Sharded, values: bool, now: &dyn Fn() -> u64) -> Option<ScanItem> {
        while self.front_shard < self.back_end {
            if let Some(item) = self.front.chunk.take_front() {
                if live(item.2, now) {
                    return Some(item);
                }
                continue;
            }
            if !self.front.done {
                self.front
                    .refill(state.shard(self.front_shard), values, now());
                continue;
            }
            // This shard is done: on to the next, whose walk the back may have begun.
            self.front_shard += 1;
            self.front = if self.shared() {
                std::mem::take(&mut self.back)
            } else {
                ShardWalk::default()
            };
        }
        None
    }

    fn next_back(
        &mut self,
        state: &Sharded,
        values: bool,
        now: &dyn Fn() -> u64,
    ) -> Option<ScanItem> {
        while self.front_shard < self.back_end {
            let shared = self.shared();
            let walk = if shared {
                &mut self.front
            } else {
                &mut self.back
            };
            if let Some(item) = walk.chunk.take_back() {
                if live(item.2, now) {
                    return Some(item);
                }
                continue;
            }
            if !walk.done {
                walk.refill(state.shard(self.back_end - 1), values, now());
                continue;
            }
            // This shard is done: on to the one below. If the front is there, its walk is
            // `front`, which the back now shares; if the front was in this shard too, the
            // walk is over.
            self.back_end -= 1;
            self.back = ShardWalk::default();
        }
        None
    }
}

/// A streamed scan over a borrowed [`Sharded`] state at a fixed time: yields the `(key,
/// value)` pairs of live entries, from either end. With the ordered index (and always for
/// [`Sharded::range`] and [`Sharded::scan_prefix`]) in key order from the front and reverse
/// key order from the back.
#[derive(Debug)]
pub struct Scan<'a> {
    state: &'a Sharded,
    scanner: Scanner,
    now: u64,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(state: &'a Sharded, scanner: Scanner, now: u64) -> Self {
        Scan {
            state,
            scanner,
            now,
        }
    }

    /// The next entry as [`Iterator::next`] gives it, with its deadline (unix ms) too: what an
    /// export in key order needs.
    pub fn next_with_deadline(&mut self) -> Option<ScanItem> {
        let now = self.now;
        self.scanner.next(self.state, &|| now)
    }

    /// The next entry from the back, with its deadline.
    pub fn next_back_with_deadline(&mut self) -> Option<ScanItem> {
        let now = self.now;
        self.scanner.next_back(self.state, &|| now)
    }
}

impl Iterator for Scan<'_> {
    type Item = (Bytes, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_deadline()
            .map(|(key, value, _)| (key, value))
    }
}

impl DoubleEndedIterator for Scan<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next_back_with_deadline()
            .map(|(key, value, _)| (key, value))
    }
}

impl std::iter::FusedIterator for Scan<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_core::{Expiry, OpRef};
    use kv_durable::Sink;

    #[test]
    fn merges_shards_in_key_order_within_bounds() {
        let state = Sharded::new(IndexKind::Ordered, 16);
        for i in 0..5000u32 {
            let key = format!("k{i:05}");
            let expiry = if i % 7 == 0 {
                Expiry::AtUnixMillis(10)
            } else {
                Expiry::Never
            };
            state.apply(
                OpRef::Put {
                    key: key.as_bytes(),
                    value: key.as_bytes(),
                    expiry,
                },
                0,
            );
        }
        let all: Vec<_> = state
            .range(Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap()
            .collect();
        let expected: Vec<_> = (0..5000u32)
            .filter(|i| i % 7 != 0)
            .map(|i| format!("k{i:05}"))
            .collect();
        assert_eq!(all.len(), expected.len());
        for ((key, value), want) in all.iter().zip(&expected) {
            assert_eq!((&key[..], &value[..]), (want.as_bytes(), want.as_bytes()));
        }
        let reversed: Vec<_> = state
            .range(Bound::Unbounded, Bound::Unbounded, 10)
            .unwrap()
            .rev()
            .collect();
        assert!(reversed.iter().rev().eq(all.iter()));
        let some: Vec<_> = state
            .range(Bound::Excluded(b"k00100"), Bound::Included(b"k00110"), 0)
            .unwrap()
            .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
            .collect();
        assert_eq!(
            some,
            (101..=110).map(|i| format!("k{i:05}")).collect::<Vec<_>>()
        );
        assert_eq!(state.scan_prefix(b"k0001", 0).unwrap().count(), 10);
        assert_eq!(state.scan_prefix(b"k0001", 0).unwrap().rev().count(), 10);
        let mut first = state
            .range(Bound::Included(b"k00007"), Bound::Unbounded, 0)
            .unwrap();
        assert_eq!(
            first.next_with_deadline(),
            Some((b"k00007"[..].into(), b"k00007"[..].into(), Some(10)))
        );
        assert_eq!(first.next_with_deadline().unwrap().2, None);
        assert!(Sharded::new(IndexKind::Hash, 2)
            .range(Bound::Unbounded, Bound::Unbounded, 0)
            .is_err());
    }

    /// Runs of expired entries longer than a chunk (a mass expiry not swept yet) are read
    /// past a chunk at a time, and the live entries around them all come out, from both ends.
    #[test]
    fn long_runs_of_expired_entries_are_crossed_chunk_by_chunk() {
        let state = Sharded::new(IndexKind::Ordered, 1);
        let mut live = Vec::new();
        for i in 0..3_000u32 {
            let key = format!("k{i:05}");
            let expired = !(i == 0 || i == 1_500 || i == 2_999);
            state.apply(
                OpRef::Put {
                    key: key.as_bytes(),
                    value: b"v",
                    expiry: if expired {
                        Expiry::AtUnixMillis(10)
                    } else {
                        Expiry::Never
                    },
                },
                0,
            );
            if !expired {
                live.push(key);
            }
        }
        let now = || 20;
        let mut forward = Scanner::all(&state);
        let keys: Vec<_> = std::iter::from_fn(|| forward.next(&state, &now))
            .map(|(key, _, _)| String::from_utf8(key.to_vec()).unwrap())
            .collect();
        assert_eq!(keys, live);
        let mut backward = Scanner::all(&state);
        let mut keys: Vec<_> = std::iter::from_fn(|| backward.next_back(&state, &now))
            .map(|(key, _, _)| String::from_utf8(key.to_vec()).unwrap())
            .collect();
        keys.reverse();
        assert_eq!(keys, live);
    }

    /// Once one end has run out, the other gives nothing either, even a key written since
    /// between the last keys given: the scan said it was over.
    #[test]
    fn an_ended_scan_stays_ended_from_both_ends() {
        let state = Sharded::new(IndexKind::Ordered, 4);
        let put = |key: &[u8]| {
            state.apply(
                OpRef::Put {
                    key,
                    value: b"v",
                    expiry: Expiry::Never,
                },
                0,
            );
        };
        put(b"b");
        put(b"c");
        let now = || 0;
        let mut scanner = Scanner::range(
            &state,
            Bound::Included(&b"a"[..]),
            Bound::Excluded(&b"z"[..]),
        )
        .unwrap();
        assert_eq!(&scanner.next(&state, &now).unwrap().0[..], b"b");
        assert_eq!(&scanner.next(&state, &now).unwrap().0[..], b"c");
        assert!(scanner.next(&state, &now).is_none());
        put(b"m");
        assert!(
            scanner.next_back(&state, &now).is_none(),
            "the back end reopened"
        );
        assert!(scanner.next(&state, &now).is_none());
    }

    /// An entry read into a chunk while live and given out after its deadline is skipped:
    /// the scan reads the clock again for entries with a deadline.
    #[test]
    fn an_entry_that_expires_while_buffered_is_not_given() {
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 1);
            for (key, deadline) in [(b"a", None), (b"b", Some(100)), (b"c", None)] {
                state.apply(
                    OpRef::Put {
                        key,
                        value: b"v",
                        expiry: deadline.map_or(Expiry::Never, Expiry::AtUnixMillis),
                    },
                    0,
                );
            }
            let time = std::cell::Cell::new(0);
            let now = || time.get();
            let mut scanner = Scanner::all(&state);
            let first = scanner.next(&state, &now).unwrap();
            time.set(100);
            let rest: Vec<_> = std::iter::from_fn(|| scanner.next(&state, &now)).collect();
            // The hash index may give "b" first, while it is live: then only the rest
            // must leave it out. In key order "a" comes first and "b" waits in the chunk.
            assert!(
                rest.iter().all(|(key, _, _)| key != "b"),
                "{kind:?}: {first:?} then {rest:?}"
            );
            let mut given: Vec<_> = rest.iter().chain([&first]).map(|e| e.0.clone()).collect();
            given.sort();
            let expected: &[&str] = if first.0 == "b" {
                &["a", "b", "c"]
            } else {
                &["a", "c"]
            };
            assert_eq!(given, expected, "{kind:?}");
        }
    }

    #[test]
    fn keys_only_copies_no_values() {
        for kind in [IndexKind::Hash, IndexKind::Ordered] {
            let state = Sharded::new(kind, 4);
            for i in 0..100u32 {
                state.apply(
                    OpRef::Put {
                        key: &i.to_be_bytes(),
                        value: b"value",
                        expiry: Expiry::Never,
                    },
                    0,
                );
            }
            let mut scanner = Scanner::all(&state).keys_only();
            let items: Vec<_> = std::iter::from_fn(|| scanner.next(&state, &|| 0)).collect();
            assert_eq!(items.len(), 100, "{kind:?}");
            assert!(items
                .iter()
                .all(|(key, value, _)| key.len() == 4 && value.is_empty()));
        }
    }
}
