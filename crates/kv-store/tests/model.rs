//! The store against a model (`BTreeMap`s): random operation sequences on several threads,
//! TTLs on an injected clock, and eviction under limits; each checked again after reopening.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::contents;

use kv_store::{Clock, Eviction, IndexKind, KvStore, ManualClock, Options, Ttl, WriteBatch};
use proptest::prelude::*;

/// A key's value and its deadline (unix ms) in the model.
type Model = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

#[derive(Debug, Clone)]
enum Action {
    Put(u8, u8),
    PutTtl(u8, u8, u16),
    Delete(u8),
    Batch(Vec<(u8, Option<u8>)>),
    Expire(u8, u16),
    Persist(u8),
    Advance(u16),
}

fn action() -> impl Strategy<Value = Action> {
    let key = 0u8..12;
    prop_oneof![
        4 => (key.clone(), any::<u8>()).prop_map(|(k, v)| Action::Put(k, v)),
        2 => (key.clone(), any::<u8>(), 1u16..500).prop_map(|(k, v, t)| Action::PutTtl(k, v, t)),
        2 => key.clone().prop_map(Action::Delete),
        1 => prop::collection::vec((key.clone(), prop::option::of(any::<u8>())), 1..5).prop_map(Action::Batch),
        1 => (key.clone(), 1u16..500).prop_map(|(k, t)| Action::Expire(k, t)),
        1 => key.prop_map(Action::Persist),
        1 => (0u16..300).prop_map(Action::Advance),
    ]
}

fn key_of(thread: usize, k: u8) -> Vec<u8> {
    format!("t{thread}:k{k:02}").into_bytes()
}

fn live(model: &Model, now: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    model
        .iter()
        .filter(|(_, (_, d))| d.is_none_or(|d| d > now))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

/// Runs `actions` on `store` for keys of `thread`, updating `model`. The clock only moves in
/// single-threaded runs (`clock` is `Some`).
fn run(
    store: &KvStore,
    thread: usize,
    actions: &[Action],
    model: &mut Model,
    clock: Option<&ManualClock>,
    now: impl Fn() -> u64,
) {
    for action in actions {
        let t = now();
        match action {
            Action::Put(k, v) => {
                store.put(key_of(thread, *k), vec![*v]).unwrap();
                model.insert(key_of(thread, *k), (vec![*v], None));
            }
            Action::PutTtl(k, v, ttl) => {
                store
                    .put_with_ttl(
                        key_of(thread, *k),
                        vec![*v],
                        Duration::from_millis(u64::from(*ttl)),
                    )
                    .unwrap();
                model.insert(key_of(thread, *k), (vec![*v], Some(t + u64::from(*ttl))));
            }
            Action::Delete(k) => {
                store.delete(key_of(thread, *k)).unwrap();
                model.remove(&key_of(thread, *k));
            }
            Action::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (k, v) in ops {
                    match v {
                        Some(v) => {
                            batch.put(key_of(thread, *k), vec![*v]);
                            model.insert(key_of(thread, *k), (vec![*v], None));
                        }
                        None => {
                            batch.delete(key_of(thread, *k));
                            model.remove(&key_of(thread, *k));
                        }
                    }
                }
                store.write(batch).unwrap();
            }
            Action::Expire(k, ttl) => {
                let key = key_of(thread, *k);
                let was_live = live(model, t).contains_key(&key);
                let done = store
                    .expire(&key, Duration::from_millis(u64::from(*ttl)))
                    .unwrap();
                assert_eq!(done, was_live, "expire of {key:?}");
                if was_live {
                    model.get_mut(&key).unwrap().1 = Some(t + u64::from(*ttl));
                }
            }
            Action::Persist(k) => {
                let key = key_of(thread, *k);
                let had_deadline = live(model, t).contains_key(&key) && model[&key].1.is_some();
                assert_eq!(
                    store.persist(&key).unwrap(),
                    had_deadline,
                    "persist of {key:?}"
                );
                if had_deadline {
                    model.get_mut(&key).unwrap().1 = None;
                }
            }
            Action::Advance(ms) => {
                if let Some(clock) = clock {
                    clock.advance(u64::from(*ms));
                }
            }
        }
    }
}

fn options(clock: &Arc<ManualClock>) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(4)
        .segment_size(64 * 1024)
        .clock(clock.clone())
        .sweep_interval(Duration::ZERO)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn threads_writing_concurrently_match_the_model_and_reopen_identically(
        per_thread in prop::collection::vec(prop::collection::vec(action(), 0..40), 3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = KvStore::open_with(dir.path(), options(&clock)).unwrap();
        let models: Vec<Model> = std::thread::scope(|s| {
            let handles: Vec<_> = per_thread
                .iter()
                .enumerate()
                .map(|(thread, actions)| {
                    let store = store.clone();
                    let clock = clock.clone();
                    s.spawn(move || {
                        let mut model = Model::new();
                        run(&store, thread, actions, &mut model, None, || clock.now_ms());
                        model
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut expected = BTreeMap::new();
        for model in &models {
            expected.extend(live(model, clock.now_ms()));
        }
        prop_assert_eq!(&contents(&store), &expected);
        prop_assert_eq!(store.len(), expected.len());
        store.close().unwrap();
        let store = KvStore::open_with(dir.path(), options(&clock)).unwrap();
        prop_assert_eq!(&contents(&store), &expected);
    }

    #[test]
    fn ttls_on_an_injected_clock_match_the_model_before_and_after_reopening(
        actions in prop::collection::vec(action(), 0..80),
        later in 0u64..600,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(5_000_000));
        let store = KvStore::open_with(dir.path(), options(&clock)).unwrap();
        let mut model = Model::new();
        run(&store, 0, &actions, &mut model, Some(&clock), || clock.now_ms());
        prop_assert_eq!(contents(&store), live(&model, clock.now_ms()));
        for (key, (_, deadline)) in live(&model, clock.now_ms()).keys().map(|k| (k, &model[k])) {
            let expected = match deadline {
                Some(d) => Ttl::Remaining(Duration::from_millis(d - clock.now_ms())),
                None => Ttl::NoDeadline,
            };
            prop_assert_eq!(store.ttl(key), expected);
        }
        store.close().unwrap();
        clock.advance(later);
        let store = KvStore::open_with(dir.path(), options(&clock)).unwrap();
        prop_assert_eq!(contents(&store), live(&model, clock.now_ms()));
    }

    #[test]
    fn eviction_never_exceeds_the_limit_and_replays_identically(
        writes in prop::collection::vec((0u16..400, 1usize..300), 1..300),
        reads in prop::collection::vec(0u16..400, 0..100),
        lfu in any::<bool>(),
        by_keys in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let policy = if lfu { Eviction::Lfu } else { Eviction::Lru };
        let make = || {
            let options = Options::default().shards(4).segment_size(256 * 1024);
            if by_keys {
                options.max_keys(50, policy)
            } else {
                options.max_memory(8_000, policy)
            }
        };
        let store = KvStore::open_with(dir.path(), make()).unwrap();
        for (i, (key, len)) in writes.iter().enumerate() {
            store.put(format!("key{key}"), vec![i as u8; *len]).unwrap();
            if let Some(read) = reads.get(i) {
                store.get(format!("key{read}"));
            }
            let stats = store.stats();
            if by_keys {
                prop_assert!(stats.keys <= 50, "{} keys", stats.keys);
            } else {
                prop_assert!(stats.memory_used_bytes <= 8_000, "{} bytes", stats.memory_used_bytes);
            }
        }
        let before: BTreeMap<_, _> = store.keys().map(|k| (k.clone(), store.get(&k))).collect();
        store.close().unwrap();
        let store = KvStore::open_with(dir.path(), make()).unwrap();
        let after: BTreeMap<_, _> = store.keys().map(|k| (k.clone(), store.get(&k))).collect();
        prop_assert_eq!(before, after);
    }
}
