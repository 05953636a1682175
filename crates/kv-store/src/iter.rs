//! The store's owned iterators: [`Iter`] over entries, [`Keys`] over keys.

use std::iter::FusedIterator;
use std::sync::Arc;

use bytes::Bytes;
use kv_concurrent::{ScanItem, Scanner};

use crate::store::Inner;

/// A streamed scan of the store's live entries, as `(key, value)`: what
/// [`KvStore::iter`](crate::KvStore::iter), [`range`](crate::KvStore::range) and
/// [`scan_prefix`](crate::KvStore::scan_prefix) return.
///
/// **Order.** With [`IndexKind::Ordered`](crate::IndexKind::Ordered), ascending key order
/// from the front and descending from the back (`.rev()`); the two ends can be used by turns
/// and meet without crossing: each entry is given once, and every key the front gives is
/// below every key the back gives. With the hash index (only `iter`), shard by shard in no
/// particular order, the two ends sharing the shard where they meet.
///
/// **Owned.** The iterator holds the store's shared state, not a borrow of the handle: it is
/// `Send + 'static`, so it can be moved to another thread or kept in a struct. It does not
/// keep the store open: when the last [`KvStore`](crate::KvStore) handle is dropped (or
/// [`close`](crate::KvStore::close) is called) the store closes as usual, releasing its
/// directory, and an iterator that outlives it goes on reading the entries it finds in
/// memory, as other reads after `close` do; they no longer change. The memory is freed when
/// the last iterator is dropped.
///
/// **Streamed, not a snapshot.** Entries are read a chunk at a time per shard (a few dozen
/// at first, at most 256), each chunk copied out under one short hold of its shard's read
/// lock, so a scan never materialises its result and never blocks writers for long. Writes
/// made while it runs may or may not be seen, and a batch across shards may be seen in part.
/// Every entry present throughout the scan is given (once with the ordered index, at least
/// once with the hash index, whose walk of a shard starts over when its table grows);
/// nothing that was absent throughout is given, and no entry is given after its deadline
/// (the clock is read for each chunk and again for each entry with a TTL). An item kept
/// after the scan keeps its chunk's buffer alive.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use kv_store::{IndexKind, Iter, KvStore, Options};
///
/// let store = KvStore::open_with(dir.path(), Options::default().index(IndexKind::Ordered))?;
/// for key in ["a", "b", "c", "d"] {
///     store.put(key, "v")?;
/// }
/// let mut scan: Iter = store.range("a"..)?;
/// assert_eq!(scan.next().unwrap().0, "a");
/// assert_eq!(scan.next_back().unwrap().0, "d");
/// let rest: Vec<_> = scan.map(|(key, _)| key).collect();
/// assert_eq!(rest, ["b", "c"]);
///
/// // Moved to another thread, where it goes on reading.
/// let scan = store.iter();
/// let keys = std::thread::spawn(move || scan.rev().map(|(key, _)| key).collect::<Vec<_>>());
/// assert_eq!(keys.join().unwrap(), ["d", "c", "b", "a"]);
/// # Ok(())
/// # }
/// ```
pub struct Iter {
    store: Arc<Inner>,
    scanner: Scanner,
}

impl Iter {
    pub(crate) fn new(store: Arc<Inner>, scanner: Scanner) -> Self {
        Iter { store, scanner }
    }

    /// The next entry from the front, with its deadline (unix ms; `None` for no TTL): what
    /// an export that keeps TTLs needs.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// let (key, value, deadline) = store.iter().next_with_deadline().unwrap();
    /// assert_eq!((&key[..], &value[..], deadline), (&b"k"[..], &b"v"[..], None));
    /// # Ok(())
    /// # }
    /// ```
    pub fn next_with_deadline(&mut self) -> Option<(Bytes, Bytes, Option<u64>)> {
        let store = &self.store;
        self.scanner.next(store.state(), &|| store.now_ms())
    }

    /// The next entry from the back, with its deadline; see
    /// [`next_with_deadline`](Self::next_with_deadline).
    pub fn next_back_with_deadline(&mut self) -> Option<(Bytes, Bytes, Option<u64>)> {
        let store = &self.store;
        self.scanner.next_back(store.state(), &|| store.now_ms())
    }
}

fn pair((key, value, _): ScanItem) -> (Bytes, Bytes) {
    (key, value)
}

impl Iterator for Iter {
    type Item = (Bytes, Bytes);

    #[inline]
    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        self.next_with_deadline().map(pair)
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<(Bytes, Bytes)> {
        self.next_back_with_deadline().map(pair)
    }
}

impl FusedIterator for Iter {}

/// Says nothing of the store or of the entries buffered (up to a chunk per shard).
impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

/// A streamed scan of the store's live keys: what [`KvStore::keys`](crate::KvStore::keys)
/// returns. An [`Iter`] that copies keys only: the same order, ends, ownership and
/// consistency.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// store.put("a", "1")?;
/// store.put("b", "2")?;
/// let mut keys: Vec<_> = store.keys().collect();
/// keys.sort();
/// assert_eq!(keys, ["a", "b"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Keys(Iter);

impl Keys {
    pub(crate) fn new(iter: Iter) -> Self {
        Keys(iter)
    }
}

impl Iterator for Keys {
    type Item = Bytes;

    #[inline]
    fn next(&mut self) -> Option<Bytes> {
        self.0.next_with_deadline().map(|(key, _, _)| key)
    }
}

impl DoubleEndedIterator for Keys {
    fn next_back(&mut self) -> Option<Bytes> {
        self.0.next_back_with_deadline().map(|(key, _, _)| key)
    }
}

impl FusedIterator for Keys {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The iterators may be moved to another thread and kept anywhere.
    #[test]
    fn iterators_are_send_and_static() {
        fn owned<T: Send + 'static>() {}
        owned::<Iter>();
        owned::<Keys>();
    }
}
