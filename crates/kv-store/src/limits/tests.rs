//! Eviction under concurrent writers. These tests see the store's eviction journal (every
//! delete an eviction wrote, with the value it meant to delete), so an acknowledged put that
//! disappears is told apart from a legitimate eviction of that very value.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Durability, Error, Eviction, KvStore, Options};

/// Each writer's keys and the value of its last acknowledged put of each.
type Acked = HashMap<Bytes, Bytes>;

/// What the writers saw: their acknowledged values, puts refused, and puts acknowledged whose
/// value was gone right after without an eviction of that value in the journal.
#[derive(Default)]
struct Outcome {
    acked: Acked,
    puts: usize,
    refused: usize,
    lost: Vec<String>,
}

fn journal(store: &KvStore) -> HashSet<(Bytes, Bytes)> {
    store.admission().journal.lock().iter().cloned().collect()
}

/// `threads` writers, each putting its own `keys` keys round robin (so the key a writer is
/// about to put is its coldest: a likely victim) until `puts` each or `time` runs out; each
/// reads its key back right after the put is acknowledged.
fn run_writers(
    store: &KvStore,
    threads: usize,
    keys: usize,
    puts: usize,
    time: Duration,
) -> Outcome {
    let end = Instant::now() + time;
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                scope.spawn(move || {
                    let mut out = Outcome::default();
                    for seq in 0..puts {
                        if Instant::now() >= end {
                            break;
                        }
                        let key = Bytes::from(format!("t{t}-k{}", seq % keys));
                        let value = Bytes::from(format!("t{t}-v{seq}"));
                        match store.put(key.clone(), value.clone()) {
                            Ok(()) => {}
                            Err(Error::LimitReached { .. }) => {
                                out.refused += 1;
                                continue;
                            }
                            Err(e) => panic!("put failed: {e}"),
                        }
                        out.puts += 1;
                        out.acked.insert(key.clone(), value.clone());
                        // Nobody else writes this key: it holds this value, unless an
                        // eviction chose this very value (and journaled it before deleting).
                        if store.get(&key).as_ref() != Some(&value)
                            && !journal(&store).contains(&(key.clone(), value.clone()))
                        {
                            out.lost.push(format!("{key:?} = {value:?}"));
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = Outcome::default();
    for out in outcomes {
        all.acked.extend(out.acked);
        all.puts += out.puts;
        all.refused += out.refused;
        all.lost.extend(out.lost);
    }
    all
}

/// Every acknowledged value is still there, or was evicted as that value.
fn check_acked(store: &KvStore, acked: &Acked, evicted: &HashSet<(Bytes, Bytes)>, when: &str) {
    for (key, value) in acked {
        let held = store.get(key);
        assert!(
            held.as_ref() == Some(value)
                || (held.is_none() && evicted.contains(&(key.clone(), value.clone()))),
            "{when}: {key:?} holds {held:?}, acknowledged {value:?} and not evicted as such"
        );
    }
}

/// Checks the key limit and every acknowledged write, then again after a reopen.
fn check_at_rest(store: KvStore, options: Options, outcome: &Outcome, max_keys: usize) {
    let evicted = journal(&store);
    assert!(
        store.len() <= max_keys,
        "{} keys over {max_keys}",
        store.len()
    );
    check_acked(&store, &outcome.acked, &evicted, "running");
    let dir = store.path().to_path_buf();
    store.close().unwrap();
    drop(store);
    let store = KvStore::open_with(&dir, options).unwrap();
    assert!(
        store.len() <= max_keys,
        "{} keys over {max_keys} after reopen",
        store.len()
    );
    check_acked(&store, &outcome.acked, &evicted, "reopened");
}

fn lru_options(max_keys: usize, durability: Durability) -> Options {
    Options::default()
        .shards(4)
        .segment_size(1 << 20)
        .durability(durability)
        .max_keys(max_keys, Eviction::Lru)
}

#[test]
fn an_eviction_never_deletes_a_value_written_after_it_sampled_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let options = lru_options(64, Durability::None);
    let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
    // Widens the window between choosing victims and deleting them, where the writers'
    // puts of those keys slip in.
    store
        .admission()
        .pause_after_sampling
        .store(true, Ordering::Relaxed);
    let outcome = run_writers(&store, 8, 12, usize::MAX, Duration::from_millis(1500));
    assert!(
        outcome.lost.is_empty(),
        "{} acknowledged puts evicted as an older value, first {:?}",
        outcome.lost.len(),
        &outcome.lost[..outcome.lost.len().min(3)]
    );
    assert!(store.stats().evictions > 100, "{:?}", store.stats());
    check_at_rest(store, options, &outcome, 64);
}

#[test]
fn evicting_stores_never_refuse_concurrent_puts() {
    for eviction in [Eviction::Lru, Eviction::Lfu] {
        let dir = tempfile::tempdir().unwrap();
        let options = lru_options(64, Durability::Sync).max_keys(64, eviction);
        let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
        let outcome = run_writers(&store, 8, 50, 400, Duration::from_secs(3));
        assert_eq!(outcome.refused, 0, "{eviction:?}: puts refused");
        let evictions = store.stats().evictions;
        eprintln!("{eviction:?}: {} puts, {evictions} evictions", outcome.puts);
        assert!(evictions as usize >= outcome.puts.saturating_sub(64 + 8) / 2);
        assert!(outcome.lost.is_empty(), "{eviction:?}: {:?}", outcome.lost);
        check_at_rest(store, options, &outcome, 64);
    }
}
