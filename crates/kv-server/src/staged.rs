//! The view a replicated node's leader runs a command in: reads see the store (and the
//! command's own writes first), writes are only collected, as the final state of each key
//! with an absolute deadline, to be proposed as one Raft entry.
//!
//! Every decision that depends on time (a relative TTL, whether a key has expired) is made
//! here, once, on the leader, against one timestamp taken when the command is staged: an
//! entry carries only unconditional puts (with absolute deadlines) and deletes, so applying
//! it does the same on every replica whatever its clock says. The replication's own keys
//! ([`kv_raft::is_reserved`]) are invisible here: not read, not listed, not counted.
//!
//! A write's view also sees the leader's writes proposed before it and not yet applied
//! (`replicated/in_flight.rs`), over the store; a read's view sees the store alone, as
//! nothing uncommitted may be read.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kv_raft::{is_reserved, Write};
use kv_store::{Current, KeysPage, KvStore, Ttl, Update, Updated};

use crate::keyspace::{decide, ttl_at, Keyspace, Pending};
use crate::replicated::{InFlight, Overlay};
use crate::reply::Reply;

/// See the module docs.
pub(crate) struct Staged {
    store: KvStore,
    /// The leader's writes proposed and not yet settled, as the staging began (none for a
    /// read's view).
    in_flight: Arc<Overlay>,
    /// Whether anything read came from `in_flight`.
    read_in_flight: Cell<bool>,
    now: SystemTime,
    pending: BTreeMap<Bytes, Pending>,
}

impl Staged {
    /// A view of `store` at `now`, taken to the millisecond as Redis keeps time.
    pub(crate) fn new(store: KvStore, now: SystemTime) -> Staged {
        Staged {
            store,
            in_flight: Arc::default(),
            read_in_flight: Cell::new(false),
            now: crate::keyspace::whole_millis(now),
            pending: BTreeMap::new(),
        }
    }

    /// A view of `store` with `in_flight`'s writes over it, at `now`: a write's view.
    pub(crate) fn after(store: KvStore, in_flight: &InFlight, now: SystemTime) -> Staged {
        Staged {
            in_flight: in_flight.snapshot(),
            ..Staged::new(store, now)
        }
    }

    /// Whether the commands read anything from the writes in flight: then what they
    /// answered holds only if those writes are applied, even if they wrote nothing
    /// themselves.
    pub(crate) fn read_in_flight(&self) -> bool {
        self.read_in_flight.get()
    }

    /// The writes the commands made: each key's final state, in key order.
    pub(crate) fn into_writes(self) -> Vec<Write> {
        self.pending
            .into_iter()
            .map(|(key, state)| match state {
                None => Write::Delete { key },
                Some((value, deadline)) => Write::Put {
                    key,
                    value,
                    deadline_ms: deadline.map(unix_ms),
                },
            })
            .collect()
    }

    fn live(&self, state: Pending) -> Pending {
        state.filter(|(_, deadline)| deadline.is_none_or(|d| d > self.now))
    }

    fn read(&self, key: &Bytes) -> Pending {
        match self.pending.get(key) {
            Some(state) => self.live(state.clone()),
            None => self.base(key),
        }
    }

    /// `key` as the view found it before its own writes: as the writes in flight left it,
    /// else as the store holds it.
    fn base(&self, key: &Bytes) -> Pending {
        if is_reserved(key) {
            return None;
        }
        if let Some((_, state)) = self.in_flight.get(key) {
            self.read_in_flight.set(true);
            return self.live(state.clone());
        }
        // One lookup, judged at the staging time: a value and a deadline read apart could
        // straddle the deadline and make an expiring key persistent (INCR, APPEND, KEEPTTL).
        let (value, deadline) = self.store.get_with_deadline_at(key, self.now)?;
        self.live(Some((value.into(), deadline)))
    }

    /// `stored` (keys of the store) as this view sees them, each once: the store's, then
    /// those only the writes in flight or this command's own writes hold, each as the view
    /// reads it.
    fn overlay(&mut self, stored: impl IntoIterator<Item = Bytes>) -> Vec<Bytes> {
        let extra = self.changed_keys();
        let mut keys: Vec<Bytes> = stored
            .into_iter()
            .filter(|key| !is_reserved(key) && extra.binary_search(key).is_err())
            .filter(|key| self.read(key).is_some())
            .collect();
        keys.extend(extra.into_iter().filter(|key| self.read(key).is_some()));
        keys
    }

    /// The keys whose state may differ from the store's, sorted, each once: those the
    /// writes in flight write (a listing or a count depends on all of them) and this
    /// view's own.
    fn changed_keys(&self) -> Vec<Bytes> {
        if !self.in_flight.is_empty() {
            self.read_in_flight.set(true);
        }
        let mut changed: Vec<Bytes> = self.in_flight.keys().cloned().collect();
        changed.extend(self.pending.keys().cloned());
        changed.sort();
        changed.dedup();
        changed
    }
}

/// Unix milliseconds, rounded up so that a deadline never comes earlier on a replica.
fn unix_ms(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ms = since.as_millis() as u64;
    if since.subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms + 1
    }
}

impl Keyspace for Staged {
    fn get(&mut self, key: &Bytes) -> Option<Bytes> {
        self.read(key).map(|(value, _)| value)
    }

    /// The store's own `get_many` for the keys this command has not written: its keys are
    /// read at one instant (per batch of 64, as on a single node), so an `MGET` or a
    /// read-only `EXEC` never sees half of an entry's writes.
    fn get_many(&mut self, keys: &[Bytes]) -> Vec<Option<Bytes>> {
        let local: Vec<bool> = keys
            .iter()
            .map(|key| {
                self.pending.contains_key(key)
                    || is_reserved(key)
                    || self.in_flight.contains_key(key)
            })
            .collect();
        let stored: Vec<&Bytes> = keys
            .iter()
            .zip(&local)
            .filter(|(_, &local)| !local)
            .map(|(key, _)| key)
            .collect();
        let mut values = self.store.get_many(&stored).into_iter();
        keys.iter()
            .zip(local)
            .map(|(key, local)| {
                if local {
                    self.get(key)
                } else {
                    values.next().flatten().map(Into::into)
                }
            })
            .collect()
    }

    fn ttl(&mut self, key: &Bytes) -> Ttl {
        ttl_at(self.read(key), self.now)
    }

    fn now(&self) -> SystemTime {
        self.now
    }

    fn update(
        &mut self,
        key: &Bytes,
        f: &mut dyn FnMut(Option<Current<'_>>) -> Update,
    ) -> kv_store::Result<Updated> {
        // A relative TTL is a deadline from the staging time: `decided.after` is not needed.
        let decided = decide(self.read(key), self.now, f);
        if let Some(state) = decided.state {
            self.pending.insert(key.clone(), state);
        }
        Ok(decided.updated)
    }

    fn put_all(&mut self, pairs: &[(Bytes, Bytes)]) -> kv_store::Result<()> {
        for (key, value) in pairs {
            self.pending
                .insert(key.clone(), Some((value.clone(), None)));
        }
        Ok(())
    }

    fn keys(&mut self) -> Vec<Bytes> {
        let stored = self.store.keys();
        self.overlay(stored)
    }

    fn for_each_key(&mut self, f: &mut dyn FnMut(&Bytes)) {
        for key in self.keys() {
            f(&key);
        }
    }

    /// As [`keys`](Self::keys), by pages ([`Staged::overlay`] of the store's page): the
    /// keys the writes in flight or this command's own change, those live in this view,
    /// are on every page.
    fn keys_page(&mut self, cursor: u64, count: usize) -> Option<KeysPage> {
        let mut page = self.store.keys_page(cursor, count)?;
        page.keys = self.overlay(std::mem::take(&mut page.keys));
        Some(page)
    }

    fn len(&mut self) -> usize {
        // The store's count (less the replication's one key of its own), adjusted by what
        // the command changed: no key is copied.
        let changed = self.changed_keys();
        let is: usize = changed
            .iter()
            .filter(|key| self.read(key).is_some())
            .count();
        // The store's keys outside `changed` do not change meanwhile (only entries in
        // flight are applied, and they write keys in `changed`), but the count and the
        // lookups are not one instant: counted again if an apply came between them.
        let meta = Bytes::from_static(kv_raft::META_KEY);
        let count = || {
            let total = self.store.len();
            let was = changed
                .iter()
                .chain(std::iter::once(&meta))
                .filter(|key| self.store.contains_key(key))
                .count();
            (total - was + is, self.store.len() == total)
        };
        let (mut len, mut still) = count();
        for _ in 0..8 {
            if still {
                break;
            }
            (len, still) = count();
        }
        len
    }

    fn flush(&mut self) -> kv_store::Result<()> {
        for key in self.keys() {
            self.pending.insert(key, None);
        }
        Ok(())
    }

    fn deadline(&mut self, key: &Bytes) -> Option<Option<SystemTime>> {
        self.read(key).map(|(_, deadline)| deadline)
    }

    fn atomically(&mut self, f: &mut dyn FnMut(&mut dyn Keyspace) -> Reply) -> Reply {
        f(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_store::TtlUpdate;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_key_live_at_the_staging_time_keeps_its_deadline_through_a_read_modify_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path()).unwrap();
        let staged_at = SystemTime::now();
        store
            .put_with_ttl("n", "5", Duration::from_millis(200))
            .unwrap();
        // The deadline passes on the store's clock after the command was staged: the window
        // between staging and reading, widened.
        std::thread::sleep(Duration::from_millis(300));
        let mut view = Staged::new(store, staged_at);
        view.update(&b("n"), &mut |current| {
            assert_eq!(current.map(|c| c.value.to_vec()), Some(b"5".to_vec()));
            Update::put_with(b("6"), TtlUpdate::Keep)
        })
        .unwrap();
        let writes = view.into_writes();
        assert!(
            matches!(
                &writes[..],
                [Write::Put {
                    deadline_ms: Some(_),
                    ..
                }]
            ),
            "the key became persistent: {writes:?}"
        );
    }

    #[test]
    fn mget_never_sees_half_of_an_atomic_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open_with(
            dir.path(),
            kv_store::Options::default().durability(kv_store::Durability::None),
        )
        .unwrap();
        store.put("a", "0").unwrap();
        store.put("b", "0").unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let torn = std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let mut batch = kv_store::WriteBatch::new();
                    batch.put("a", i.to_string());
                    batch.put("b", i.to_string());
                    store.write(batch).unwrap();
                }
            });
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        let keys = [b("a"), b("b")];
                        let started = std::time::Instant::now();
                        let mut torn = 0;
                        while started.elapsed() < Duration::from_millis(1500) {
                            let mut view = Staged::new(store.clone(), SystemTime::now());
                            let values = view.get_many(&keys);
                            torn += usize::from(values[0] != values[1]);
                        }
                        torn
                    })
                })
                .collect();
            let torn: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            writer.join().unwrap();
            torn
        });
        assert_eq!(torn, 0, "MGET saw a and b from different batches");
    }

    #[test]
    fn a_relative_ttl_becomes_a_deadline_from_the_staging_time_and_reserved_keys_are_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path()).unwrap();
        store.put(kv_raft::META_KEY, "meta").unwrap();
        store.put("a", "1").unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(5_000_000_000_000);
        let mut view = Staged::new(store, now);
        assert_eq!(view.keys(), vec![b("a")]);
        assert_eq!(view.get(&Bytes::from_static(kv_raft::META_KEY)), None);
        view.update(&b("t"), &mut |_| {
            Update::put_with(b("v"), TtlUpdate::After(Duration::from_secs(10)))
        })
        .unwrap();
        view.update(&b("a"), &mut |_| Update::Delete).unwrap();
        assert_eq!(view.len(), 1);
        assert_eq!(
            view.into_writes(),
            vec![
                Write::Delete { key: b("a") },
                Write::Put {
                    key: b("t"),
                    value: b("v"),
                    deadline_ms: Some(5_000_000_010_000),
                },
            ]
        );
    }

    #[test]
    fn a_write_staged_after_others_reads_them_and_a_read_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path()).unwrap();
        store.put(kv_raft::META_KEY, "meta").unwrap();
        store.put("n", "1").unwrap();
        store.put("gone", "x").unwrap();
        store.put("kept", "y").unwrap();
        let in_flight = Arc::new(InFlight::default());
        in_flight.begin(2);
        in_flight.propose(&[
            Write::Put {
                key: b("n"),
                value: b("5"),
                deadline_ms: None,
            },
            Write::Delete { key: b("gone") },
            Write::Put {
                key: b("new"),
                value: b("z"),
                deadline_ms: None,
            },
        ]);
        let now = SystemTime::now();
        let mut write = Staged::after(store.clone(), &in_flight, now);
        let mut seen = None;
        write
            .update(&b("n"), &mut |current| {
                seen = current.map(|c| c.value.to_vec());
                Update::put_with(b("6"), TtlUpdate::Keep)
            })
            .unwrap();
        assert_eq!(
            seen,
            Some(b"5".to_vec()),
            "INCR over a write in flight lost it"
        );
        assert!(write.read_in_flight());
        let mut keys = write.keys();
        keys.sort();
        assert_eq!(keys, vec![b("kept"), b("n"), b("new")]);
        assert_eq!(write.len(), 3);
        assert_eq!(
            write.get_many(&[b("gone"), b("kept"), b("new")]),
            vec![None, Some(b("y")), Some(b("z"))]
        );
        // A read sees only what is applied: nothing in flight is committed yet.
        let mut read = Staged::new(store.clone(), now);
        assert_eq!(read.get(&b("n")), Some(b("1")));
        assert_eq!(read.get(&b("gone")), Some(b("x")));
        assert_eq!(read.len(), 3);
        assert!(!read.read_in_flight());
        // A write's view that reads nothing in flight says so.
        let apart = Staged::after(store, &in_flight, now);
        assert_eq!(apart.read(&b("kept")), Some((b("y"), None)));
        assert!(!apart.read_in_flight());
    }
}
