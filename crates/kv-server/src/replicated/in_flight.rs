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
//! An entry leaves only once its fate is known (its proposer's waiter is told, on a task of
//! its own, so a client that goes away cannot leave a stale write behind), and only the
//! keys that no later entry has written since.

use std::collections::HashMap;
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
    /// entry's number.
    keys: HashMap<Bytes, (u64, Pending)>,
}

impl InFlight {
    /// Starts a staging in `term`, after a linearizable read in it: entries of an older
    /// term are applied or lost by now.
    pub(crate) fn begin(&self, term: u64) {
        let mut inner = self.inner.lock();
        if inner.term != Some(term) {
            inner.term = Some(term);
            inner.keys.clear();
        }
    }

    /// `key`'s state as the entries in flight leave it, if one of them writes it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Pending> {
        self.inner
            .lock()
            .keys
            .get(key)
            .map(|(_, state)| state.clone())
    }

    /// The keys the entries in flight write.
    pub(crate) fn keys(&self) -> Vec<Bytes> {
        self.inner.lock().keys.keys().cloned().collect()
    }

    /// Records an entry of `writes` as proposed; returns its number, for
    /// [`settle`](Self::settle).
    pub(crate) fn propose(&self, writes: &[Write]) -> u64 {
        let mut inner = self.inner.lock();
        let number = inner.next;
        inner.next += 1;
        for write in writes {
            let (key, state) = match write {
                Write::Put {
                    key,
                    value,
                    deadline_ms,
                } => (
                    key,
                    Some((
                        value.clone(),
                        deadline_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
                    )),
                ),
                Write::Delete { key } => (key, None),
            };
            inner.keys.insert(key.clone(), (number, state));
        }
        number
    }

    /// Entry `number`, which wrote `keys`, is applied or will never be: its keys that no
    /// later entry wrote are read from the store again.
    pub(crate) fn settle(&self, number: u64, keys: &[Bytes]) {
        let mut inner = self.inner.lock();
        for key in keys {
            if inner.keys.get(key).is_some_and(|(n, _)| *n == number) {
                inner.keys.remove(key);
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
            .get(key.as_bytes())
            .map(|state| state.map(|(v, _)| v))
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
        in_flight.settle(
            second,
            &[Bytes::from_static(b"a"), Bytes::from_static(b"c")],
        );
        assert!(in_flight.keys().is_empty());
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
