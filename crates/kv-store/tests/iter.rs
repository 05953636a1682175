//! The store's owned iterators: `iter()`, `range(..)`, `scan_prefix(..)` and `keys()` from
//! either end against a `BTreeMap`, moved to other threads and outliving their store's
//! handles, TTLs that pass during a scan, and scans racing writers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kv_store::{Bytes, Durability, IndexKind, Iter, KvStore, ManualClock, Options, WriteBatch};
use proptest::prelude::*;

fn options(kind: IndexKind, shards: usize) -> Options {
    Options::default()
        .index(kind)
        .shards(shards)
        .durability(Durability::None)
        .segment_size(1 << 20)
}

fn key(n: u32) -> Vec<u8> {
    format!("{n:04}").into_bytes()
}

/// How a test reads a scan: all from the front, all from the back, or both ends by turns
/// (`true` for the back), the pattern repeated until both ends are done.
#[derive(Debug, Clone)]
enum Ends {
    Front,
    Back,
    Mixed(Vec<bool>),
}

fn ends() -> impl Strategy<Value = Ends> {
    prop_oneof![
        Just(Ends::Front),
        Just(Ends::Back),
        prop::collection::vec(any::<bool>(), 1..40).prop_map(Ends::Mixed),
        prop::collection::vec(prop::bool::weighted(0.05), 1..200).prop_map(Ends::Mixed),
    ]
}

impl Ends {
    fn back_at(&self, step: usize) -> bool {
        match self {
            Ends::Front => false,
            Ends::Back => true,
            Ends::Mixed(pattern) => pattern[step % pattern.len()],
        }
    }
}

/// An entry as the tests keep it: key, value, deadline.
type Item = (Bytes, Bytes, Option<u64>);

/// Reads `scan` as `ends` says until both ends are done (and checks that they stay done);
/// returns what the front gave and what the back gave, each in the order given. `before`
/// runs before each step.
fn consume(scan: &mut Iter, ends: &Ends, mut before: impl FnMut()) -> (Vec<Item>, Vec<Item>) {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for step in 0.. {
        before();
        let from_back = ends.back_at(step);
        let item = if from_back {
            scan.next_back_with_deadline()
        } else {
            scan.next_with_deadline()
        };
        match item {
            Some(item) if from_back => back.push(item),
            Some(item) => front.push(item),
            None => break,
        }
    }
    assert!(
        scan.next().is_none() && scan.next_back().is_none(),
        "a done end gave more"
    );
    (front, back)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0u32..1200).prop_map(|n| Bound::Included(key(n))),
        (0u32..1200).prop_map(|n| Bound::Excluded(key(n))),
    ]
}

/// Which keys a scan covers.
type KeyFilter = Box<dyn Fn(&[u8]) -> bool>;

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(|k| &k[..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Range and prefix scans of an ordered store, read from the front, the back or both
    /// ends by turns, give exactly the model's live entries: the front ascending, the back
    /// descending, each entry once, the two ends meeting without crossing; entries whose TTL
    /// passed are never given.
    #[test]
    fn ordered_scans_from_either_end_match_a_btreemap(
        shards in 1usize..9,
        keys in prop::collection::btree_map(0u32..1200, prop::option::of(1u64..200), 0..900),
        deleted in prop::collection::vec(0u32..1200, 0..200),
        start in bound(),
        end in bound(),
        prefix in "[0-1]{0,3}",
        by_prefix in any::<bool>(),
        elapsed in 0u64..200,
        ends in ends(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let store = KvStore::open_with(
            dir.path(),
            options(IndexKind::Ordered, shards).clock(Arc::new(clock.clone())),
        )
        .unwrap();
        let mut model = BTreeMap::new();
        let mut batch = WriteBatch::new();
        for (&n, &ttl) in &keys {
            let value = n.to_string().into_bytes();
            match ttl {
                Some(ms) => batch.put_with_ttl(key(n), value.clone(), Duration::from_millis(ms)),
                None => batch.put(key(n), value.clone()),
            };
            model.insert(key(n), (value, ttl.map(|ms| 1_000 + ms)));
        }
        for &n in &deleted {
            batch.delete(key(n));
            model.remove(&key(n));
        }
        store.write(batch).unwrap();
        clock.advance(elapsed);
        let now = 1_000 + elapsed;
        let (mut scan, in_scan): (Iter, KeyFilter) = if by_prefix {
            let prefix = prefix.clone().into_bytes();
            (store.scan_prefix(&prefix).unwrap(), Box::new(move |k| k.starts_with(&prefix)))
        } else {
            let bounds = (start.clone(), end.clone());
            (
                store.range::<&[u8]>((as_ref(&start), as_ref(&end))).unwrap(),
                Box::new(move |k| {
                    RangeBounds::<[u8]>::contains(&(as_ref(&bounds.0), as_ref(&bounds.1)), k)
                }),
            )
        };
        let expected: Vec<Item> = model
            .iter()
            .filter(|(k, (_, deadline))| in_scan(k) && deadline.is_none_or(|d| d > now))
            .map(|(k, (v, d))| (Bytes::from(k.clone()), Bytes::from(v.clone()), *d))
            .collect();
        let (front, mut back) = consume(&mut scan, &ends, || {});
        prop_assert_eq!(&front[..], &expected[..front.len()], "the front, ascending");
        back.reverse();
        prop_assert_eq!(&back[..], &expected[front.len()..], "the back, descending");
    }

    /// `iter()` and `keys()` over a hash index, from either end or both by turns, give every
    /// live key exactly once when nothing writes meanwhile.
    #[test]
    fn hash_iteration_from_either_end_gives_every_key_once(
        shards in 1usize..40,
        keys in prop::collection::btree_set(0u32..3000, 0..1500),
        ends in ends(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open_with(dir.path(), options(IndexKind::Hash, shards)).unwrap();
        let mut batch = WriteBatch::new();
        for &n in &keys {
            batch.put(key(n), n.to_string());
        }
        store.write(batch).unwrap();
        let (front, back) = consume(&mut store.iter(), &ends, || {});
        let mut seen: Vec<u32> = front
            .iter()
            .chain(&back)
            .map(|(k, v, _)| {
                let n: u32 = std::str::from_utf8(v).unwrap().parse().unwrap();
                assert_eq!(k[..], key(n), "a key with its own value");
                n
            })
            .collect();
        seen.sort_unstable();
        prop_assert_eq!(&seen, &keys.iter().copied().collect::<Vec<_>>());
        let mut listed: Vec<Bytes> = store.keys().rev().collect();
        listed.sort();
        prop_assert_eq!(listed, keys.iter().map(|&n| Bytes::from(key(n))).collect::<Vec<_>>());
    }
}

/// An iterator owns what it reads: it moves to another thread and outlives every handle of
/// its store. Dropping the last handle still closes the store (the directory opens again at
/// once), and the iterator goes on giving the entries of the closed store, untouched by
/// writes to the reopened one.
#[test]
fn an_iterator_moves_to_another_thread_and_outlives_its_store() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [IndexKind::Ordered, IndexKind::Hash] {
        let store = KvStore::open_with(dir.path(), options(kind, 4)).unwrap();
        let mut batch = WriteBatch::new();
        for n in 0..1000 {
            batch.put(key(n), "old");
        }
        store.write(batch).unwrap();
        let mut iter = store.iter();
        let first = iter.next().unwrap();
        let keys = store.keys();
        drop(store);
        let reopened = KvStore::open_with(dir.path(), options(kind, 4))
            .expect("the last handle's drop closed the store, iterators or not");
        for n in 0..1000 {
            reopened.put(key(n), "new").unwrap();
        }
        let (rest, keys) = std::thread::spawn(move || (iter.collect::<Vec<_>>(), keys.count()))
            .join()
            .unwrap();
        assert_eq!(rest.len(), 999, "{kind:?}");
        assert_eq!(keys, 1000, "{kind:?}");
        let mut seen: BTreeSet<Bytes> = rest.iter().map(|(k, _)| k.clone()).collect();
        seen.insert(first.0);
        assert_eq!(seen.len(), 1000, "{kind:?}: each key once");
        assert!(rest.iter().all(|(_, v)| v == "old"), "{kind:?}");
        reopened.close().unwrap();
    }
}

/// An entry whose TTL passes while a scan runs is not given after its deadline, though it
/// was live when its chunk was read (the iterator reads the clock again for entries with a
/// deadline). A scan that read the clock once, when made, gave them.
#[test]
fn entries_whose_ttl_passes_during_a_scan_are_not_given() {
    for kind in [IndexKind::Ordered, IndexKind::Hash] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let store = KvStore::open_with(dir.path(), options(kind, 2).clock(Arc::new(clock.clone())))
            .unwrap();
        let mut batch = WriteBatch::new();
        for n in 0..100 {
            if n % 2 == 0 {
                batch.put(key(n), "stays");
            } else {
                batch.put_with_ttl(key(n), "expires", Duration::from_millis(50));
            }
        }
        store.write(batch).unwrap();
        let mut iter = store.iter();
        let before = [iter.next().unwrap(), iter.next_back().unwrap()];
        clock.advance(50);
        let after: Vec<_> = iter.collect();
        let late = after.iter().filter(|(_, v)| v == "expires").count();
        assert_eq!(
            late, 0,
            "{kind:?}: {late} entries given after their deadline"
        );
        let lasting = before.iter().chain(&after).filter(|(_, v)| v == "stays");
        assert_eq!(lasting.count(), 50, "{kind:?}: every lasting entry");
    }
}

/// A small random number generator (xorshift), seeded per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Keys of the stress test: `KEYS` of them, by number. Those numbered 0 mod 4 are written
/// before the scans and only ever overwritten (present throughout every scan); 1 and 2 mod
/// 4 are put and deleted; 3 mod 4 are put with TTLs of a few ms. Every value starts with its
/// key and a colon.
const KEYS: u32 = 2000;

fn stress_key(n: u32) -> String {
    format!("s{n:05}")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Checks one scan's output; `bounds` is what the scan covers (ordered) and `ordered` says
/// whether the order and exactly-once are promised. `t0` is the time before the scan.
fn check_scan(
    front: &[(Bytes, Bytes, Option<u64>, u64)],
    back: &[(Bytes, Bytes, Option<u64>, u64)],
    bounds: (Bound<u32>, Bound<u32>),
    ordered: bool,
) {
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for (k, v, deadline, before) in front.iter().chain(back) {
        let text = std::str::from_utf8(k).expect("a key this test wrote");
        let n: u32 = text
            .strip_prefix('s')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("never written: {text}"));
        assert!(
            n < KEYS && k[..] == *stress_key(n).as_bytes(),
            "never written: {text}"
        );
        assert!(
            v.starts_with(k) && v[k.len()] == b':',
            "{text}'s value is {v:?}"
        );
        assert!(bounds.contains(&n), "{text} outside the scan");
        if let Some(deadline) = deadline {
            assert!(deadline > before, "{text} given after its deadline");
        }
        *seen.entry(n).or_default() += 1;
    }
    for n in (0..KEYS).filter(|n| n % 4 == 0 && bounds.contains(n)) {
        let times = seen.get(&n).copied().unwrap_or(0);
        assert!(
            times >= 1,
            "{} present throughout, not given",
            stress_key(n)
        );
        if ordered {
            assert_eq!(times, 1, "{} given {times} times", stress_key(n));
        }
    }
    if ordered {
        assert!(
            front.windows(2).all(|w| w[0].0 < w[1].0),
            "the front not ascending"
        );
        assert!(
            back.windows(2).all(|w| w[0].0 > w[1].0),
            "the back not descending"
        );
        if let (Some(f), Some(b)) = (front.last(), back.last()) {
            assert!(f.0 < b.0, "the ends crossed");
        }
    }
}

/// Writers put, overwrite and delete keys and put keys with short TTLs while scans run from
/// either end or both, on many threads, for a bounded time. Every scan gives every key
/// present throughout (once, in strict order, ends not crossing, with the ordered index; at
/// least once with the hash index), never a key outside its bounds, never one never written,
/// never one after its deadline, and each key with a value written for it.
#[test]
fn scans_racing_writers_keep_their_promises() {
    for kind in [IndexKind::Ordered, IndexKind::Hash] {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open_with(dir.path(), options(kind, 4)).unwrap();
        let mut batch = WriteBatch::new();
        for n in (0..KEYS).step_by(4) {
            batch.put(stress_key(n), format!("{}:0", stress_key(n)));
        }
        store.write(batch).unwrap();
        let stop = AtomicBool::new(false);
        let (writes, scans) = (AtomicU64::new(0), AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_millis(1200);
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let (store, stop, writes) = (&store, &stop, &writes);
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                    let mut generation = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        generation += 1;
                        let n = rng.below(u64::from(KEYS)) as u32;
                        let (k, value) = (stress_key(n), format!("{}:{generation}", stress_key(n)));
                        match n % 4 {
                            0 => store.put(k, value).unwrap(),
                            3 => store
                                .put_with_ttl(k, value, Duration::from_millis(1 + rng.below(5)))
                                .unwrap(),
                            _ if rng.below(2) == 0 => store.put(k, value).unwrap(),
                            _ => store.delete(k).unwrap(),
                        }
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let scanners: Vec<_> = (0..3u64)
                .map(|t| {
                    let (store, scans) = (&store, &scans);
                    s.spawn(move || {
                        let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 1));
                        while Instant::now() < deadline {
                            let pattern: Vec<bool> =
                                (0..1 + rng.below(8)).map(|_| rng.below(2) == 0).collect();
                            let ends = match rng.below(3) {
                                0 => Ends::Front,
                                1 => Ends::Back,
                                _ => Ends::Mixed(pattern),
                            };
                            let (mut scan, bounds) = match (kind, rng.below(3)) {
                                (IndexKind::Ordered, 0) => {
                                    let (a, b) = (
                                        rng.below(u64::from(KEYS)) as u32,
                                        rng.below(u64::from(KEYS)) as u32,
                                    );
                                    let (lo, hi) = (a.min(b), a.max(b));
                                    (
                                        store.range(stress_key(lo)..=stress_key(hi)).unwrap(),
                                        (Bound::Included(lo), Bound::Included(hi)),
                                    )
                                }
                                (IndexKind::Ordered, 1) => {
                                    let p = rng.below(20) as u32;
                                    (
                                        store.scan_prefix(format!("s0{p:02}")).unwrap(),
                                        (Bound::Included(p * 100), Bound::Excluded(p * 100 + 100)),
                                    )
                                }
                                _ => (store.iter(), (Bound::Unbounded, Bound::Unbounded)),
                            };
                            let (mut front, mut back) = (Vec::new(), Vec::new());
                            for step in 0.. {
                                let before = unix_ms();
                                let from_back = ends.back_at(step);
                                let item = if from_back {
                                    scan.next_back_with_deadline()
                                } else {
                                    scan.next_with_deadline()
                                };
                                let Some((k, v, d)) = item else { break };
                                if from_back {
                                    back.push((k, v, d, before));
                                } else {
                                    front.push((k, v, d, before));
                                }
                            }
                            check_scan(&front, &back, bounds, kind == IndexKind::Ordered);
                            scans.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            // Scanners stop at the deadline by themselves; writers go on until they have
            // (and stop even if a scanner failed).
            let outcomes: Vec<_> = scanners.into_iter().map(|h| h.join()).collect();
            stop.store(true, Ordering::Relaxed);
            for outcome in outcomes {
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        let (writes, scans) = (writes.into_inner(), scans.into_inner());
        assert!(
            writes > 100 && scans > 3,
            "{kind:?}: {writes} writes, {scans} scans"
        );
    }
}
