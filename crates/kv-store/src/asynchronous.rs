//! The async API: the same store, with writes that wait for the disk off the runtime.
//!
//! A write may wait for an fsync (its own, or its group's). These methods run that wait on
//! tokio's blocking pool, so the runtime's worker threads keep serving other tasks. Reads are
//! memory lookups that never wait for the disk: call [`KvStore::get`] directly.

use std::time::Duration;

use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::store::KvStore;

impl KvStore {
    /// Runs `f` with a handle on the blocking pool and awaits its result.
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(KvStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(store)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down and dropped the task before it ran.
            Err(_) => Err(Error::Closed),
        }
    }

    /// [`put`](KvStore::put), awaited without holding a runtime thread.
    ///
    /// # Errors
    ///
    /// Those of [`put`](KvStore::put), and [`Error::Closed`] when the runtime is shutting
    /// down and dropped the call before it ran.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open(dir.path())?;
    /// store.put_async("k", "v").await?;
    /// assert_eq!(store.get("k").unwrap(), "v");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_async(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        let (key, value) = (key.into(), value.into());
        self.off_runtime(move |store| store.put(key, value)).await
    }

    /// [`put_with_ttl`](KvStore::put_with_ttl), awaited without holding a runtime thread.
    ///
    /// # Errors
    ///
    /// Those of [`put_with_ttl`](KvStore::put_with_ttl), and [`Error::Closed`] when the runtime is shutting
    /// down and dropped the call before it ran.
    pub async fn put_with_ttl_async(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<()> {
        let (key, value) = (key.into(), value.into());
        self.off_runtime(move |store| store.put_with_ttl(key, value, ttl))
            .await
    }

    /// [`delete`](KvStore::delete), awaited without holding a runtime thread.
    ///
    /// # Errors
    ///
    /// Those of [`delete`](KvStore::delete), and [`Error::Closed`] when the runtime is shutting
    /// down and dropped the call before it ran.
    pub async fn delete_async(&self, key: impl Into<Bytes>) -> Result<()> {
        let key = key.into();
        self.off_runtime(move |store| store.delete(key)).await
    }

    /// [`write`](KvStore::write), awaited without holding a runtime thread.
    ///
    /// # Errors
    ///
    /// Those of [`write`](KvStore::write), and [`Error::Closed`] when the runtime is shutting
    /// down and dropped the call before it ran.
    pub async fn write_async(&self, batch: WriteBatch) -> Result<()> {
        self.off_runtime(move |store| store.write(batch)).await
    }

    /// [`sync`](KvStore::sync), awaited without holding a runtime thread.
    ///
    /// # Errors
    ///
    /// Those of [`sync`](KvStore::sync), and [`Error::Closed`] when the runtime is shutting
    /// down and dropped the call before it ran.
    pub async fn sync_async(&self) -> Result<()> {
        self.off_runtime(|store| store.sync()).await
    }

    /// [`close`](KvStore::close), awaited without holding a runtime thread.
    ///
    /// # Errors
    ///
    /// Those of [`close`](KvStore::close), and [`Error::Closed`] when the runtime is shutting
    /// down and dropped the call before it ran.
    pub async fn close_async(&self) -> Result<()> {
        self.off_runtime(|store| store.close()).await
    }
}
