//! Optimistic transactions with Redis's WATCH semantics: what counts as a change (any write,
//! even of the same value; an eviction; an expiry), the retry helper under many threads
//! moving money between accounts, and commits under limits with eviction.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_store::{Bytes, Durability, Error, Eviction, KvStore, ManualClock, Options, Update};

fn fast() -> Options {
    Options::default().durability(Durability::None)
}

fn open(options: Options) -> (tempfile::TempDir, KvStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options).unwrap();
    (dir, store)
}

/// Reads `key` in a transaction, lets `meanwhile` act on the store, then commits a write of
/// another key: whether the commit went through, and whether that write is in the store.
fn commits_after(store: &KvStore, key: &str, meanwhile: impl FnOnce(&KvStore)) -> bool {
    let mut tx = store.begin_transaction();
    tx.get(key);
    meanwhile(store);
    tx.put("result", "written");
    let committed = tx.commit().unwrap().is_ok();
    assert_eq!(
        store.get("result").is_some(),
        committed,
        "the batch applied in part"
    );
    store.delete("result").unwrap();
    committed
}

#[test]
fn any_write_of_a_key_read_is_a_conflict_even_of_the_same_value() {
    let (_dir, store) = open(fast());
    store.put("k", "v").unwrap();
    assert!(
        commits_after(&store, "k", |_| {}),
        "nothing changed, yet a conflict"
    );
    assert!(
        commits_after(&store, "k", |s| s.get("k").map(drop).unwrap()),
        "a read is no change"
    );
    assert!(!commits_after(&store, "k", |s| s.put("k", "v").unwrap()));
    assert!(!commits_after(&store, "k", |s| {
        s.update_and_fetch("k", |v| v.map(<[u8]>::to_vec)).unwrap();
    }));
    assert!(!commits_after(&store, "k", |s| {
        s.expire("k", Duration::from_secs(60)).unwrap();
    }));
    assert!(!commits_after(&store, "k", |s| {
        s.persist("k").unwrap();
    }));
    let mut batch = kv_store::WriteBatch::new();
    batch.put("k", "v");
    assert!(!commits_after(&store, "k", |s| s.write(batch).unwrap()));
    assert!(!commits_after(&store, "k", |s| s.delete("k").unwrap()));
    // Created where there was nothing.
    assert!(!commits_after(&store, "k", |s| s.put("k", "new").unwrap()));
    // An update that keeps the value writes nothing: no change.
    assert!(commits_after(&store, "k", |s| {
        s.update_with("k", |_| Update::Keep).unwrap();
    }));
    // A CAS that does not match writes nothing either.
    assert!(commits_after(&store, "k", |s| {
        s.compare_and_swap("k", Some("other"), Some("x"))
            .unwrap()
            .unwrap_err();
    }));
}

#[test]
fn a_key_that_expires_after_it_was_read_or_watched_is_a_conflict() {
    let clock = ManualClock::new(1_000_000);
    let (_dir, store) = open(fast().clock(Arc::new(clock.clone())));
    store
        .put_with_ttl("k", "v", Duration::from_secs(10))
        .unwrap();
    // Read live, then expired before the commit.
    assert!(!commits_after(&store, "k", |_| clock.advance(10_000)));
    // Watched live, then expired.
    store
        .put_with_ttl("k", "v", Duration::from_secs(10))
        .unwrap();
    let mut tx = store.begin_transaction();
    tx.watch("k").put("result", "x");
    clock.advance(10_000);
    assert_eq!(tx.commit().unwrap().unwrap_err().key, "k");
    assert!(store.get("result").is_none());
    // Already expired when read: it stays absent, no change.
    assert!(commits_after(&store, "k", |_| clock.advance(1_000)));
    // Still live at the commit: no change.
    store
        .put_with_ttl("k", "v", Duration::from_secs(10))
        .unwrap();
    assert!(commits_after(&store, "k", |_| clock.advance(9_999)));
}

#[test]
fn an_eviction_of_a_key_read_is_a_conflict() {
    let (_dir, store) = open(fast().max_keys(1, Eviction::Lru));
    store.put("k", "v").unwrap();
    let mut tx = store.begin_transaction();
    assert_eq!(tx.get("k").unwrap(), "v");
    store.put("other", "v").unwrap(); // evicts "k", the only key
    assert!(!store.contains_key("k"));
    assert_eq!(tx.commit().unwrap().unwrap_err().key, "k");
}

#[test]
fn a_read_only_commit_checks_and_a_commit_of_nothing_succeeds() {
    let (_dir, store) = open(fast());
    assert!(store.begin_transaction().commit().unwrap().is_ok());
    let mut tx = store.begin_transaction();
    tx.get("a");
    tx.get("b");
    assert!(tx.clone().commit().unwrap().is_ok());
    store.put("b", "1").unwrap();
    assert_eq!(tx.commit().unwrap().unwrap_err().key, "b");
}

#[test]
fn the_retry_helper_passes_on_errors_of_its_closure_and_writes_nothing() {
    #[derive(Debug, PartialEq)]
    enum Refused {
        Insufficient,
        Store(String),
    }
    impl From<Error> for Refused {
        fn from(e: Error) -> Self {
            Refused::Store(e.to_string())
        }
    }
    let (_dir, store) = open(fast());
    store.put("a", "5").unwrap();
    let result = store.transaction(|tx| {
        tx.put("b", "5");
        if tx.get("a").unwrap() == "5" {
            return Err(Refused::Insufficient);
        }
        Ok(())
    });
    assert_eq!(result, Err(Refused::Insufficient));
    assert!(store.get("b").is_none());
    // A failed commit's error comes back converted.
    store.close().unwrap();
    let result = store.transaction(|tx| {
        tx.put("b", "5");
        Ok(())
    });
    assert!(matches!(result, Err(Refused::Store(_))), "{result:?}");
}

const ACCOUNTS: usize = 16;
const START: u64 = 1_000;

fn account(i: usize) -> String {
    format!("account:{i:02}")
}

fn balance(value: Option<Bytes>) -> u64 {
    std::str::from_utf8(&value.expect("an account is missing"))
        .unwrap()
        .parse()
        .unwrap()
}

fn total(store: &KvStore) -> u64 {
    (0..ACCOUNTS)
        .map(|i| balance(store.get(account(i)).map(Bytes::from)))
        .sum()
}

/// Moves money between random accounts from `threads` threads for `for_how_long`, through
/// `store.transaction`, while a reader checks the sum in read-only transactions: every one
/// that commits saw a sum equal to the total. Returns the transfers and the sums checked.
fn transfer_for(store: &KvStore, threads: u64, for_how_long: Duration) -> (u64, u64) {
    let stop = AtomicBool::new(false);
    let transfers = AtomicU64::new(0);
    let checked = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, transfers) = (&stop, &transfers);
            s.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t + 1);
                while !stop.load(Ordering::Relaxed) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let from = seed as usize % ACCOUNTS;
                    let to = (seed >> 16) as usize % ACCOUNTS;
                    let amount = (seed >> 32) % 50;
                    let moved = store
                        .transaction(|tx| {
                            let a = balance(tx.get(account(from)));
                            let b = balance(tx.get(account(to)));
                            if a < amount || from == to {
                                return Ok::<_, Error>(false);
                            }
                            tx.put(account(from), (a - amount).to_string());
                            tx.put(account(to), (b + amount).to_string());
                            Ok(true)
                        })
                        .unwrap();
                    transfers.fetch_add(u64::from(moved), Ordering::Relaxed);
                }
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let mut tx = store.begin_transaction();
                let sum: u64 = (0..ACCOUNTS).map(|i| balance(tx.get(account(i)))).sum();
                if tx.commit().unwrap().is_ok() {
                    assert_eq!(
                        sum,
                        ACCOUNTS as u64 * START,
                        "a committed read saw money in flight"
                    );
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        std::thread::sleep(for_how_long);
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        started.elapsed() < for_how_long * 10,
        "the transfers took far too long"
    );
    (transfers.into_inner(), checked.into_inner())
}

#[test]
fn transfers_between_accounts_keep_the_sum_at_rest_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), fast()).unwrap();
    for i in 0..ACCOUNTS {
        store.put(account(i), START.to_string()).unwrap();
    }
    let (transfers, checked) = transfer_for(&store, 6, Duration::from_millis(1500));
    assert!(
        transfers > 100,
        "only {transfers} transfers: the test tested little"
    );
    assert!(checked > 0, "no read-only transaction committed");
    assert_eq!(total(&store), ACCOUNTS as u64 * START);
    eprintln!("{transfers} transfers, {checked} sums checked");
    store.close().unwrap();
    let store = KvStore::open(dir.path()).unwrap();
    assert_eq!(total(&store), ACCOUNTS as u64 * START);
}

#[test]
fn transactions_under_a_limit_with_lru_eviction_finish() {
    // Fillers keep the store at its key limit, so commits of new keys must evict: they let
    // go of their stripes to make room, then check and write again. The accounts, read or
    // written by every transaction, may themselves be evicted: the sum is not checked, only
    // that every thread finishes in time, with no error but conflicts.
    const MAX_KEYS: usize = 48;
    let (_dir, store) = open(fast().max_keys(MAX_KEYS, Eviction::Lru));
    let started = Instant::now();
    let deadline = started + Duration::from_millis(800);
    let commits = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (store, commits) = (&store, &commits);
            s.spawn(move || {
                let mut step = 0u64;
                while Instant::now() < deadline {
                    step += 1;
                    let from = account((step * 7 + t) as usize % 4);
                    let to = account((step * 3 + t + 1) as usize % 4);
                    store
                        .transaction(|tx| {
                            let a = tx.get(&from).map_or(0, |v| balance(Some(v)));
                            tx.put(&from, (a + 1).to_string());
                            tx.get(&to);
                            tx.put(&to, "0").put(format!("log:{t}:{step}"), "x");
                            Ok::<_, Error>(())
                        })
                        .unwrap();
                    commits.fetch_add(1, Ordering::Relaxed);
                    store.put(format!("filler:{t}:{step}"), "x").unwrap();
                }
            });
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stuck: a deadlock?"
    );
    let stats = store.stats();
    assert!(stats.keys <= MAX_KEYS, "{} keys", stats.keys);
    assert!(
        stats.evictions_total > 0,
        "nothing was evicted: the test tested nothing"
    );
    eprintln!(
        "{} commits, {} evictions",
        commits.into_inner(),
        stats.evictions_total
    );
}

/// A transaction that must make room evicts nothing under the stripes it read: evicting
/// there would bump the versions it checks, and its own room-making would fail its commit
/// (every time, under load). So on a full store, with nobody else writing, it commits at
/// the first try.
#[test]
fn a_transaction_that_makes_room_does_not_fail_itself() {
    let (_dir, store) = open(fast().max_keys(300, Eviction::Lru));
    for i in 0..300 {
        store.put(format!("old:{i}"), "v").unwrap();
    }
    for round in 0..20 {
        let mut tx = store.begin_transaction();
        for i in 0..100 {
            tx.get(format!("old:{}", (i * 7 + round * 13) % 300));
        }
        for i in 0..10 {
            tx.put(format!("new:{round}:{i}"), "v");
        }
        assert!(
            tx.commit().unwrap().is_ok(),
            "round {round}: a conflict of its own making"
        );
        assert!(store.len() <= 300);
    }
}
