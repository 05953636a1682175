//! `max_keys` and `max_memory` under concurrent writers, deletes and the expiry sweep, and
//! writes that add nothing to a store over its limit. (Eviction under concurrency is tested
//! next to `limits.rs`, where the eviction journal tells a lost put from an eviction.)

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_store::{
    Bytes, Clock, Durability, Error, Eviction, IndexKind, KvStore, ManualClock, Options,
};

/// How long each test writes: rounds of writes, each followed by checks at rest.
const TEST_TIME: Duration = Duration::from_millis(1500);

/// The limit a test sets.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Keys(usize),
    Memory(usize),
}

fn options(limit: Limit, clock: &ManualClock) -> Options {
    let options = Options::default()
        .shards(4)
        .segment_size(1 << 20)
        .index(IndexKind::Ordered)
        // Many rounds a second: the races need many tries, not long commits.
        .durability(Durability::None)
        .clock(Arc::new(clock.clone()))
        // The sweep is one of the ways a key goes while a write counts on it.
        .sweep_interval(Duration::from_millis(1));
    match limit {
        Limit::Keys(keys) => options.max_keys(keys, Eviction::Reject),
        Limit::Memory(bytes) => options.max_memory(bytes, Eviction::Reject),
    }
}

fn assert_within(store: &KvStore, limit: Limit, when: &str) {
    let stats = store.stats();
    match limit {
        Limit::Keys(max) => assert!(stats.keys <= max, "{when}: {} keys over {max}", stats.keys),
        Limit::Memory(max) => assert!(
            stats.memory_used_bytes <= max,
            "{when}: {} bytes over {max}",
            stats.memory_used_bytes
        ),
    }
}

/// A writer's last acknowledged operation on one of its own keys.
#[derive(Clone, Debug)]
enum Last {
    Put(Bytes),
    /// Put with a deadline no earlier than this (the store read its clock after the test).
    PutUntil(Bytes, u64),
    Deleted,
}

/// Moves the clock forward by a millisecond every 100 µs until `stop`, so that deadlines
/// pass while writes are in flight and the sweep removes their keys.
fn tick(clock: &ManualClock, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        clock.advance(1);
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn value(thread: usize, seq: usize) -> Bytes {
    // Sizes vary, so overwrites grow and shrink entries.
    let filler = "x".repeat(seq * 37 % 120);
    Bytes::from(format!("t{thread}-s{seq}-{filler}"))
}

/// Writers that each own keys put, put with short deadlines and delete them; the sweep
/// removes expired ones meanwhile. After every round, at rest: the limit holds, and each key
/// holds its writer's last acknowledged operation. Then the same after a reopen.
fn owned_keys_round(limit: Limit) {
    const THREADS: usize = 8;
    // 64 keys against a limit of 32: the store stays at its limit.
    const KEYS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = KvStore::open_with(dir.path(), options(limit, &clock)).unwrap();
    let mut models: Vec<HashMap<Bytes, Last>> = vec![HashMap::new(); THREADS];
    let end = Instant::now() + TEST_TIME;
    for round in 0.. {
        if Instant::now() >= end {
            break;
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| tick(&clock, &stop));
            let writers: Vec<_> = models
                .iter_mut()
                .enumerate()
                .map(|(t, model)| {
                    let store = store.clone();
                    let clock = clock.clone();
                    scope.spawn(move || {
                        for i in 0..40 {
                            let seq = round * 1_000 + i;
                            let key = Bytes::from(format!("t{t}-k{}", (i / 2 + t) % KEYS));
                            let v = value(t, seq);
                            let (result, last) = match i % 8 {
                                // Expires a few ticks later, and is overwritten or deleted
                                // about when the sweep removes it.
                                0 | 2 | 4 => {
                                    let until = clock.now_ms() + 1;
                                    let result = store.put_with_ttl(
                                        key.clone(),
                                        v.clone(),
                                        Duration::from_millis(1),
                                    );
                                    (result, Last::PutUntil(v, until))
                                }
                                7 => (store.delete(key.clone()), Last::Deleted),
                                _ => (store.put(key.clone(), v.clone()), Last::Put(v)),
                            };
                            match result {
                                Ok(()) => {
                                    model.insert(key, last);
                                }
                                Err(Error::LimitReached { .. }) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_within(&store, limit, &format!("round {round}"));
        check_models(&store, &models, clock.now_ms(), round);
    }
    let now = clock.now_ms();
    store.close().unwrap();
    drop(store);
    let store = KvStore::open_with(dir.path(), options(limit, &clock)).unwrap();
    assert_within(&store, limit, "reopened");
    check_models(&store, &models, now, usize::MAX);
}

fn check_models(store: &KvStore, models: &[HashMap<Bytes, Last>], now: u64, round: usize) {
    for model in models {
        for (key, last) in model {
            let held = store.get(key).map(Bytes::from);
            let ok = match last {
                Last::Put(v) => held.as_ref() == Some(v),
                Last::PutUntil(v, until) => {
                    held.as_ref() == Some(v) || (held.is_none() && now >= *until)
                }
                Last::Deleted => held.is_none(),
            };
            assert!(
                ok,
                "round {round}: {key:?} holds {held:?}, last acknowledged {last:?}"
            );
        }
    }
}

#[test]
fn the_key_limit_holds_while_keys_expire_and_are_deleted_under_overwrites() {
    owned_keys_round(Limit::Keys(32));
}

#[test]
fn the_memory_limit_holds_while_keys_expire_and_are_deleted_under_overwrites() {
    owned_keys_round(Limit::Memory(6_000));
}

/// Writers share keys: overwrites of one key race each other (growing and shrinking it) and
/// its deletes. At rest after every round the limit holds and every key holds a value some
/// writer was told was written; a reopened store holds the same.
fn shared_keys(limit: Limit) {
    const THREADS: usize = 8;
    const KEYS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = KvStore::open_with(dir.path(), options(limit, &clock)).unwrap();
    let mut acked: HashSet<Bytes> = HashSet::new();
    let end = Instant::now() + TEST_TIME;
    for round in 0.. {
        if Instant::now() >= end {
            break;
        }
        let stop = AtomicBool::new(false);
        let written: Vec<Vec<Bytes>> = std::thread::scope(|scope| {
            scope.spawn(|| tick(&clock, &stop));
            let writers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let store = store.clone();
                    scope.spawn(move || {
                        let mut written = Vec::new();
                        for i in 0..40 {
                            let seq = round * 1_000 + i;
                            let key = Bytes::from(format!("k{}", (seq * 13 + t * 5) % KEYS));
                            let v = value(t, seq);
                            let result = match (i + t) % 6 {
                                0 | 3 => store.delete(key),
                                1 => store.put_with_ttl(key, v.clone(), Duration::from_millis(2)),
                                _ => store.put(key, v.clone()),
                            };
                            match result {
                                Ok(()) => written.push(v),
                                Err(Error::LimitReached { .. }) => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                        written
                    })
                })
                .collect();
            let written = writers.into_iter().map(|w| w.join().unwrap()).collect();
            stop.store(true, Ordering::Relaxed);
            written
        });
        acked.extend(written.into_iter().flatten());
        assert_within(&store, limit, &format!("round {round}"));
        for (key, held) in common::contents(&store) {
            assert!(
                acked.contains(&held[..]),
                "round {round}: {key:?} holds {held:?}, never acknowledged"
            );
        }
    }
    let before = common::contents(&store);
    store.close().unwrap();
    drop(store);
    let store = KvStore::open_with(dir.path(), options(limit, &clock)).unwrap();
    assert_within(&store, limit, "reopened");
    assert_eq!(
        common::contents(&store),
        before,
        "the reopened store differs"
    );
}

#[test]
fn the_key_limit_holds_under_racing_overwrites_and_deletes_of_shared_keys() {
    shared_keys(Limit::Keys(32));
}

#[test]
fn the_memory_limit_holds_under_racing_overwrites_and_deletes_of_shared_keys() {
    shared_keys(Limit::Memory(6_000));
}

/// A store reopened with a limit below what it holds: writers overwrite their keys with
/// values of the same size and delete most of them, all at once. None of that adds anything,
/// so none of it is refused, and the store gets back under its limit; then new keys fit
/// again up to the limit, and no further.
fn shrinks_back_under(limit: impl Fn(usize, usize) -> Limit) {
    const THREADS: usize = 8;
    const KEYS: usize = 25;
    const KEPT: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let key = |t: usize, k: usize| Bytes::from(format!("t{t}-k{k:02}"));
    let value = |t: usize, k: usize, round: usize| Bytes::from(format!("t{t}-k{k:02}-r{round}"));
    let unlimited = options(Limit::Keys(usize::MAX), &clock);
    let store = KvStore::open_with(dir.path(), unlimited).unwrap();
    for t in 0..THREADS {
        for k in 0..KEYS {
            store.put(key(t, k), value(t, k, 0)).unwrap();
        }
    }
    let (keys, memory) = (store.len(), store.stats().memory_used_bytes);
    store.close().unwrap();
    drop(store);
    // Room for KEPT keys per writer, at most: under half of what the store holds.
    let limit = limit(keys, memory);
    let store = KvStore::open_with(dir.path(), options(limit, &clock)).unwrap();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = store.clone();
            scope.spawn(move || {
                for k in 0..KEYS {
                    store.put(key(t, k), value(t, k, 1)).unwrap();
                }
                for k in KEPT..KEYS {
                    store.delete(key(t, k)).unwrap();
                }
            });
        }
    });
    let check = |store: &KvStore, when: &str| {
        assert_within(store, limit, when);
        for t in 0..THREADS {
            for k in 0..KEYS {
                let expected = (k < KEPT).then(|| value(t, k, 1));
                assert_eq!(
                    store.get(key(t, k)).map(Bytes::from),
                    expected,
                    "{when}: t{t} k{k}"
                );
            }
        }
    };
    check(&store, "running");
    store.close().unwrap();
    drop(store);
    let store = KvStore::open_with(dir.path(), options(limit, &clock)).unwrap();
    check(&store, "reopened");
    // Back under the limit, new keys fit again until it is reached.
    let mut added = 0;
    while store.put(format!("new{added:04}"), "t0-k00-r1").is_ok() {
        added += 1;
    }
    assert!(added > 0, "no room came back");
    assert_within(&store, limit, "refilled");
}

#[test]
fn deletes_and_overwrites_of_a_store_over_a_lowered_key_limit_are_never_refused() {
    shrinks_back_under(|keys, _| Limit::Keys(keys * 12 / 25));
}

#[test]
fn deletes_and_overwrites_of_a_store_over_a_lowered_memory_limit_are_never_refused() {
    shrinks_back_under(|_, memory| Limit::Memory(memory * 12 / 25));
}
