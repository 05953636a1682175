//! The async API on a tokio runtime: writes wait for the disk off the runtime's threads.
//!
//! `cargo run -p kv-store --example tokio`

use kv_store::{Durability, KvStore, Options};

#[tokio::main]
async fn main() -> Result<(), kv_store::Error> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = KvStore::open_with(dir.path(), Options::default().durability(Durability::Sync))?;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_async(format!("task:{i}"), "done").await })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task ran")?;
    }
    // Reads are memory lookups: no await needed.
    match store.get("task:42") {
        Some(value) => println!("task:42 = {}", String::from_utf8_lossy(&value)),
        None => println!("task:42 is missing"),
    }
    println!(
        "{:.1} records per fsync",
        store.stats().records_per_fsync_ratio
    );
    store.close_async().await
}
