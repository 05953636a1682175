//! The async API: the same store, with calls that may wait for the disk kept off the runtime.
//!
//! A write that waits for an fsync (its own, or its group's), an open, a compaction or a
//! checkpoint runs on tokio's blocking pool, so the runtime's worker threads keep serving
//! other tasks. Reads are memory lookups that never wait for the disk: call
//! [`KvStore::get`] directly.
//!
//! A write that returns before its fsync (the store's `Batch` or `None` durability, unless
//! its [`WriteOptions`] ask for `Sync`) is written on the calling task's thread when nothing
//! can make it wait: that takes about a microsecond, where a hop to the blocking pool and
//! back took 15 to 35 (measured with `examples/async_put_cost.rs`). Whether it can wait is
//! decided before anything is written ([`Durable::try_write_now`](kv_durable::Durable) lists
//! each case): it goes to the blocking pool when the store has limits (a write may evict or
//! wait for room), when one of its keys is held by a read-modify-write, when another
//! writer's group is being committed (a follower waits for that group, fsync included;
//! a quick group that waits for no fsync is first watched for up to 10 µs),
//! when the log's mutex is taken (a sync, a rotation or a deletion of old segments holds it
//! across system calls that wait for the disk) or when the append would start a new segment
//! (which syncs the old one and the directory). What is left on the runtime thread is a
//! copy into the page cache and short, bounded locks.
//!
//! Dropping the last handle closes the store on the dropping thread (it stops a running
//! compaction and syncs the log): in async code, await [`KvStore::close_async`] before the
//! last handle (a [`Transaction`](crate::Transaction) holds one too) goes out of scope.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kv_compact::CompactionReport;
use kv_core::Op;
use kv_durable::WriteOptions;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::into_bytes::IntoBytes;
use crate::options::Options;
use crate::store::KvStore;

/// Runs `f` on tokio's blocking pool and awaits its result; outside a tokio runtime (an
/// async call driven by another executor), runs it here: there is no runtime thread to keep
/// free, and `spawn_blocking` would panic, and only when the write could not be taken on
/// the calling thread, so only under load.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down and dropped the task before it ran.
        Err(_) => Err(Error::Closed),
    }
}

impl KvStore {
    /// [`open`](KvStore::open), awaited without holding a runtime thread (opening replays
    /// the log and may sync and clean up files).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = kv_store::KvStore::open_async(dir.path()).await?;
    /// store.put_async("k", "v").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_async(path: impl AsRef<Path>) -> Result<KvStore> {
        Self::open_with_async(path, Options::default()).await
    }

    /// [`open_with`](KvStore::open_with), awaited without holding a runtime thread.
    pub async fn open_with_async(path: impl AsRef<Path>, options: Options) -> Result<KvStore> {
        let path: PathBuf = path.as_ref().to_path_buf();
        blocking(move || KvStore::open_with(path, options)).await
    }

    /// Runs `f` with a handle on the blocking pool and awaits its result.
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(KvStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        blocking(move || f(store)).await
    }

    /// Writes `ops` here if that cannot wait for the disk, else on the blocking pool.
    async fn write_ops_async(&self, ops: Vec<Op>, options: WriteOptions) -> Result<()> {
        match self.try_submit_now(ops, options) {
            Ok(result) => result,
            Err(ops) => {
                self.off_runtime(move |store| store.submit(ops, options))
                    .await
            }
        }
    }

    /// [`put`](KvStore::put), awaited without holding a runtime thread while it waits for
    /// the disk.
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
    pub async fn put_async(&self, key: impl IntoBytes, value: impl IntoBytes) -> Result<()> {
        self.write_ops_async(
            vec![Op::put(key.into_bytes(), value.into_bytes())],
            WriteOptions::default(),
        )
        .await
    }

    /// [`put_with_ttl`](KvStore::put_with_ttl), awaited without holding a runtime thread
    /// while it waits for the disk.
    ///
    /// # Errors
    ///
    /// Those of [`put_with_ttl`](KvStore::put_with_ttl), and [`Error::Closed`] when the
    /// runtime is shutting down and dropped the call before it ran.
    pub async fn put_with_ttl_async(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        ttl: Duration,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put_with_ttl(key, value, ttl);
        self.write_ops_async(batch.ops, WriteOptions::default())
            .await
    }

    /// [`delete`](KvStore::delete), awaited without holding a runtime thread while it waits
    /// for the disk.
    ///
    /// # Errors
    ///
    /// Those of [`delete`](KvStore::delete), and [`Error::Closed`] when the runtime is
    /// shutting down and dropped the call before it ran.
    pub async fn delete_async(&self, key: impl IntoBytes) -> Result<()> {
        self.write_ops_async(vec![Op::delete(key.into_bytes())], WriteOptions::default())
            .await
    }

    /// [`write`](KvStore::write), awaited without holding a runtime thread while it waits
    /// for the disk.
    ///
    /// # Errors
    ///
    /// Those of [`write`](KvStore::write), and [`Error::Closed`] when the runtime is
    /// shutting down and dropped the call before it ran.
    pub async fn write_async(&self, batch: WriteBatch) -> Result<()> {
        self.write_ops_async(batch.ops, WriteOptions::default())
            .await
    }

    /// [`write_with`](KvStore::write_with), awaited without holding a runtime thread while it
    /// waits for the disk.
    ///
    /// # Errors
    ///
    /// Those of [`write_with`](KvStore::write_with), and [`Error::Closed`] when the runtime
    /// is shutting down and dropped the call before it ran.
    pub async fn write_with_async(&self, batch: WriteBatch, options: WriteOptions) -> Result<()> {
        self.write_ops_async(batch.ops, options).await
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

    /// [`compact`](KvStore::compact), awaited without holding a runtime thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), kv_store::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = kv_store::KvStore::open(dir.path())?;
    /// store.put_async("k", "v1").await?;
    /// store.put_async("k", "v2").await?;
    /// assert_eq!(store.compact_async().await?.entries, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compact_async(&self) -> Result<CompactionReport> {
        self.off_runtime(|store| store.compact()).await
    }

    /// [`checkpoint`](KvStore::checkpoint), awaited without holding a runtime thread.
    pub async fn checkpoint_async(&self, target: impl AsRef<Path>) -> Result<()> {
        let target = target.as_ref().to_path_buf();
        self.off_runtime(move |store| store.checkpoint(target))
            .await
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
