//! What an async put costs beside a synchronous one, in the default `Batch` durability.
//!
//! `cargo run --release -p kv-store --example async_put_cost [PUTS]`
//!
//! Times PUTS (default 20,000) puts of 16-byte values one after another: synchronous, then
//! awaited from one task on a current-thread runtime and on a multi-thread one, then from
//! eight tasks at once on the multi-thread runtime.

use std::time::{Duration, Instant};

use kv_store::{KvStore, Options};

fn per_put(elapsed: Duration, puts: u64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / puts as f64
}

async fn one_task(store: &KvStore, tag: &str, puts: u64) -> Result<Duration, kv_store::Error> {
    let started = Instant::now();
    for i in 0..puts {
        store
            .put_async(format!("{tag}:{i:08}"), "0123456789abcdef")
            .await?;
    }
    Ok(started.elapsed())
}

fn main() -> Result<(), kv_store::Error> {
    let puts: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("PUTS is a number"))
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    // No sweep or metrics thread competing for the two cores.
    let options = Options::default().sweep_interval(Duration::ZERO);
    let store = KvStore::open_with(dir.path(), options)?;

    let started = Instant::now();
    for i in 0..puts {
        store.put(format!("sync:{i:08}"), "0123456789abcdef")?;
    }
    let sync = started.elapsed();

    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let current_thread = current.block_on(one_task(&store, "current", puts))?;

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let multi_thread = multi.block_on(one_task(&store, "multi", puts))?;
    let eight_tasks = multi.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move { one_task(&store, &format!("task{t}"), puts / 8).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task ran")?;
        }
        Ok::<_, kv_store::Error>(started.elapsed())
    })?;

    println!("puts: {puts} per run, Batch durability");
    println!(
        "sync put:                          {:.2} us",
        per_put(sync, puts)
    );
    println!(
        "put_async, current_thread runtime: {:.2} us",
        per_put(current_thread, puts)
    );
    println!(
        "put_async, multi_thread runtime:   {:.2} us",
        per_put(multi_thread, puts)
    );
    println!(
        "put_async, 8 tasks, multi_thread:  {:.2} us (wall time per put)",
        per_put(eight_tasks, puts / 8 * 8)
    );
    store.close()
}
