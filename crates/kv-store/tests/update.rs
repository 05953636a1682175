//! Atomic read-modify-writes: `update_with`, `update_and_fetch`, `fetch_and_update`,
//! `compare_and_swap` and `remove`, alone, from many threads at once, and under limits with
//! eviction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use kv_store::{
    Durability, Eviction, KvStore, ManualClock, Options, Ttl, TtlUpdate, Update, Updated,
};

fn number(value: Option<&[u8]>) -> u64 {
    value.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap())
}

fn increment(value: Option<&[u8]>) -> Option<String> {
    Some((number(value) + 1).to_string())
}

fn fast() -> Options {
    Options::default().durability(Durability::None)
}

#[test]
fn eight_threads_of_increments_lose_none() {
    const THREADS: u64 = 8;
    const EACH: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..EACH {
                    let new = number(
                        store
                            .update_and_fetch("counter", increment)
                            .unwrap()
                            .as_deref(),
                    );
                    assert!(new > last, "the counter went back from {last} to {new}");
                    last = new;
                }
            });
        }
    });
    assert_eq!(number(store.get("counter").as_deref()), THREADS * EACH);
    eprintln!("{} increments in {:?}", THREADS * EACH, started.elapsed());
    // Logged as ordinary puts: the reopened store holds the same count.
    store.close().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(number(store.get("counter").as_deref()), THREADS * EACH);
}

#[test]
fn fetch_and_update_returns_the_old_value_and_none_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    assert_eq!(store.fetch_and_update("k", increment).unwrap(), None);
    assert_eq!(
        store.fetch_and_update("k", increment).unwrap().unwrap(),
        "1"
    );
    assert_eq!(store.get("k").unwrap(), "2");
    let deleted = store.update_and_fetch("k", |_| None::<&[u8]>).unwrap();
    assert_eq!(deleted, None);
    assert!(!store.contains_key("k"));
}

#[test]
fn the_deadline_is_kept_unless_the_update_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = KvStore::open_with(dir.path(), fast().clock(Arc::new(clock.clone()))).unwrap();
    store
        .put_with_ttl("k", "1", Duration::from_secs(10))
        .unwrap();
    clock.advance(4_000);
    assert_eq!(
        store.update_and_fetch("k", increment).unwrap().unwrap(),
        "2"
    );
    assert_eq!(store.ttl("k"), Ttl::Remaining(Duration::from_secs(6)));
    store.fetch_and_update("k", increment).unwrap();
    store
        .compare_and_swap("k", Some("3"), Some("4"))
        .unwrap()
        .unwrap();
    assert_eq!(store.ttl("k"), Ttl::Remaining(Duration::from_secs(6)));
    // The deadline passes: the key is gone, and an update starts from nothing, for ever.
    clock.advance(6_000);
    assert_eq!(
        store.update_and_fetch("k", increment).unwrap().unwrap(),
        "1"
    );
    assert_eq!(store.ttl("k"), Ttl::NoDeadline);

    let deadline = |update: Update| {
        store.update_with("k", |_| update.clone()).unwrap();
        store.ttl("k")
    };
    assert_eq!(
        deadline(Update::put_with(
            "v",
            TtlUpdate::After(Duration::from_secs(30))
        )),
        Ttl::Remaining(Duration::from_secs(30))
    );
    assert_eq!(
        deadline(Update::put("w")),
        Ttl::Remaining(Duration::from_secs(30))
    );
    let at = UNIX_EPOCH + Duration::from_millis(1_000_000 + 10_000 + 50_000);
    assert_eq!(
        deadline(Update::put_with("v", TtlUpdate::At(at))),
        Ttl::Remaining(Duration::from_secs(50))
    );
    // What `f` is shown is the deadline the key has.
    store
        .update_with("k", |current| {
            assert_eq!(current.unwrap().deadline, Some(at));
            Update::Keep
        })
        .unwrap();
    assert_eq!(
        deadline(Update::put_with("v", TtlUpdate::Remove)),
        Ttl::NoDeadline
    );
    // Kept across a reopen: the deadline written is the absolute one the key had.
    store
        .update_with("k", |_| Update::put_with("v", TtlUpdate::At(at)))
        .unwrap();
    store.update_and_fetch("k", |_| Some("x")).unwrap();
    store.close().unwrap();
    let store = KvStore::open_with(dir.path(), fast().clock(Arc::new(clock.clone()))).unwrap();
    assert_eq!(store.ttl("k"), Ttl::Remaining(Duration::from_secs(50)));
}

#[test]
fn update_with_answers_before_and_after_and_keep_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    let records = || store.stats().commit_records_total;
    let set_if_absent = |value: &'static str| {
        store
            .update_with("k", |current| match current {
                None => Update::put(value),
                Some(_) => Update::Keep,
            })
            .unwrap()
    };
    let first = set_if_absent("a");
    assert_eq!(
        first,
        Updated {
            old: None,
            new: Some("a".into())
        }
    );
    let before = records();
    let second = set_if_absent("b");
    assert_eq!(
        second,
        Updated {
            old: Some("a".into()),
            new: Some("a".into())
        }
    );
    assert_eq!(records(), before, "Keep wrote a record");
    // Deleting what is not there writes nothing either.
    assert_eq!(
        store.update_with("absent", |_| Update::Delete).unwrap(),
        Updated::default()
    );
    assert_eq!(records(), before);
}

#[test]
fn compare_and_swap_swaps_only_from_the_expected_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    let none = None::<&[u8]>;
    store
        .compare_and_swap("k", none, Some("1"))
        .unwrap()
        .unwrap();
    let mismatch = store
        .compare_and_swap("k", none, Some("2"))
        .unwrap()
        .unwrap_err();
    assert_eq!(mismatch.current.unwrap(), "1");
    assert_eq!(mismatch.proposed.unwrap(), "2");
    let mismatch = store
        .compare_and_swap("k", Some("0"), none)
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (mismatch.current.unwrap(), mismatch.proposed),
        ("1".into(), None)
    );
    assert_eq!(store.get("k").unwrap(), "1", "a mismatch wrote");
    store
        .compare_and_swap("k", Some("1"), none)
        .unwrap()
        .unwrap();
    assert!(!store.contains_key("k"));
    let mismatch = store
        .compare_and_swap("k", Some("1"), Some("2"))
        .unwrap()
        .unwrap_err();
    assert_eq!(mismatch.current, None);
    assert!(!store.contains_key("k"));
}

#[test]
fn compare_and_swap_from_many_threads_lets_one_win_each_value() {
    const THREADS: usize = 6;
    const STEPS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    store.put("k", "0").unwrap();
    let wins = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let seen = store.get("k").unwrap();
                let n = number(Some(&seen));
                if n >= STEPS {
                    return;
                }
                match store
                    .compare_and_swap("k", Some(&seen), Some((n + 1).to_string()))
                    .unwrap()
                {
                    Ok(()) => {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(lost) => assert_ne!(lost.current.as_deref(), Some(&seen[..])),
                }
            });
        }
    });
    assert_eq!(
        wins.load(Ordering::Relaxed) as u64,
        STEPS,
        "a value was swapped twice"
    );
    assert_eq!(store.get("k").unwrap(), STEPS.to_string());
}

#[test]
fn remove_returns_the_old_value_and_logs_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = KvStore::open_with(dir.path(), fast().clock(Arc::new(clock.clone()))).unwrap();
    store.put("k", "v").unwrap();
    store
        .put_with_ttl("brief", "v", Duration::from_secs(1))
        .unwrap();
    assert_eq!(store.remove("k").unwrap().unwrap(), "v");
    assert_eq!(store.remove("k").unwrap(), None);
    clock.advance(1_000);
    assert_eq!(
        store.remove("brief").unwrap(),
        None,
        "an expired value is no value"
    );
    store.close().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    assert!(!store.contains_key("k"));
}

#[test]
fn updates_and_plain_writes_of_one_key_do_not_undo_each_other() {
    // A plain put between an update's read and its write would be undone by it: the
    // stripe, held exclusively by the update, keeps puts out until it is applied.
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    let deadline = Instant::now() + Duration::from_millis(800);
    std::thread::scope(|s| {
        s.spawn(|| {
            while Instant::now() < deadline {
                store.put("k", "reset").unwrap();
            }
        });
        s.spawn(|| {
            while Instant::now() < deadline {
                let updated = store
                    .update_with("k", |current| match current.map(|c| c.value) {
                        Some(b"reset") | None => Update::put("1"),
                        Some(n) => Update::put((number(Some(n)) + 1).to_string()),
                    })
                    .unwrap();
                let (old, new) = (updated.old.unwrap_or_default(), updated.new.unwrap());
                if old != "reset" && !old.is_empty() {
                    assert_eq!(number(Some(&new)), number(Some(&old)) + 1);
                }
            }
        });
    });
}

/// Runs `threads` workers for about `for_how_long` under `options`, each calling `work` with
/// its number and a step count; fails if any of them is still at work long after.
fn run_bounded(
    options: Options,
    threads: usize,
    for_how_long: Duration,
    work: impl Fn(&KvStore, usize, u64) + Sync,
) -> KvStore {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options).unwrap();
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, work, done) = (&store, &work, &done);
            s.spawn(move || {
                let mut step = 0;
                while started.elapsed() < for_how_long {
                    work(store, t, step);
                    step += 1;
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // A watchdog: a deadlock shows as threads that never finish.
        while done.load(Ordering::SeqCst) < threads {
            assert!(
                started.elapsed() < for_how_long * 10,
                "workers stuck: a deadlock"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    store
}

#[test]
fn updates_under_a_key_limit_with_lru_eviction_finish_and_lose_no_update() {
    const MAX_KEYS: usize = 64;
    let options = fast().max_keys(MAX_KEYS, Eviction::Lru);
    let store = run_bounded(options, 4, Duration::from_millis(800), |store, t, step| {
        // A counter of this thread's own (other threads' fillers may evict it), and
        // fillers that keep the store at its limit.
        let counter = format!("counter:{t}");
        let before = store.get(&counter);
        let new = store
            .update_and_fetch(&counter, increment)
            .unwrap()
            .unwrap();
        // Only this thread writes its counter: the update starts from what was there,
        // or from nothing if it was evicted in between.
        let from = number(before.as_deref());
        assert!(
            number(Some(&new)) == from + 1 || number(Some(&new)) == 1,
            "{from} -> {new:?}"
        );
        store.put(format!("filler:{t}:{step}"), "x").unwrap();
        store
            .update_with(format!("filler:{t}:{}", step / 2), |_| Update::put("y"))
            .unwrap();
    });
    // At rest (while writes and evictions run, the shards' key counts summed one after
    // the other may count a new key and its victim both).
    let stats = store.stats();
    assert!(stats.keys <= MAX_KEYS, "{} keys", stats.keys);
    assert!(
        stats.evictions_total > 0,
        "nothing was evicted: the test tested nothing"
    );
}

#[test]
fn growing_values_under_a_memory_limit_make_room_and_call_f_again() {
    const MAX_MEMORY: usize = 24 * 1024;
    let calls = AtomicUsize::new(0);
    let updates = AtomicUsize::new(0);
    let options = fast().max_memory(MAX_MEMORY, Eviction::Lru);
    let store = run_bounded(options, 4, Duration::from_millis(800), |store, t, step| {
        // APPEND to a few keys of this thread's: each update needs room the others take.
        let key = format!("list:{t}:{}", step % 8);
        let appended = store
            .update_with(&key, |current| {
                calls.fetch_add(1, Ordering::Relaxed);
                let mut value = current.map_or(Vec::new(), |c| c.value.to_vec());
                if value.len() > 2048 {
                    value.clear();
                }
                value.extend_from_slice(&[b'a' + t as u8; 100]);
                Update::put(value)
            })
            .unwrap();
        updates.fetch_add(1, Ordering::Relaxed);
        assert!(appended.new.unwrap().len() <= appended.old.map_or(0, |v| v.len()) + 100);
    });
    let stats = store.stats();
    assert!(
        stats.evictions_total > 0,
        "nothing was evicted: the test tested nothing"
    );
    assert!(stats.memory_used_bytes <= MAX_MEMORY);
    eprintln!(
        "{} updates, f called {} times, {} evictions",
        updates.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed),
        stats.evictions_total
    );
}

#[test]
fn an_update_that_cannot_fit_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast().max_memory(4096, Eviction::Lru)).unwrap();
    store.put("k", "small").unwrap();
    let err = store
        .update_and_fetch("k", |_| Some(vec![0u8; 8192]))
        .unwrap_err();
    assert!(matches!(err, kv_store::Error::LimitReached { .. }), "{err}");
    assert_eq!(store.get("k").unwrap(), "small");
}
