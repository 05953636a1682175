//! Open a store, write, read, scan, and reopen it.
//!
//! `cargo run -p kv-store --example quick_start`

use std::time::Duration;

use kv_store::{IndexKind, KvStore, Options, Ttl, WriteBatch};

fn main() -> Result<(), kv_store::Error> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = || Options::default().index(IndexKind::Ordered);

    let store = KvStore::open_with(dir.path(), options())?;
    store.put("user:1", "ada")?;
    store.put("user:2", "grace")?;
    store.put_with_ttl("session:1", "token", Duration::from_secs(3600))?;
    let mut batch = WriteBatch::new();
    batch.put("user:3", "barbara").delete("user:1");
    store.write(batch)?; // all or nothing, even across a crash
    store.close()?;

    let store = KvStore::open_with(dir.path(), options())?;
    println!("{} keys after reopening", store.len());
    for (key, value) in store.scan_prefix("user:")? {
        println!(
            "{} = {}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&value)
        );
    }
    match store.ttl("session:1") {
        Ttl::Remaining(left) => println!("session:1 expires in {} s", left.as_secs()),
        Ttl::NoDeadline => println!("session:1 has no deadline"),
        Ttl::NoKey => println!("session:1 is gone"),
    }
    let stats = store.stats();
    println!(
        "replayed {} records in {} us",
        stats.open_replayed_records, stats.open_duration_micros
    );
    Ok(())
}
