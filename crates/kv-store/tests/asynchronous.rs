//! The async API: many tasks on a small runtime write durably without starving it, and the
//! same store serves the synchronous API.
#![cfg(feature = "tokio")]

use std::time::Duration;

use kv_store::{Durability, Eviction, KvStore, Options, WriteBatch, WriteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_write_durably_while_the_runtime_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        KvStore::open_with(dir.path(), Options::default().durability(Durability::Sync)).unwrap();
    // A ticker on the runtime: it keeps ticking while writers wait for fsyncs.
    let ticker = tokio::spawn(async {
        let mut ticks = 0u32;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(200) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ticks += 1;
        }
        ticks
    });
    let writers: Vec<_> = (0..32)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .put_async(format!("task{task}:{i}"), "v")
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(ticker.await.unwrap() > 20, "the runtime was starved");
    assert_eq!(store.len(), 320);
    let stats = store.stats();
    assert!(
        stats.records_per_fsync_ratio > 1.0,
        "async writers share fsyncs: {stats:?}"
    );

    let mut batch = WriteBatch::new();
    batch.put("a", "1").delete("task0:0");
    store.write_async(batch).await.unwrap();
    store
        .put_with_ttl_async("t", "v", Duration::from_secs(60))
        .await
        .unwrap();
    store.delete_async("a").await.unwrap();
    store.sync_async().await.unwrap();
    store.put("sync-api", "same store").unwrap();
    store.close_async().await.unwrap();

    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 321);
    assert!(store.get("task0:0").is_none());
    assert!(store.ttl("t").remaining().is_some());
}

/// A runtime of either flavour whose blocking pool holds one thread, and that thread kept
/// busy until the returned sender is dropped or sent to.
fn runtime_with_busy_blocking_pool(
    multi_thread: bool,
) -> (tokio::runtime::Runtime, std::sync::mpsc::Sender<()>) {
    let mut builder = if multi_thread {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder
        .max_blocking_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, has_started) = std::sync::mpsc::channel::<()>();
    runtime.spawn_blocking(move || {
        started.send(()).unwrap();
        let _ = released.recv();
    });
    has_started.recv().unwrap();
    (runtime, release)
}

#[test]
fn writes_that_return_before_their_fsync_do_not_need_the_blocking_pool() {
    for multi_thread in [false, true] {
        for durability in [
            Durability::Batch(Duration::from_millis(5)),
            Durability::None,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store =
                KvStore::open_with(dir.path(), Options::default().durability(durability)).unwrap();
            let (runtime, release) = runtime_with_busy_blocking_pool(multi_thread);
            runtime.block_on(async {
                let writes = async {
                    store.put_async("a", "1").await.unwrap();
                    store
                        .put_with_ttl_async("t", "v", Duration::from_secs(60))
                        .await
                        .unwrap();
                    let mut batch = WriteBatch::new();
                    batch.put("b", "2").put("c", "3");
                    store.write_async(batch).await.unwrap();
                    store.delete_async("a").await.unwrap();
                };
                tokio::time::timeout(Duration::from_secs(5), writes)
                    .await
                    .expect("the writes ran on the task's own thread");
            });
            assert_eq!(store.len(), 3);
            assert!(store.ttl("t").remaining().is_some());
            drop(release);
        }
    }
}

#[test]
fn writes_that_wait_for_an_fsync_or_for_room_go_to_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let sync = Options::default().durability(Durability::Sync);
    let sync = KvStore::open_with(dir.path().join("sync"), sync).unwrap();
    let limited = Options::default().max_keys(10, Eviction::Lru);
    let limited = KvStore::open_with(dir.path().join("limited"), limited).unwrap();
    let batching = KvStore::open(dir.path().join("batching")).unwrap();
    for multi_thread in [false, true] {
        for case in 0..3 {
            let (runtime, release) = runtime_with_busy_blocking_pool(multi_thread);
            runtime.block_on(async {
                let mut write: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> = match case
                {
                    0 => Box::pin(sync.put_async("k", "v")),
                    1 => Box::pin(limited.put_async("k", "v")),
                    _ => {
                        let mut batch = WriteBatch::new();
                        batch.put("k", "v");
                        Box::pin(batching.write_with_async(batch, WriteOptions::sync()))
                    }
                };
                let early = tokio::time::timeout(Duration::from_millis(100), &mut write).await;
                assert!(
                    early.is_err(),
                    "case {case}: written without the blocking pool"
                );
                release.send(()).unwrap();
                write.await.unwrap();
            });
        }
    }
    for store in [&sync, &limited, &batching] {
        assert_eq!(store.get("k").unwrap(), "v");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn open_compact_and_checkpoint_on_a_current_thread_runtime() {
    open_compact_and_checkpoint().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_compact_and_checkpoint_on_a_multi_thread_runtime() {
    open_compact_and_checkpoint().await;
}

async fn open_compact_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let store = KvStore::open_async(dir.path()).await.unwrap();
    for i in 0..100 {
        store.put_async("counter", i.to_string()).await.unwrap();
    }
    let report = store.compact_async().await.unwrap();
    assert_eq!(report.entries, 1);
    store.checkpoint_async(backup.path()).await.unwrap();
    store.put_async("counter", "after").await.unwrap();
    store.close_async().await.unwrap();
    // The directory is free again once closed: a second open of it is refused before.
    let options = Options::default().durability(Durability::None);
    let reopened = KvStore::open_with_async(dir.path(), options.clone())
        .await
        .unwrap();
    assert_eq!(reopened.get("counter").unwrap(), "after");
    assert!(matches!(
        KvStore::open_with_async(dir.path(), options).await,
        Err(kv_store::Error::Locked { .. })
    ));
    let copy = KvStore::open_async(backup.path()).await.unwrap();
    assert_eq!(copy.get("counter").unwrap(), "99");
}

/// Async writes on the task's thread race writes on the blocking pool, synchronous writes
/// that sync, rotations of a small log and compactions: every acknowledged write is in the
/// state, and reopening replays the same state.
#[test]
fn async_writes_on_and_off_the_runtime_race_sync_writers_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .segment_size(16 * 1024)
            .sweep_interval(Duration::ZERO)
    };
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Writers that ask for an fsync: their groups are what a follower would wait for.
        for t in 0..2 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..100 {
                    let mut batch = WriteBatch::new();
                    batch.put(format!("sync{t}:{i}"), i.to_string());
                    store.write_with(batch, WriteOptions::sync()).unwrap();
                }
            });
        }
        let compactor = s.spawn(|| {
            let mut compactions = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.compact().unwrap();
                compactions += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            compactions
        });
        runtime.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|t| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for i in 0..300 {
                            // Shared keys too: the log's order decides their last values.
                            store
                                .put_async(format!("shared{}", i % 8), format!("{t}:{i}"))
                                .await
                                .unwrap();
                            store
                                .put_async(format!("async{t}:{i}"), i.to_string())
                                .await
                                .unwrap();
                            if i % 10 == 0 {
                                store.delete_async(format!("async{t}:{i}")).await.unwrap();
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(compactor.join().unwrap() > 0);
    });
    for t in 0..16 {
        for i in 0..300 {
            let expected = (i % 10 != 0).then(|| i.to_string());
            let value = store.get(format!("async{t}:{i}"));
            assert_eq!(value.as_deref(), expected.as_deref().map(str::as_bytes));
        }
    }
    let stats = store.stats();
    assert!(
        stats.log_segments > 1 || stats.compactions_total > 0,
        "{stats:?}"
    );
    let mut before: Vec<_> = store.iter().collect();
    before.sort();
    assert_eq!(before.len(), 8 + 16 * 270 + 200);
    store.close().unwrap();
    let reopened = KvStore::open_with(dir.path(), options()).unwrap();
    let mut after: Vec<_> = reopened.iter().collect();
    after.sort();
    assert_eq!(after, before);
}

/// Polls `future` to its end on this thread, with no runtime (another executor's way).
fn poll_here<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}

/// Outside a tokio runtime, a write that cannot be taken on the calling thread (here: a
/// `Sync` store, and one with limits) runs there anyway, instead of panicking in
/// `spawn_blocking` only when the store is busy.
#[test]
fn async_calls_driven_outside_a_tokio_runtime_still_work() {
    for options in [
        Options::default().durability(Durability::Sync),
        Options::default().max_keys(100, Eviction::Lru),
        Options::default(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open_with(dir.path(), options).unwrap();
        poll_here(store.put_async("k", "v")).unwrap();
        poll_here(store.delete_async("gone")).unwrap();
        poll_here(store.sync_async()).unwrap();
        assert_eq!(store.get("k").unwrap(), "v");
        poll_here(store.close_async()).unwrap();
    }
}

/// After `close`, an async write is `Closed` whichever path it takes, as a sync one is:
/// the one taken on the calling thread (no limits, `Batch`) included, empty batch or not.
#[test]
fn async_writes_after_close_are_closed_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    store.close().unwrap();
    let closed = |result: kv_store::Result<()>, call: &str| {
        assert!(
            matches!(result, Err(kv_store::Error::Closed)),
            "{call}: {result:?}"
        );
    };
    closed(poll_here(store.put_async("k", "v")), "put_async");
    closed(poll_here(store.delete_async("k")), "delete_async");
    closed(
        poll_here(store.write_async(WriteBatch::new())),
        "write_async of an empty batch",
    );
}
