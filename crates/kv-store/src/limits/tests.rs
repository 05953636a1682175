//! Eviction under concurrent writers. These tests see the store's eviction journal (every
//! delete an eviction wrote, with the value it meant to delete), so an acknowledged put that
//! disappears is told apart from a legitimate eviction of that very value.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::Limit;
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
                        let held = store.get(&key).map(Bytes::from);
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
        let held = store.get(key).map(Bytes::from);
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
    assert!(store.stats().evictions_total > 100, "{:?}", store.stats());
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
        let evictions = store.stats().evictions_total;
        assert!(
            evictions as usize >= outcome.puts.saturating_sub(max_keys + 8) / 2,
            "{eviction:?}: {} puts, {evictions} evictions",
            outcome.puts
        );
        assert!(outcome.lost.is_empty(), "{eviction:?}: {:?}", outcome.lost);
        check_at_rest(store, options, &outcome, max_keys, 0);
    }
}

/// Memory a store opened with `options` accounts for these entries (no deadlines).
fn memory_of(options: &Options, entries: &[(&str, &str)]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
    for (key, value) in entries {
        store
            .put(
                Bytes::copy_from_slice(key.as_bytes()),
                Bytes::copy_from_slice(value.as_bytes()),
            )
            .unwrap();
    }
    store.stats().memory_used_bytes
}

fn small_store_options() -> Options {
    Options::default()
        .shards(4)
        .segment_size(1 << 20)
        .durability(Durability::None)
}

#[test]
fn expire_never_adds_memory_it_did_not_reserve() {
    // The store is at its limit once `k` holds the large value: an `expire` of `k` while it
    // holds the small one, raced by a put of the large one, must either reserve the
    // deadline's bytes or be refused. Sizing the deadline against the entry the put left
    // saw no growth, and the deadline went over the limit unreserved.
    let (small, large) = ("s", "l".repeat(32));
    let limit = memory_of(&small_store_options(), &[("k", &large)]);
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(
        dir.path(),
        small_store_options().max_memory(limit, Eviction::Reject),
    )
    .unwrap();
    // Widens the window between `expire` looking at the entry and reserving.
    store
        .admission()
        .pause_before_reserving
        .store(true, Ordering::Relaxed);
    for attempt in 0..300 {
        store.persist("k").unwrap();
        store.put("k", small).unwrap();
        let (expired, put) = std::thread::scope(|scope| {
            let expiring = scope.spawn(|| store.expire("k", Duration::from_secs(3600)));
            std::thread::sleep(Duration::from_micros(50));
            let put = store.put("k", large.clone());
            (expiring.join().unwrap(), put)
        });
        for result in [expired.map(|_| ()), put] {
            assert!(
                matches!(result, Ok(()) | Err(Error::LimitReached { .. })),
                "{result:?}"
            );
        }
        let used = store.stats().memory_used_bytes;
        assert!(
            used <= limit,
            "attempt {attempt}: {used} bytes over {limit}"
        );
    }
}

#[test]
fn expire_never_evicts_its_own_key() {
    // `k` is the coldest key and the store has no room for its deadline: `expire` must make
    // room by evicting `j`, never `k` itself (it then answered `false` for a live key).
    for _ in 0..20 {
        let base = memory_of(&small_store_options(), &[("k", "value"), ("j", "value")]);
        let dir = tempfile::tempdir().unwrap();
        let options = small_store_options().max_memory(base + 4, Eviction::Lru);
        let store = KvStore::open_with(dir.path(), options).unwrap();
        store.put("k", "value").unwrap();
        store.put("j", "value").unwrap();
        assert_eq!(store.get("j").unwrap(), "value");
        assert!(store.expire("k", Duration::from_secs(3600)).unwrap());
        assert!(store.ttl("k").remaining().is_some(), "k lost its deadline");
        assert_eq!(store.get("j"), None, "j was the only room");
    }
}

#[test]
fn a_put_waits_for_room_at_most_the_wait_limit_in_all() {
    // Every eviction round finds its victims read since they were sampled (a reader races
    // the evictor), so no room ever comes: the put must give up after the wait limit, not
    // sample again for ever.
    let dir = tempfile::tempdir().unwrap();
    let options = small_store_options().max_keys(8, Eviction::Lfu);
    let store = KvStore::open_with(dir.path(), options).unwrap();
    for i in 0..8 {
        store.put(format!("k{i}"), "v").unwrap();
    }
    let admission = store.admission();
    admission.max_wait_ms.store(300, Ordering::Relaxed);
    admission
        .read_victims_after_sampling
        .store(true, Ordering::Relaxed);
    let (sender, receiver) = std::sync::mpsc::channel();
    let putter = {
        let store = store.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = store.put("new", "v");
            sender.send((result, started.elapsed())).unwrap();
        })
    };
    let answer = receiver.recv_timeout(Duration::from_secs(3));
    // Lets a put still looping find its victims, so that it ends either way.
    store
        .admission()
        .read_victims_after_sampling
        .store(false, Ordering::Relaxed);
    putter.join().unwrap();
    let (result, waited) = answer.expect("the put still waited 3 s after a wait limit of 300 ms");
    assert!(
        matches!(result, Err(Error::LimitReached { .. })),
        "{result:?}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
}

#[test]
fn a_batch_that_writes_a_key_several_times_counts_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let value = "v".repeat(100);
    let one = memory_of(&small_store_options(), &[("k", &value)]);
    for options in [
        small_store_options().max_keys(1, Eviction::Lru),
        small_store_options().max_keys(1, Eviction::Reject),
        small_store_options().max_memory(one, Eviction::Lru),
        small_store_options().max_memory(one, Eviction::Reject),
    ] {
        let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
        let mut batch = crate::WriteBatch::new();
        batch
            .put("k", value.clone())
            .put("k", value.clone())
            .put("k", value.clone());
        store
            .write(batch)
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
        assert_eq!(store.get("k").unwrap(), value);
        // A put then a delete of the same key adds nothing.
        let mut batch = crate::WriteBatch::new();
        batch.put("other", value.clone()).delete("other");
        store
            .write(batch)
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
        assert_eq!(
            (store.len(), Bytes::from(store.get("k").unwrap())),
            (1, Bytes::from(value.clone()))
        );
        store.delete("k").unwrap();
        store.close().unwrap();
    }
}

#[test]
fn concurrent_evictions_free_about_what_the_writers_need() {
    // Every blocked writer used to evict for the whole shortfall (and for the room the
    // others had reserved) at once: with 8 writers the store fell far below its limit.
    // Evictions free what is still needed when each victim is locked, so between its
    // writers' puts the store stays near its limit.
    const MAX_KEYS: usize = 64;
    const THREADS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let options = lru_options(MAX_KEYS, Durability::Sync);
    let store = KvStore::open_with(dir.path(), options.clone()).unwrap();
    for i in 0..MAX_KEYS {
        store.put(format!("fill{i}"), "v").unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (outcome, lowest) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut lowest = usize::MAX;
            while !stop.load(Ordering::Relaxed) {
                lowest = lowest.min(store.len());
                std::thread::sleep(Duration::from_micros(200));
            }
            lowest
        });
        let outcome = run_writers(&store, THREADS, 50, 300, Duration::from_secs(2), None);
        stop.store(true, Ordering::Relaxed);
        (outcome, sampler.join().unwrap())
    });
    assert_eq!(outcome.refused, 0);
    assert!(outcome.lost.is_empty(), "{:?}", outcome.lost);
    let evictions = store.stats().evictions_total as usize;
    // Each writer may hold the room of one key reserved and not yet stored: at most one
    // key per writer below the limit (measured: 61-62; 44-47 when each evicted for all).
    assert!(
        lowest >= MAX_KEYS - THREADS,
        "the store fell to {lowest} keys under a limit of {MAX_KEYS}; {} puts, {evictions} evictions",
        outcome.puts
    );
    check_at_rest(store, options, &outcome, MAX_KEYS, 0);
}

/// Keys, values and deadlines for the property test of `growth`: few keys, so batches
/// repeat them.
mod growth {
    use bytes::Bytes;
    use kv_concurrent::Sharded;
    use kv_core::{Expiry, IndexKind, Op, State};
    use kv_durable::Sink;
    use proptest::prelude::*;

    use crate::limits::Admission;
    use crate::{Eviction, MemoryLimits};

    const NOW: u64 = 1_000;

    /// An op on key `k{key}`: a put of `len` bytes (with a deadline if `expires`), or a
    /// delete (`None`).
    fn op(key: u8, put: Option<(usize, bool)>) -> Op {
        let key = Bytes::from(format!("k{key}"));
        match put {
            Some((len, expires)) => Op::Put {
                key,
                value: Bytes::from(vec![b'v'; len]),
                expiry: if expires {
                    Expiry::AtUnixMillis(NOW + 60_000)
                } else {
                    Expiry::Never
                },
            },
            None => Op::Delete { key },
        }
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            (
                0u8..5,
                prop::option::weighted(0.8, (0usize..300, any::<bool>())),
            ),
            0..12,
        )
        .prop_map(|ops| ops.into_iter().map(|(k, p)| op(k, p)).collect())
    }

    /// The memory `key`'s entry takes in `state` (0 when absent).
    fn memory(state: &State, key: &[u8]) -> usize {
        state
            .get_even_expired(key)
            .map_or(0, |e| state.memory_of(e))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// `growth` is what applying the batch to the state adds, key by key, counting no
        /// decrease: exactly, for keys held exclusively; at least, for the others.
        #[test]
        fn growth_is_what_applying_the_batch_adds(
            ordered in any::<bool>(),
            initial in ops(),
            batch in ops().prop_filter("a write has an op", |b| !b.is_empty()),
            modes in prop::collection::vec(any::<bool>(), 12),
        ) {
            let kind = if ordered { IndexKind::Ordered } else { IndexKind::Hash };
            let sharded = Sharded::new(kind, 4);
            let mut state = State::new(kind);
            for op in &initial {
                sharded.apply(op.as_ref(), NOW);
                state.apply(op.as_ref(), NOW);
            }
            let before = state.clone();
            for op in &batch {
                state.apply(op.as_ref(), NOW);
            }
            let mut keys: Vec<&Bytes> = batch.iter().map(|op| op.key()).collect();
            keys.sort();
            keys.dedup();
            let added_bytes: usize = keys
                .iter()
                .map(|k| memory(&state, k).saturating_sub(memory(&before, k)))
                .sum();
            let added_keys = keys
                .iter()
                .filter(|k| memory(&before, k) == 0 && memory(&state, k) > 0)
                .count();
            let admission = Admission::new(MemoryLimits {
                max_keys: Some(usize::MAX),
                max_memory: Some(usize::MAX),
                eviction: Eviction::Lru,
            });
            let exclusive = admission.growth(&sharded, &batch, &vec![true; batch.len()]);
            prop_assert_eq!((exclusive.bytes, exclusive.keys), (added_bytes, added_keys));
            let mixed = admission.growth(&sharded, &batch, &modes[..batch.len()]);
            prop_assert!(mixed.bytes >= added_bytes, "{:?} < {}", mixed, added_bytes);
            prop_assert_eq!(mixed.keys, added_keys);
        }
    }
}

/// A write that reserves, applies and releases entirely while another is between looking
/// at what is stored and reserving leaves the reservations as they were. The other must
/// still see what it stored: admitting both here puts 33 keys under a limit of 32.
#[test]
fn a_reservation_sees_a_write_that_came_and_went_while_it_looked() {
    let reserved = AtomicUsize::new(0);
    let stored = AtomicUsize::new(31);
    let other_admitted = AtomicBool::new(false);
    let looked = AtomicBool::new(false);
    // What the first write reads as stored: the count before the other write, which runs
    // all of its own admission, apply and release right after that read.
    let used = || {
        let before = stored.load(Ordering::SeqCst);
        let stored_now = || stored.load(Ordering::SeqCst);
        if !looked.swap(true, Ordering::SeqCst)
            && super::take(&reserved, &stored_now, 1, 32, Limit::Keys, &|| {}).is_ok()
        {
            stored.fetch_add(1, Ordering::SeqCst);
            reserved.fetch_sub(1, Ordering::SeqCst);
            other_admitted.store(true, Ordering::SeqCst);
        }
        before
    };
    let first = super::take(&reserved, &used, 1, 32, Limit::Keys, &|| {});
    let admitted = usize::from(first.is_ok()) + usize::from(other_admitted.load(Ordering::SeqCst));
    assert!(looked.load(Ordering::SeqCst));
    assert_eq!(
        admitted, 1,
        "one key fits under the limit, {admitted} were admitted"
    );
}

/// A write too large for the room left is refused without reserving anything, so a small
/// write racing it still gets that room: the small one runs whole where the large one, had
/// it reserved first, would be looking at what is stored after reserving.
#[test]
fn a_write_that_cannot_fit_never_takes_the_room_of_one_that_can() {
    let reserved = AtomicUsize::new(0);
    let stored = AtomicUsize::new(31);
    let looks = AtomicUsize::new(0);
    let small = || {
        let stored_now = || stored.load(Ordering::SeqCst);
        super::take(&reserved, &stored_now, 1, 32, Limit::Keys, &|| {}).is_ok()
    };
    let small_admitted = std::cell::Cell::new(None);
    let used = || {
        if looks.fetch_add(1, Ordering::SeqCst) == 1 {
            small_admitted.set(Some(small()));
        }
        stored.load(Ordering::SeqCst)
    };
    let large = super::take(&reserved, &used, 5, 32, Limit::Keys, &|| {});
    assert!(
        matches!(large, Err(Error::LimitReached { needed: 5, .. })),
        "{large:?}"
    );
    let small_admitted = small_admitted.get().unwrap_or_else(small);
    assert!(small_admitted, "the one key that fits was refused");
}

/// Many threads add keys under a limit through `take` (reserve, apply, release) and remove
/// some of their own; what is stored never exceeds the limit, even with threads descheduled
/// between looking and reserving (the yield).
#[test]
fn reservations_keep_the_limit_under_many_threads() {
    const LIMIT: usize = 32;
    let reserved = AtomicUsize::new(0);
    let stored = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let admitted = AtomicUsize::new(0);
    let used = || {
        let now = stored.load(Ordering::SeqCst);
        std::thread::yield_now();
        now
    };
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let (reserved, stored, peak, admitted, used) =
                (&reserved, &stored, &peak, &admitted, &used);
            scope.spawn(move || {
                let mut own = 0;
                for i in 0..5_000 {
                    if super::take(reserved, used, 1, LIMIT, Limit::Keys, &|| {}).is_ok() {
                        let now = stored.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        reserved.fetch_sub(1, Ordering::SeqCst);
                        admitted.fetch_add(1, Ordering::SeqCst);
                        own += 1;
                    }
                    if own > 0 && (i + thread) % 3 == 0 {
                        stored.fetch_sub(1, Ordering::SeqCst);
                        own -= 1;
                    }
                }
            });
        }
    });
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= LIMIT, "{peak} keys stored under a limit of {LIMIT}");
    // Pressed against the limit, and not refused throughout: the threads keep deleting, so
    // about one try in three fits (12,000-13,300 of 40,000 in ten runs).
    assert_eq!(peak, LIMIT, "never reached the limit");
    let admitted = admitted.load(Ordering::SeqCst);
    assert!(admitted > 8 * 5_000 / 10, "{admitted} admitted");
}
