//! Read-modify-writes and transactions in a process killed with SIGKILL: no acknowledged
//! increment is lost, none is counted that was never made, and money moved by transactions
//! between accounts is never lost or made in part.
//!
//! The test binary re-runs itself as the child (`update_crash_child`, ignored in normal
//! runs), which writes with `Durability::Sync` from several threads and, when the
//! increment (or the transfer, which counts itself) that made the count `n` returns, prints
//! `value <n>` and acknowledges it (kv-testkit's ack protocol).

use std::path::Path;

use kv_store::{Durability, Error, KvStore, Options};

const CHILD_ENV: &str = "KV_STORE_UPDATE_CRASH_CHILD";
const THREADS: u64 = 4;
const ACCOUNTS: usize = 8;
const START: u64 = 100;

fn options() -> Options {
    Options::default()
        .durability(Durability::Sync)
        .segment_size(256 * 1024)
}

fn number(value: Option<&[u8]>) -> u64 {
    value.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap())
}

fn account(i: usize) -> String {
    format!("account:{i}")
}

#[test]
#[ignore = "the child process of the crash tests"]
fn update_crash_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let (dir, work) = (&args[0][..], &args[1][..]);
    let store = KvStore::open_with(dir, options()).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                for step in 0u64.. {
                    if work == "increment" {
                        let new = store
                            .update_and_fetch("counter", |v| Some((number(v) + 1).to_string()))
                            .unwrap();
                        println!("value {}", number(new.as_deref()));
                        kv_testkit::acknowledge(t, step);
                    } else {
                        let from = (step * 5 + t) as usize % ACCOUNTS;
                        let to = (step * 3 + t * 7 + 1) as usize % ACCOUNTS;
                        // Each transfer counts itself in the same transaction.
                        let count = store
                            .transaction(|tx| {
                                let a = number(tx.get(account(from)).as_deref());
                                let b = number(tx.get(account(to)).as_deref());
                                if from != to && a > 0 {
                                    tx.put(account(from), (a - 1).to_string());
                                    tx.put(account(to), (b + 1).to_string());
                                }
                                let count = number(tx.get("transfers").as_deref()) + 1;
                                tx.put("transfers", count.to_string());
                                Ok::<_, Error>(count)
                            })
                            .unwrap();
                        println!("value {count}");
                        kv_testkit::acknowledge(t, step);
                    }
                }
            });
        }
    });
}

/// Runs the child at `work` until it has acknowledged `kill_after` operations, kills it,
/// and returns every count it printed as acknowledged.
fn run_and_kill(dir: &Path, work: &str, kill_after: u64) -> Vec<u64> {
    let dir = dir.display().to_string();
    let mut child = kv_testkit::spawn_child("update_crash_child", CHILD_ENV, &[&dir, work]);
    let mut values = Vec::new();
    kv_testkit::kill_after_acks(&mut child, kill_after, |line| {
        values.extend(
            line.strip_prefix("value ")
                .and_then(|v| v.parse::<u64>().ok()),
        );
    });
    values
}

/// Runs the child at `work`, kills it, and checks the count it keeps in `key` (`before`
/// at the start) against what it acknowledged; returns the count found.
fn run_and_check_count(dir: &Path, work: &str, key: &str, kill_after: u64, before: u64) -> u64 {
    let acked = run_and_kill(dir, work, kill_after);
    let last = *acked.iter().max().unwrap();
    // Each acknowledged increment produced its own value: two threads that read the same
    // count and both wrote count + 1 would acknowledge it twice.
    let mut distinct = acked.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        acked.len(),
        "an increment was lost to another"
    );
    assert!(
        acked.iter().all(|&n| n > before),
        "a count started below {before}"
    );
    let store = KvStore::open_with(dir, options()).unwrap();
    let found = number(store.get(key).as_deref());
    // Each thread had at most one operation in flight, which may or may not have reached
    // the log.
    assert!(
        (last..=last + THREADS).contains(&found),
        "{key} is {found} after the kill; the last acknowledged was {last}"
    );
    store.close().unwrap();
    found
}

#[test]
fn sigkill_loses_no_acknowledged_increment() {
    let dir = tempfile::tempdir().unwrap();
    let mut before = 0;
    for kill_after in [300, 40, 500] {
        before = run_and_check_count(dir.path(), "increment", "counter", kill_after, before);
    }
}

#[test]
fn sigkill_during_transfers_keeps_the_sum() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), options()).unwrap();
    for i in 0..ACCOUNTS {
        store.put(account(i), START.to_string()).unwrap();
    }
    store.close().unwrap();
    let mut before = 0;
    for kill_after in [200, 30, 400] {
        before = run_and_check_count(dir.path(), "transfer", "transfers", kill_after, before);
        let store = KvStore::open_with(dir.path(), options()).unwrap();
        let balances: Vec<u64> = (0..ACCOUNTS)
            .map(|i| number(store.get(account(i)).as_deref()))
            .collect();
        assert_eq!(
            balances.iter().sum::<u64>(),
            ACCOUNTS as u64 * START,
            "money lost or made: {balances:?}"
        );
        store.close().unwrap();
    }
}
