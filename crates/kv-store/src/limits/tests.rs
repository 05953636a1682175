//! Eviction under concurrent writers. These tests see the store's eviction journal (every
//! delete an eviction wrote, with the value it meant to delete), so an acknowledged put that
//! disappears is told apart from a legitimate eviction of that very value.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Clock, Durability, Error, Eviction, KvStore, ManualClock, Options};

/// Each writer's keys and the value of its last acknowledged put of each, with the earliest
/// its deadline can be when it had one.
type Acked = HashMap<Bytes, (Bytes, Option<u64>)>;

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
/// reads its key back right after the put is acknowledged. With a `clock`, every other put
/// has a deadline a tick away, and the clock ticks: expired entries are the preferred
/// victims, and the writers refill them.
fn run_writers(
    store: &KvStore,
    threads: usize,
    keys: usize,
    puts: usize,
    time: Duration,
    clock: Option<&ManualClock>,
) -> Outcome {
    let end = Instant::now() + time;
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        if let Some(clock) = clock {
            scope.spawn(move || {
                while Instant::now() < end {
                    clock.advance(1);
                    std::thread::sleep(Duration::from_micros(100));
                }
            });
        }
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
                        // Each key alternates: an expiring put, then a refill that does not expire.
                        let expiring = clock.filter(|_| (seq / keys).is_multiple_of(2));
                        let until = expiring.map(|c| c.now_ms() + 1);
                        let put = match expiring {
                            Some(_) => store.put_with_ttl(
                                key.clone(),
                                value.clone(),
                                Duration::from_millis(1),
                            ),
                            None => store.put(key.clone(), value.clone()),
                        };
                        match put {
                            Ok(()) => {}
                            Err(Error::LimitReached { .. }) => {
                                out.refused += 1;
                                continue;
                            }
                            Err(e) => panic!("put failed: {e}"),
                        }
                        out.puts += 1;
                        out.acked.insert(key.clone(), (value.clone(), until));
                        // Nobody else writes this key: it holds this value, unless it
                        // expired or an eviction chose this very value (and journaled it
                        // before deleting it).
                        let held = store.get(&key);
                        let expired = until.is_some_and(|u| clock.unwrap().now_ms() >= u);
                        if held.as_ref() != Some(&value)
                            && !(held.is_none() && expired)
                            && !journal(&store).contains(&(key.clone(), value.clone()))
                        {
                            out.lost.push(format!("{key:?} = {value:?}, now {held:?}"));
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

/// Every acknowledged value is still there, or expired (at `now`), or was evicted as that
/// value.
fn check_acked(
    store: &KvStore,
    acked: &Acked,
    evicted: &HashSet<(Bytes, Bytes)>,
    now: u64,
    when: &str,
) {
    for (key, (value, until)) in acked {
        let held = store.get(key);
        let gone = held.is_none()
            && (evicted.contains(&(key.clone(), value.clone())) || until.is_some_and(|u| now >= u));
        assert!(
            held.as_ref() == Some(value) || gone,
            "{when}: {key:?} holds {held:?}, acknowledged {value:?} and not evicted as such"
        );
    }
}

/// Every live entry, as (key, value, deadline).
fn contents(store: &KvStore) -> BTreeSet<(Bytes, Bytes, Option<u64>)> {
    let mut all = BTreeSet::new();
    store.for_each(|key, value, deadline| {
        all.insert((
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(value),
            deadline,
        ));
    });
    all
}

/// Checks the key limit and every acknowledged write, then again after a reopen.
fn check_at_rest(store: KvStore, options: Options, outcome: &Outcome, max_keys: usize, now: u64) {
    let evicted = journal(&store);
    assert!(
        store.len() <= max_keys,
        "{} keys over {max_keys}",
        store.len()
    );
    check_acked(&store, &outcome.acked, &evicted, now, "running");
    let before = contents(&store);
    let dir = store.path().to_path_buf();
    store.close().unwrap();
    drop(store);
    let store = KvStore::open_with(&dir, options).unwrap();
    assert!(
        contents(&store) == before,
        "evictions are logged: the reopened store equals the running one"
    );
    assert!(
        store.len() <= max_keys,
        "{} keys over {max_keys} after reopen",
        store.len()
    );
    check_acked(&store, &outcome.acked, &evicted, now, "reopened");
}

fn lru_options(max_keys: usize, durability: Durability) -> Options {
    Options::default()
        .shards(4)
        .segment_size(1 << 20)
        .durability(durability)
        .max_keys(max_keys, Eviction::Lru)
}

/// Writers put their keys under LRU with a key limit, with evictions paused between
/// sampling and deleting; with a `clock`, half the puts expire a tick later.
fn evictions_race_writers(clock: Option<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = lru_options(64, Durability::None);
    if let Some(clock) = &clock {
        options = options.clock(Arc::new(clock.clone()));
    }
    let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
    // Widens the window between choosing victims and deleting them, where the writers'
    // puts of those keys slip in.
    store
        .admission()
        .pause_after_sampling
        .store(true, Ordering::Relaxed);
    let time = Duration::from_millis(1500);
    let outcome = run_writers(&store, 8, 12, usize::MAX, time, clock.as_ref());
    assert!(
        outcome.lost.is_empty(),
        "{} acknowledged puts evicted as an older value, first {:?}",
        outcome.lost.len(),
        &outcome.lost[..outcome.lost.len().min(3)]
    );
    assert!(store.stats().evictions > 100, "{:?}", store.stats());
    let now = clock.map_or(0, |c| c.now_ms());
    check_at_rest(store, options, &outcome, 64, now);
}

#[test]
fn an_eviction_never_deletes_a_value_written_after_it_sampled_the_key() {
    evictions_race_writers(None);
}

#[test]
fn an_eviction_of_an_expired_entry_never_deletes_its_refill() {
    evictions_race_writers(Some(ManualClock::new(1_000_000)));
}

#[test]
fn evicting_stores_never_refuse_concurrent_puts() {
    // With a limit of 4, the writers' own reservations often take all the room: they wait.
    for (eviction, max_keys) in [(Eviction::Lru, 64), (Eviction::Lfu, 64), (Eviction::Lru, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let options = lru_options(max_keys, Durability::Sync).max_keys(max_keys, eviction);
        let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
        let outcome = run_writers(&store, 8, 50, 400, Duration::from_secs(3), None);
        assert_eq!(outcome.refused, 0, "{eviction:?} {max_keys}: puts refused");
        let evictions = store.stats().evictions;
        assert!(
            evictions as usize >= outcome.puts.saturating_sub(max_keys + 8) / 2,
            "{eviction:?}: {} puts, {evictions} evictions",
            outcome.puts
        );
        assert!(outcome.lost.is_empty(), "{eviction:?}: {:?}", outcome.lost);
        check_at_rest(store, options, &outcome, max_keys, 0);
    }
}
