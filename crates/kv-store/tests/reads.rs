//! The read paths, `get`, `get_with`, `get_many` and `contains_key`: against a model (`BTreeMap`) with TTLs
//! on an injected clock, in both indexes; values that share their entry instead of copying
//! it; and many readers against writers, compaction and eviction, checking every
//! acknowledged write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_store::{Clock, Eviction, IndexKind, KvStore, ManualClock, Options, Value, WriteBatch};
use proptest::prelude::*;

/// A key's value and its deadline (unix ms) in the model.
type Model = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

#[derive(Debug, Clone)]
enum Action {
    Put(u8, Vec<u8>),
    PutTtl(u8, Vec<u8>, u16),
    Delete(u8),
    Advance(u16),
    Get(u8),
    GetMany(Vec<u8>),
}

/// Values short and long: entries of up to 256 bytes are packed on the stack, longer ones in
/// place; both are read back.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..20),
        1 => prop::collection::vec(any::<u8>(), 230..400),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let key = 0u8..16;
    prop_oneof![
        4 => (key.clone(), value()).prop_map(|(k, v)| Action::Put(k, v)),
        2 => (key.clone(), value(), 1u16..300).prop_map(|(k, v, t)| Action::PutTtl(k, v, t)),
        2 => key.clone().prop_map(Action::Delete),
        2 => (0u16..200).prop_map(Action::Advance),
        3 => key.clone().prop_map(Action::Get),
        // Up to 150 keys, repeats included: several batches of 64.
        2 => prop::collection::vec(0u8..20, 0..150).prop_map(Action::GetMany),
    ]
}

/// Key `k`; keys 16-19 are never written (misses), and long keys (past 255 bytes) take the
/// long key-length form.
fn key_of(k: u8) -> Vec<u8> {
    if k % 5 == 4 {
        let mut key = vec![b'L'; 300];
        key.push(k);
        key
    } else {
        format!("key:{k:02}").into_bytes()
    }
}

/// What the model holds for `k` live at `now`.
fn live(model: &Model, k: u8, now: u64) -> Option<&[u8]> {
    model
        .get(&key_of(k))
        .filter(|(_, deadline)| deadline.is_none_or(|d| d > now))
        .map(|(value, _)| &value[..])
}

fn options(kind: IndexKind, clock: &Arc<ManualClock>) -> Options {
    Options::default()
        .index(kind)
        .shards(4)
        .segment_size(64 * 1024)
        .clock(clock.clone())
        .sweep_interval(Duration::ZERO)
}

/// Runs `actions`, checking every read against the model.
fn run(store: &KvStore, clock: &ManualClock, actions: &[Action]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    for action in actions {
        let now = clock.now_ms();
        match action {
            Action::Put(k, v) => {
                store.put(key_of(*k), v.clone()).unwrap();
                model.insert(key_of(*k), (v.clone(), None));
            }
            Action::PutTtl(k, v, ttl) => {
                let ttl = u64::from(*ttl);
                store
                    .put_with_ttl(key_of(*k), v.clone(), Duration::from_millis(ttl))
                    .unwrap();
                model.insert(key_of(*k), (v.clone(), Some(now + ttl)));
            }
            Action::Delete(k) => {
                store.delete(key_of(*k)).unwrap();
                model.remove(&key_of(*k));
            }
            Action::Advance(ms) => clock.advance(u64::from(*ms)),
            Action::Get(k) => {
                let expected = live(&model, *k, now);
                let got = store.get(key_of(*k));
                prop_assert_eq!(got.as_deref(), expected, "get {}", k);
                let lent = store.get_with(key_of(*k), <[u8]>::to_vec);
                prop_assert_eq!(lent.as_deref(), expected, "get_with {}", k);
                prop_assert_eq!(store.contains_key(key_of(*k)), expected.is_some(), "{}", k);
            }
            Action::GetMany(ks) => {
                let keys: Vec<Vec<u8>> = ks.iter().map(|k| key_of(*k)).collect();
                let values = store.get_many(&keys);
                prop_assert_eq!(values.len(), keys.len());
                for (k, got) in ks.iter().zip(&values) {
                    prop_assert_eq!(got.as_deref(), live(&model, *k, now), "get_many {}", k);
                }
                let mut seen = Vec::new();
                store.get_many_with(&keys, |i, value| seen.push((i, value.map(<[u8]>::to_vec))));
                prop_assert_eq!(seen.len(), keys.len());
                for (at, (i, got)) in seen.iter().enumerate() {
                    prop_assert_eq!(*i, at, "get_many_with hands keys out in order");
                    prop_assert_eq!(got.as_deref(), live(&model, ks[at], now));
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_read_path_matches_the_model(
        actions in prop::collection::vec(action(), 0..60),
        ordered in any::<bool>(),
    ) {
        let kind = if ordered { IndexKind::Ordered } else { IndexKind::Hash };
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = KvStore::open_with(dir.path(), options(kind, &clock)).unwrap();
        run(&store, &clock, &actions)?;
    }
}

/// A value read shares the entry's allocation (two gets of a key read the same bytes, which
/// a copy per get did not), and keeps what it read when the key is overwritten, deleted and
/// compacted away.
#[test]
fn a_value_shares_its_entry_and_keeps_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    store.put("k", vec![7u8; 1000]).unwrap();
    let first = store.get("k").unwrap();
    let second = store.get("k").unwrap();
    assert_eq!(first.as_ptr(), second.as_ptr(), "no copy per get");
    let lent = store.get_with("k", |value| value.as_ptr()).unwrap();
    assert_eq!(lent, first.as_ptr());
    let many = store.get_many(&["k"]);
    assert_eq!(many[0].as_ref().unwrap().as_ptr(), first.as_ptr());
    let bytes = kv_store::Bytes::from(second);
    assert_eq!(bytes.as_ptr(), first.as_ptr(), "Bytes share it too");

    store.put("k", "new").unwrap();
    store.delete("k").unwrap();
    store.compact().unwrap();
    assert_eq!(store.get("k"), None);
    assert_eq!(first, vec![7u8; 1000]);
    assert_eq!(bytes, vec![7u8; 1000]);
    drop(store);
    assert_eq!(first.len(), 1000, "a value outlives its store");
}

const WRITERS: u64 = 3;
const KEYS_PER_WRITER: u64 = 64;
const READERS: u64 = 3;
/// The writer that writes all its keys in one atomic batch per version.
const BATCH_WRITER: u64 = 0;

fn stress_key(writer: u64, k: u64) -> Vec<u8> {
    format!("w{writer}:k{k:03}").into_bytes()
}

/// Version `version` of key (`writer`, `k`): its identity, then a byte pattern of the version
/// over a length that varies (short and past the 256 bytes packed on the stack), so that a
/// torn or mixed-up value fails [`check_value`].
fn stress_value(writer: u64, k: u64, version: u64) -> Vec<u8> {
    let len = 24 + (version * 37 % 400) as usize;
    let mut value = Vec::with_capacity(len);
    value.extend_from_slice(&writer.to_le_bytes());
    value.extend_from_slice(&k.to_le_bytes());
    value.extend_from_slice(&version.to_le_bytes());
    value.resize(len, version as u8);
    value
}

/// The version `value` holds for key (`writer`, `k`), checking that it is whole and its own.
fn check_value(writer: u64, k: u64, value: &[u8]) -> u64 {
    let word = |i: usize| u64::from_le_bytes(value[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!((word(0), word(1)), (writer, k), "a value of another key");
    let version = word(2);
    assert_eq!(value, &stress_value(writer, k, version)[..], "a torn value");
    version
}

/// Readers (through `get`, `get_with` and `get_many`) against writers that each own their
/// keys and acknowledge versions in order, while a thread compacts: every read sees a whole
/// value of its own key, never older than the version acknowledged before the read began,
/// and absent only if never written or (with `evict`) evicted. At the end every key holds its
/// last acknowledged version (or, with `evict`, nothing); without eviction, after a reopen
/// too.
fn readers_against_writers(evict: bool, run_for: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let total = (WRITERS * KEYS_PER_WRITER) as usize;
    let options = || {
        let options = Options::default().shards(8).segment_size(256 * 1024);
        if evict {
            options.max_keys(total / 2, Eviction::Lru)
        } else {
            options
        }
    };
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    let acked: Vec<Vec<AtomicU64>> = (0..WRITERS)
        .map(|_| (0..KEYS_PER_WRITER).map(|_| AtomicU64::new(0)).collect())
        .collect();
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (store, acked, stop) = (&store, &acked, &stop);
            s.spawn(move || {
                let mut version = 0;
                while !stop.load(Ordering::Relaxed) {
                    version += 1;
                    if w == BATCH_WRITER {
                        // All its keys in one atomic batch, across the shards.
                        let mut batch = WriteBatch::new();
                        for k in 0..KEYS_PER_WRITER {
                            batch.put(stress_key(w, k), stress_value(w, k, version));
                        }
                        store.write(batch).unwrap();
                        for k in 0..KEYS_PER_WRITER {
                            acked[w as usize][k as usize].store(version, Ordering::Release);
                        }
                        continue;
                    }
                    for k in 0..KEYS_PER_WRITER {
                        store
                            .put(stress_key(w, k), stress_value(w, k, version))
                            .unwrap();
                        acked[w as usize][k as usize].store(version, Ordering::Release);
                    }
                }
            });
        }
        {
            let (store, stop) = (&store, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    store.compact().unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        for r in 0..READERS {
            let (store, acked, stop, reads) = (&store, &acked, &stop, &reads);
            s.spawn(move || {
                let mut seed = r * 7919 + 1;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let check = |w: u64, k: u64, floor: u64, value: Option<&[u8]>| match value {
                    Some(value) => {
                        let version = check_value(w, k, value);
                        assert!(
                            version >= floor,
                            "read v{version}, v{floor} was acknowledged"
                        );
                    }
                    None => assert!(evict || floor == 0, "an acknowledged key is missing"),
                };
                while !stop.load(Ordering::Relaxed) {
                    let (w, k) = (next() % WRITERS, next() % KEYS_PER_WRITER);
                    let floor = acked[w as usize][k as usize].load(Ordering::Acquire);
                    check(w, k, floor, store.get(stress_key(w, k)).as_deref());
                    let floor = acked[w as usize][k as usize].load(Ordering::Acquire);
                    if store
                        .get_with(stress_key(w, k), |value| check(w, k, floor, Some(value)))
                        .is_none()
                    {
                        check(w, k, floor, None);
                    }
                    let picks: Vec<(u64, u64)> = (0..40)
                        .map(|_| (next() % WRITERS, next() % KEYS_PER_WRITER))
                        .collect();
                    let floors: Vec<u64> = picks
                        .iter()
                        .map(|&(w, k)| acked[w as usize][k as usize].load(Ordering::Acquire))
                        .collect();
                    let keys: Vec<Vec<u8>> = picks.iter().map(|&(w, k)| stress_key(w, k)).collect();
                    let values: Vec<Option<Value>> = store.get_many(&keys);
                    let mut batch_versions = Vec::new();
                    for ((&(w, k), &floor), value) in picks.iter().zip(&floors).zip(&values) {
                        check(w, k, floor, value.as_deref());
                        if let (BATCH_WRITER, Some(value)) = (w, value) {
                            batch_versions.push(check_value(w, k, value));
                        }
                    }
                    // One get_many of up to 64 keys reads them at one instant: an atomic
                    // batch is seen whole or not at all.
                    assert!(
                        batch_versions.windows(2).all(|v| v[0] == v[1]),
                        "parts of different batches in one read: {batch_versions:?}"
                    );
                    reads.fetch_add(42, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
    });
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert!(started.elapsed() < run_for + Duration::from_secs(30));
    let check_all = |store: &KvStore| {
        for w in 0..WRITERS {
            for k in 0..KEYS_PER_WRITER {
                let last = acked[w as usize][k as usize].load(Ordering::Acquire);
                let held = store.get(stress_key(w, k));
                match held {
                    Some(value) => assert_eq!(check_value(w, k, &value), last),
                    None => assert!(evict, "w{w} k{k}: v{last} acknowledged, now missing"),
                }
            }
        }
    };
    check_all(&store);
    if evict {
        assert!(store.len() <= total / 2, "{} keys held", store.len());
    } else {
        store.close().unwrap();
        drop(store);
        let store = KvStore::open_with(dir.path(), options()).unwrap();
        check_all(&store);
    }
}

#[test]
fn readers_see_every_acknowledged_write_while_writers_and_compaction_run() {
    readers_against_writers(false, Duration::from_secs(2));
}

#[test]
fn readers_under_eviction_see_whole_values_never_older_than_acknowledged() {
    readers_against_writers(true, Duration::from_secs(2));
}
