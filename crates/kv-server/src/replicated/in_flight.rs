//! The leader's writes that are proposed and not yet settled (applied, or known never to
//! be): what a write staged after them must read.
//!
//! Writes are staged one at a time (the replica's `writing` lock) but proposed without
//! waiting for the ones before them to commit, so that Raft replicates many in one round
//! and the logs sync them together. A write staged meanwhile reads each key as the last
//! write proposed before it left it: from here first, then from the store. That is sound
//! because of how the entries can end:
//!
//! - Entries proposed in one term are appended in the order proposed, by this node alone,
//!   so they commit in that order or a suffix of them is lost together (Raft's log
//!   matching): an entry staged on top of one that is lost is lost too.
//! - An entry appended in another term than it was staged in has its writes skipped
//!   (`Request::staged_term`), and so has every entry staged on top of it, since those
//!   were staged in the same term and appended after it.
//! - A staging in a new term starts from the store alone ([`InFlight::begin`]): the
//!   linearizable read it follows waits until every entry committed, this leader's older
//!   ones included, is applied; the rest will never be.
//!
//! An entry leaves the moment its fate is known, inside Raft ([`kv_raft::Settling`]): before
//! Raft serves the linearizable read of any later staging, so a write the leader refused
//! (its lease lapsed, say, in the same term) is never staged over, and a client that goes
//! away cannot leave a stale write behind. It leaves only the keys that no later entry has
//! written since. A staging reads one snapshot of the set ([`InFlight::snapshot`]), so what
//! it reads twice reads the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use kv_raft::Write;
use parking_lot::Mutex;

use crate::keyspace::Pending;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The term the entries here were staged in: one in which this node, leading, made a
    /// linearizable read, so that every entry of an older term it will ever apply is
    /// applied.
    term: Option<u64>,
    /// The number the next entry proposed gets.
    next: u64,
    /// Each key's state as the last entry proposed that wrote it left it, with that
    /// entry's number; shared with the stagings that read it, copied on a change while
    /// one does (it holds only the writes in flight).
    keys: Arc<Overlay>,
}

/// Each key's state as the writes in flight leave it, with the number of the entry that
/// wrote it last.
pub(crate) type Overlay = HashMap<Bytes, (u64, Pending)>;

impl InFlight {
    /// Starts a staging in `term`, after a linearizable read in it: entries of an older
    /// term are applied or lost by now.
    pub(crate) fn begin(&self, term: u64) {
        let mut inner = self.inner.lock();
        if inner.term != Some(term) {
            inner.term = Some(term);
            inner.keys = Arc::default();
        }
    }

    /// The writes in flight now, for one staging.
    pub(crate) fn snapshot(&self) -> Arc<Overlay> {
        Arc::clone(&self.inner.lock().keys)
    }

    /// Records an entry of `writes` as proposed; returns its number, for
    /// [`settle`](Self::settle).
    pub(crate) fn propose(&self, writes: &[Write]) -> u64 {
        let mut inner = self.inner.lock();
        let number = inner.next;
        inner.next += 1;
        let keys = Arc::make_mut(&mut inner.keys);
        for write in writes {
            let state = match write {
                Write::Put {
                    value, deadline_ms, ..
                } => Some((
                    value.clone(),
                    deadline_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                )),
                Write::Delete { .. } => None,
            };
            keys.insert(write.key().clone(), (number, state));
        }
        number
    }

    /// Entry `number`, which wrote `keys`, is applied or will never be: its keys that no
    /// later entry wrote are read from the store again.
    pub(crate) fn settle(&self, number: u64, keys: &[Bytes]) {
        let mut inner = self.inner.lock();
        let mine =
            |key: &Bytes, inner: &Inner| inner.keys.get(key).is_some_and(|(n, _)| *n == number);
        if keys.iter().any(|key| mine(key, &inner)) {
            let all = Arc::make_mut(&mut inner.keys);
            for key in keys {
                if all.get(key).is_some_and(|(n, _)| *n == number) {
                    all.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Write {
        Write::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            deadline_ms: None,
        }
    }

    fn value(in_flight: &InFlight, key: &str) -> Option<Option<Bytes>> {
        in_flight
            .snapshot()
            .get(key.as_bytes())
            .map(|(_, state)| state.as_ref().map(|(v, _)| v.clone()))
    }

    #[test]
    fn a_key_reads_as_the_last_entry_left_it_until_that_entry_settles() {
        let in_flight = InFlight::default();
        in_flight.begin(3);
        let first = in_flight.propose(&[put("a", "1"), put("b", "1")]);
        let second = in_flight.propose(&[
            put("a", "2"),
            Write::Delete {
                key: Bytes::from_static(b"c"),
            },
        ]);
        assert_eq!(value(&in_flight, "a"), Some(Some(Bytes::from_static(b"2"))));
        assert_eq!(value(&in_flight, "c"), Some(None));
        // The first entry settling leaves the second's write of `a` in place.
        in_flight.settle(first, &[Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        assert_eq!(value(&in_flight, "a"), Some(Some(Bytes::from_static(b"2"))));
        assert_eq!(value(&in_flight, "b"), None);
        let taken = in_flight.snapshot();
        in_flight.settle(
            second,
            &[Bytes::from_static(b"a"), Bytes::from_static(b"c")],
        );
        assert!(in_flight.snapshot().is_empty());
        // A staging's snapshot stays as it was taken.
        assert_eq!(taken.len(), 2);
    }

    #[test]
    fn a_new_term_forgets_the_entries_of_the_old_one() {
        let in_flight = InFlight::default();
        in_flight.begin(3);
        in_flight.propose(&[put("a", "1")]);
        in_flight.begin(3);
        assert!(value(&in_flight, "a").is_some());
        in_flight.begin(5);
        assert_eq!(value(&in_flight, "a"), None);
    }
}
