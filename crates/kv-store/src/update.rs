//! Atomic read-modify-writes of one key: `update_with` and what is built on it.
//!
//! Each holds its key's lock stripe exclusively from reading the value to applying the
//! write (see `locked.rs`), so no other write of the key comes in between; writes of other
//! keys go on. The write is logged as an ordinary put or delete and is as durable as any
//! other write of the store.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kv_core::{Expiry, Op};
use kv_durable::WriteOptions;

use crate::batch::{millis, time_of, unix_millis};
use crate::error::Result;
use crate::into_bytes::IntoBytes;
use crate::locked::Decision;
use crate::store::KvStore;

/// What a key holds when [`KvStore::update_with`] asks what to do with it.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// use std::time::Duration;
/// use kv_store::Update;
///
/// store.put_with_ttl("session", "token", Duration::from_secs(60))?;
/// store.update_with("session", |current| {
///     let current = current.expect("the session is live");
///     assert_eq!(current.value, b"token");
///     assert!(current.deadline.is_some());
///     Update::Keep
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current<'a> {
    /// The live value.
    pub value: &'a [u8],
    /// When it expires, if it does (to the millisecond).
    pub deadline: Option<SystemTime>,
}

/// What [`KvStore::update_with`] does to a key.
///
/// ```
/// use std::time::Duration;
/// use kv_store::{TtlUpdate, Update};
///
/// let keep_ttl = Update::put("v");
/// assert_eq!(keep_ttl, Update::Put { value: "v".into(), ttl: TtlUpdate::Keep });
/// let expiring = Update::put_with("v", TtlUpdate::After(Duration::from_secs(10)));
/// assert!(matches!(expiring, Update::Put { ttl: TtlUpdate::After(_), .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Write nothing: the key keeps its value and deadline.
    Keep,
    /// Set the key to `value`, with the deadline `ttl` says.
    Put {
        /// The new value.
        value: Bytes,
        /// What becomes of the deadline.
        ttl: TtlUpdate,
    },
    /// Remove the key (writes nothing if it holds no live value).
    Delete,
}

impl Update {
    /// Set the key to `value`, keeping its deadline (none if it had none, or no value).
    ///
    /// ```
    /// assert_eq!(
    ///     kv_store::Update::put("v"),
    ///     kv_store::Update::put_with("v", kv_store::TtlUpdate::Keep)
    /// );
    /// ```
    pub fn put(value: impl IntoBytes) -> Update {
        Update::put_with(value, TtlUpdate::Keep)
    }

    /// Set the key to `value`, with the deadline `ttl` says.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use kv_store::{TtlUpdate, Update};
    /// // GETSET: set a value, drop any deadline, answer the old value.
    /// let old = store.update_with("k", |_| Update::put_with("new", TtlUpdate::Remove))?.old;
    /// assert_eq!(old, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with(value: impl IntoBytes, ttl: TtlUpdate) -> Update {
        Update::Put {
            value: value.into_bytes(),
            ttl,
        }
    }
}

/// What an [`Update::Put`] does to the key's deadline.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// use std::time::Duration;
/// use kv_store::{Ttl, TtlUpdate, Update};
///
/// // SET k v EX 10, then SET k w KEEPTTL, then SET k x (which drops the deadline).
/// store.update_with("k", |_| Update::put_with("v", TtlUpdate::After(Duration::from_secs(10))))?;
/// store.update_with("k", |_| Update::put_with("w", TtlUpdate::Keep))?;
/// assert!(store.ttl("k").remaining().is_some());
/// store.update_with("k", |_| Update::put_with("x", TtlUpdate::Remove))?;
/// assert_eq!(store.ttl("k"), Ttl::NoDeadline);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    /// Keep the deadline the key has (Redis's `KEEPTTL`); none if it holds no live value.
    Keep,
    /// No deadline: the new value never expires.
    Remove,
    /// Expire this long after the write.
    After(Duration),
    /// Expire at this instant (to the millisecond; one already past writes a value that is
    /// expired at once).
    At(SystemTime),
}

/// What [`KvStore::update_with`] found and left.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// use kv_store::{Update, Updated};
/// store.put("k", "a")?;
/// let updated = store.update_with("k", |_| Update::put("b"))?;
/// assert_eq!(updated, Updated { old: Some("a".into()), new: Some("b".into()) });
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Updated {
    /// The live value before the call.
    pub old: Option<Bytes>,
    /// The value after it (`old` again after [`Update::Keep`]).
    pub new: Option<Bytes>,
}

/// A [`KvStore::compare_and_swap`] that did not swap: the key did not hold the expected
/// value. Nothing was written.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// store.put("k", "actual")?;
/// let mismatch = store.compare_and_swap("k", Some("expected"), Some("new"))?.unwrap_err();
/// assert_eq!(mismatch.current.unwrap(), "actual");
/// assert_eq!(mismatch.proposed.unwrap(), "new");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compare and swap: the key does not hold the expected value")]
pub struct CompareAndSwapError {
    /// What the key holds (its live value then).
    pub current: Option<Bytes>,
    /// What the call would have written.
    pub proposed: Option<Bytes>,
}

impl KvStore {
    /// Reads `key` and writes what `f` decides from it, atomically: no other write of
    /// `key` comes between the read and the write. `f` is given the live value and its
    /// deadline (`None` for a key without a live value) and answers an [`Update`]. Returns
    /// the value before and after.
    ///
    /// The general form the others are built on, and what commands such as Redis's `INCR`,
    /// `SETNX`, `GETSET`, `APPEND` or `SET` with `KEEPTTL` need. The write is an ordinary put
    /// or delete, as durable as any other write of the store; [`Update::Keep`] writes
    /// nothing.
    ///
    /// `f` may be called more than once (under limits, when room must be made for the
    /// write, the key is read again afterwards); only its last answer is written. It runs
    /// while the key is locked: it must not write to this store, which would deadlock, and
    /// it holds up other writers of the key (and of the few keys that share its lock
    /// stripe) while it runs.
    ///
    /// # Errors
    ///
    /// What [`KvStore::put`] returns. A write refused (limits, sizes, a full disk, a closed
    /// store) wrote nothing; after [`Error::Failed`](crate::Error::Failed) the outcome is unknown: the record may
    /// be in the log and come back when the store is reopened (never applied before that).
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// use std::time::Duration;
    /// use kv_store::{Update, TtlUpdate};
    ///
    /// // SET key value NX EX 60: only if absent, expiring in a minute.
    /// let set = store.update_with("lock", |current| match current {
    ///     None => Update::put_with("me", TtlUpdate::After(Duration::from_secs(60))),
    ///     Some(_) => Update::Keep,
    /// })?;
    /// assert_eq!((set.old, set.new.as_deref()), (None, Some(&b"me"[..])));
    ///
    /// // APPEND, keeping the deadline.
    /// let appended = store.update_with("lock", |current| {
    ///     let mut value = current.map_or(Vec::new(), |c| c.value.to_vec());
    ///     value.extend_from_slice(b"!");
    ///     Update::put(value)
    /// })?;
    /// assert_eq!(appended.new.unwrap(), "me!");
    /// assert!(store.ttl("lock").remaining().is_some());
    ///
    /// // INCR: a closure refuses by keeping the value and saying why in what it captures.
    /// let mut not_a_number = false;
    /// store.update_with("lock", |current| {
    ///     let text = current.map_or(Some("0"), |c| std::str::from_utf8(c.value).ok());
    ///     match text.and_then(|t| t.parse::<i64>().ok()) {
    ///         Some(n) => Update::put((n + 1).to_string()),
    ///         None => {
    ///             not_a_number = true;
    ///             Update::Keep
    ///         }
    ///     }
    /// })?;
    /// assert!(not_a_number);
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_with(
        &self,
        key: impl IntoBytes,
        mut f: impl FnMut(Option<Current<'_>>) -> Update,
    ) -> Result<Updated> {
        let key = key.into_bytes();
        self.write_locked(&[(&key, true)], WriteOptions::default(), |now| {
            // Copied out, so `f` runs without the shard's lock (it holds up other keys'
            // writers); the copy is the old value returned.
            let current = self.state().with_entry(&key, now, |e| {
                (Bytes::copy_from_slice(e.value()), e.deadline())
            });
            let update = f(current.as_ref().map(|(value, deadline)| Current {
                value,
                deadline: deadline.map(time_of),
            }));
            let (old, old_deadline) = match current {
                Some((value, deadline)) => (Some(value), deadline),
                None => (None, None),
            };
            Ok(match update {
                Update::Keep => Decision::Done(Updated {
                    new: old.clone(),
                    old,
                }),
                Update::Delete if old.is_none() => Decision::Done(Updated::default()),
                Update::Delete => {
                    Decision::Write(vec![Op::delete(key.clone())], Updated { old, new: None })
                }
                Update::Put { value, ttl } => {
                    let expiry = match ttl {
                        TtlUpdate::Keep => old_deadline.map_or(Expiry::Never, Expiry::AtUnixMillis),
                        TtlUpdate::Remove => Expiry::Never,
                        TtlUpdate::After(ttl) => Expiry::AfterMillis(millis(ttl)),
                        TtlUpdate::At(at) => Expiry::AtUnixMillis(unix_millis(at)),
                    };
                    let op = Op::Put {
                        key: key.clone(),
                        value: value.clone(),
                        expiry,
                    };
                    Decision::Write(
                        vec![op],
                        Updated {
                            old,
                            new: Some(value),
                        },
                    )
                }
            })
        })
    }

    /// Sets `key` to what `f` makes of its live value (`None` if it has none), or removes
    /// it if `f` answers `None`, atomically; returns the new value. A deadline on the key is
    /// kept. `f` may be called more than once, and must not write to this store (see
    /// [`update_with`](Self::update_with)).
    ///
    /// # Errors
    ///
    /// What [`KvStore::put`] returns; as for [`update_with`](KvStore::update_with), after
    /// [`Error::Failed`](crate::Error::Failed) whether it was written is unknown until the store is reopened.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// fn increment(old: Option<&[u8]>) -> Option<Vec<u8>> {
    ///     let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
    ///     Some((n + 1).to_string().into_bytes())
    /// }
    /// assert_eq!(store.update_and_fetch("counter", increment)?.unwrap(), "1");
    /// assert_eq!(store.update_and_fetch("counter", increment)?.unwrap(), "2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_and_fetch<V: IntoBytes>(
        &self,
        key: impl IntoBytes,
        f: impl FnMut(Option<&[u8]>) -> Option<V>,
    ) -> Result<Option<Bytes>> {
        Ok(self.update_value(key, f)?.new)
    }

    /// As [`update_and_fetch`](Self::update_and_fetch), but returns the value before the
    /// update.
    ///
    /// # Errors
    ///
    /// What [`KvStore::put`] returns; as for [`update_with`](KvStore::update_with), after
    /// [`Error::Failed`](crate::Error::Failed) whether it was written is unknown until the store is reopened.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "a")?;
    /// let old = store.fetch_and_update("k", |old| old.map(|v| [v, b"b"].concat()))?;
    /// assert_eq!(old.unwrap(), "a");
    /// assert_eq!(store.get("k").unwrap(), "ab");
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_and_update<V: IntoBytes>(
        &self,
        key: impl IntoBytes,
        f: impl FnMut(Option<&[u8]>) -> Option<V>,
    ) -> Result<Option<Bytes>> {
        Ok(self.update_value(key, f)?.old)
    }

    fn update_value<V: IntoBytes>(
        &self,
        key: impl IntoBytes,
        mut f: impl FnMut(Option<&[u8]>) -> Option<V>,
    ) -> Result<Updated> {
        self.update_with(key, |current| match f(current.map(|c| c.value)) {
            Some(value) => Update::put(value),
            None => Update::Delete,
        })
    }

    /// Sets `key` to `new` (removes it if `new` is `None`) only if its live value is `old`
    /// (`None`: it holds none), atomically. A deadline on the key is kept.
    ///
    /// A mismatch is an answer, not an error: `Ok(Err(CompareAndSwapError))`, carrying what
    /// the key holds; nothing was written.
    ///
    /// # Errors
    ///
    /// What [`KvStore::put`] returns; as for [`update_with`](KvStore::update_with), after
    /// [`Error::Failed`](crate::Error::Failed) whether it was written is unknown until the store is reopened.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// // Create only if absent.
    /// assert!(store.compare_and_swap("k", None::<&[u8]>, Some("v1"))?.is_ok());
    /// // Swap only from the value expected.
    /// let lost = store.compare_and_swap("k", Some("v0"), Some("v2"))?.unwrap_err();
    /// assert_eq!(lost.current.unwrap(), "v1");
    /// assert!(store.compare_and_swap("k", Some("v1"), Some("v2"))?.is_ok());
    /// // Remove only if it still holds what was read.
    /// assert!(store.compare_and_swap("k", Some("v2"), None::<&[u8]>)?.is_ok());
    /// assert!(store.get("k").is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_swap(
        &self,
        key: impl IntoBytes,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl IntoBytes>,
    ) -> Result<Result<(), CompareAndSwapError>> {
        let new = new.map(IntoBytes::into_bytes);
        let expected = old.as_ref().map(AsRef::as_ref);
        // Whether the last call of the closure (the one written) found a mismatch.
        let mut mismatch = false;
        let updated = self.update_with(key, |current| {
            mismatch = current.map(|c| c.value) != expected;
            match (&new, mismatch) {
                (_, true) => Update::Keep,
                (Some(value), false) => Update::put(value),
                (None, false) => Update::Delete,
            }
        })?;
        if mismatch {
            return Ok(Err(CompareAndSwapError {
                current: updated.old,
                proposed: new,
            }));
        }
        Ok(Ok(()))
    }

    /// Removes `key` and returns the live value it held (`None`, and nothing written, if
    /// it held none).
    ///
    /// # Errors
    ///
    /// What [`KvStore::delete`] returns; as for [`update_with`](KvStore::update_with), after
    /// [`Error::Failed`](crate::Error::Failed) whether it was written is unknown until the store is reopened.
    ///
    /// ```
    /// # fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put("k", "v")?;
    /// assert_eq!(store.remove("k")?.unwrap(), "v");
    /// assert_eq!(store.remove("k")?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn remove(&self, key: impl IntoBytes) -> Result<Option<Bytes>> {
        Ok(self.update_with(key, |_| Update::Delete)?.old)
    }
}
