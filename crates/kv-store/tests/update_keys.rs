//! `update_keys` and `try_update_keys`: several keys as one atomic step, each held as it is
//! used.

use std::sync::mpsc;
use std::time::Duration;

use kv_store::{Durability, KeyUse, KvStore, Options, WriteBatch};

fn open(durability: Durability) -> (tempfile::TempDir, KvStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), Options::default().durability(durability)).unwrap();
    (dir, store)
}

fn number(held: &kv_store::HeldKeys<'_>, key: &[u8]) -> u64 {
    held.get(key).map_or(0, |(value, _)| {
        std::str::from_utf8(&value).unwrap().parse().unwrap()
    })
}

#[test]
fn increments_of_keys_held_to_read_are_never_lost() {
    let (_dir, store) = open(Durability::Batch(Duration::from_millis(5)));
    const THREADS: u64 = 4;
    const EACH: u64 = 500;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let store = &store;
            scope.spawn(move || {
                let own = format!("own{thread}");
                for _ in 0..EACH {
                    // Two counters in one step; the second is only written.
                    store
                        .update_keys(
                            &[(&b"hot"[..], KeyUse::Read), (own.as_bytes(), KeyUse::Write)],
                            |held| {
                                let mut batch = WriteBatch::new();
                                batch.put("hot", (number(held, b"hot") + 1).to_string());
                                batch.put(own.clone(), "seen");
                                (batch, ())
                            },
                        )
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.get("hot").unwrap(), (THREADS * EACH).to_string());
    assert_eq!(store.get("own3").unwrap(), "seen");
}

#[test]
fn try_update_keys_never_waits() {
    // A write that waits for its fsync: never in place.
    let (_dir, store) = open(Durability::Sync);
    let tried = store.try_update_keys(&[(&b"k"[..], KeyUse::Write)], |_| {
        let mut batch = WriteBatch::new();
        batch.put("k", "v");
        (batch, ())
    });
    assert!(tried.is_none());
    assert!(store.get("k").is_none(), "nothing written");

    // A key held by another writer: given back at once, whether it is to be read or only
    // written.
    let (_dir, store) = open(Durability::None);
    let (holding, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let store = &store;
        scope.spawn(move || {
            store
                .update_keys(&[(&b"k"[..], KeyUse::Read)], |_| {
                    holding.send(()).unwrap();
                    released.recv().unwrap();
                    (WriteBatch::new(), ())
                })
                .unwrap();
        });
        held.recv().unwrap();
        for usage in [KeyUse::Read, KeyUse::Write] {
            let tried = store.try_update_keys(
                &[(&b"other"[..], KeyUse::Write), (&b"k"[..], usage)],
                |_| {
                    let mut batch = WriteBatch::new();
                    batch.put("k", "v").put("other", "v");
                    (batch, ())
                },
            );
            assert!(tried.is_none(), "{usage:?}");
        }
        release.send(()).unwrap();
    });
    assert!(store.get("k").is_none() && store.get("other").is_none());
    // Free again: written in place.
    let tried = store.try_update_keys(&[(&b"k"[..], KeyUse::Read)], |held| {
        let mut batch = WriteBatch::new();
        batch.put("k", (number(held, b"k") + 1).to_string());
        (batch, ())
    });
    assert!(matches!(tried, Some(Ok(()))));
    assert_eq!(store.get("k").unwrap(), "1");
}

#[test]
#[should_panic(expected = "not among `keys`")]
fn a_batch_writing_a_key_not_held_is_refused() {
    let (_dir, store) = open(Durability::None);
    let _ = store.update_keys(&[(&b"held"[..], KeyUse::Write)], |_| {
        let mut batch = WriteBatch::new();
        batch.put("not-held", "v");
        (batch, ())
    });
}
