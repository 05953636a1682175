//! The async API: many tasks on a small runtime write durably without starving it, and the
//! same store serves the synchronous API.

use std::time::Duration;

use kv_store::{Durability, KvStore, Options, WriteBatch};

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
        stats.commit.records_per_fsync() > 1.0,
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
