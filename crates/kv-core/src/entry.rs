//! The packed entry: key, value and deadline in one allocation.
//!
//! ```text
//! flags (1) | key length (1 or 4) | deadline (8, if flagged) | key | value
//! ```
//!
//! One allocation per entry, not two, is what keeps the index within its memory budget
//! (workload W5). The allocation is reference-counted, so that a read hands out a
//! [`Value`](crate::Value) sharing it instead of a copy of the value. It is a thin
//! `triomphe::ThinArc`: its count and length (16 bytes) lead the allocation, and an index
//! slot holds one 8-byte pointer, where `Arc<[u8]>` would take a 16-byte slot (and
//! `Box<[u8]>` did). A 16-byte key and 100-byte value cost 118 bytes, 134 with the count
//! and length, which the allocator serves from a 144-byte chunk.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

use triomphe::ThinArc;

/// Flag: a deadline (8 bytes, little-endian unix ms) follows the key length.
const HAS_DEADLINE: u8 = 0b01;
/// Flag: the key length takes 4 bytes instead of 1.
const LONG_KEY: u8 = 0b10;

/// One key with its value and optional deadline, in a single heap allocation.
///
/// Entries compare, hash and borrow as their key (never their value), so an index of entries
/// is looked up by key slice and holds one entry per key.
///
/// Cloning an entry shares its allocation (a reference count), it never copies it: an entry
/// is never changed once made, so a clone held after the index dropped or replaced the entry
/// still reads what it was.
#[derive(Clone)]
pub struct Entry(ThinArc<(), u8>);

/// Bytes the reference count and length of an entry's allocation take ahead of its packed
/// bytes.
pub(crate) const SHARED_HEADER: usize = 2 * std::mem::size_of::<usize>();

/// Entries up to this size are packed on the stack and copied into their allocation once;
/// larger ones are written into a zeroed allocation in place.
const PACKED_ON_STACK: usize = 256;

impl Entry {
    /// Packs `key`, `value` and `deadline` (unix ms) into one allocation.
    pub fn new(key: &[u8], value: &[u8], deadline: Option<u64>) -> Self {
        let long = key.len() > usize::from(u8::MAX);
        // flags (1) | key length (1 or 4) | deadline (0 or 8)
        let mut header = [0u8; 13];
        let mut at = 1;
        if long {
            header[0] |= LONG_KEY;
            let klen = u32::try_from(key.len()).expect("keys are shorter than 4 GiB");
            header[1..5].copy_from_slice(&klen.to_le_bytes());
            at += 4;
        } else {
            header[1] = key.len() as u8;
            at += 1;
        }
        if let Some(deadline) = deadline {
            header[0] |= HAS_DEADLINE;
            header[at..at + 8].copy_from_slice(&deadline.to_le_bytes());
            at += 8;
        }
        let len = at + key.len() + value.len();
        debug_assert_eq!(
            len,
            Self::packed_len(key.len(), value.len(), deadline.is_some())
        );
        let fill = |buf: &mut [u8]| {
            buf[..at].copy_from_slice(&header[..at]);
            buf[at..at + key.len()].copy_from_slice(key);
            buf[at + key.len()..].copy_from_slice(value);
        };
        // One heap allocation either way, never a heap buffer copied into another. Two
        // sizes of stack buffer, since each is zeroed first: a workload entry (118 bytes)
        // zeroes 128, not 256.
        if len <= PACKED_ON_STACK / 2 {
            return Entry(packed_on_stack::<{ PACKED_ON_STACK / 2 }>(len, fill));
        }
        if len <= PACKED_ON_STACK {
            return Entry(packed_on_stack::<PACKED_ON_STACK>(len, fill));
        }
        let mut packed = ThinArc::from_header_and_iter((), std::iter::repeat_n(0u8, len));
        packed.with_arc_mut(|arc| {
            fill(
                triomphe::Arc::get_mut(arc)
                    .expect("a new allocation is not shared")
                    .slice_mut(),
            )
        });
        Entry(packed)
    }

    /// The packed bytes.
    #[inline]
    fn packed(&self) -> &[u8] {
        &self.0.slice
    }

    /// The size of the allocation of an entry with these parts.
    pub fn packed_len(key_len: usize, value_len: usize, has_deadline: bool) -> usize {
        let long = key_len > usize::from(u8::MAX);
        1 + if long { 4 } else { 1 } + if has_deadline { 8 } else { 0 } + key_len + value_len
    }

    /// Where the key starts and how long it is.
    #[inline]
    fn key_span(&self) -> (usize, usize) {
        let flags = self.packed()[0];
        let (klen, mut at) = if flags & LONG_KEY != 0 {
            let bytes: [u8; 4] = self.packed()[1..5].try_into().expect("4 bytes");
            (u32::from_le_bytes(bytes) as usize, 5)
        } else {
            (usize::from(self.packed()[1]), 2)
        };
        if flags & HAS_DEADLINE != 0 {
            at += 8;
        }
        (at, klen)
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        let (at, klen) = self.key_span();
        &self.packed()[at..at + klen]
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        let (at, klen) = self.key_span();
        &self.packed()[at + klen..]
    }

    /// When the entry expires, in unix milliseconds.
    #[inline]
    pub fn deadline(&self) -> Option<u64> {
        if self.packed()[0] & HAS_DEADLINE == 0 {
            return None;
        }
        let at = if self.packed()[0] & LONG_KEY != 0 {
            5
        } else {
            2
        };
        let bytes: [u8; 8] = self.packed()[at..at + 8].try_into().expect("8 bytes");
        Some(u64::from_le_bytes(bytes))
    }

    /// Whether the entry is expired at `now` (unix ms): its deadline is `now` or earlier.
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }

    /// The same key and value with another deadline.
    pub fn with_deadline(&self, deadline: Option<u64>) -> Entry {
        Entry::new(self.key(), self.value(), deadline)
    }

    /// Bytes of the packed entry (key, value and header), without the reference counts
    /// ahead of them in the allocation.
    #[inline]
    pub fn allocated(&self) -> usize {
        self.packed().len()
    }

    /// Whether `self` and `other` are the same allocation (one a clone of the other).
    #[cfg(test)]
    fn same_allocation(&self, other: &Entry) -> bool {
        self.0.ptr() == other.0.ptr()
    }
}

/// The `len` bytes `fill` writes, packed in a stack buffer of `N` bytes, then copied into
/// their allocation.
#[inline]
fn packed_on_stack<const N: usize>(len: usize, fill: impl FnOnce(&mut [u8])) -> ThinArc<(), u8> {
    let mut packed = [0u8; N];
    fill(&mut packed[..len]);
    ThinArc::from_header_and_slice((), &packed[..len])
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl std::hash::Hash for Entry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value_len", &self.value().len())
            .field("deadline", &self.deadline())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_workload_entry_fits_a_144_byte_chunk() {
        let entry = Entry::new(&[7; 16], &[9; 100], None);
        assert_eq!(entry.allocated(), 118);
        // glibc serves up to 136 bytes from a 144-byte chunk.
        assert!(entry.allocated() + SHARED_HEADER <= 136);
    }

    #[test]
    fn a_clone_shares_the_allocation() {
        let entry = Entry::new(b"k", b"v", Some(3));
        let clone = entry.clone();
        assert!(clone.same_allocation(&entry));
        assert!(!Entry::new(b"k", b"v", Some(3)).same_allocation(&entry));
    }

    #[test]
    fn an_entry_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Entry>(), std::mem::size_of::<usize>());
    }

    proptest! {
        #[test]
        fn fields_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..600),
            value in proptest::collection::vec(any::<u8>(), 0..300),
            deadline: Option<u64>,
        ) {
            let entry = Entry::new(&key, &value, deadline);
            prop_assert_eq!(entry.key(), &key[..]);
            prop_assert_eq!(entry.value(), &value[..]);
            prop_assert_eq!(entry.deadline(), deadline);
            let moved = entry.with_deadline(Some(5));
            prop_assert_eq!(moved.key(), &key[..]);
            prop_assert_eq!(moved.deadline(), Some(5));
        }
    }
}
