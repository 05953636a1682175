//! The commands that only read (`get`, `scan`, `export`, `stats`, `verify`) work on a store
//! that another process holds open and keeps writing and compacting: each sees every key
//! acknowledged before it started, and none of them takes the lock from the writer.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{json_lines, run_on, stderr, stdout};
use kv_store::{Durability, IndexKind, KvStore, Options};

const CHILD_ENV: &str = "KV_CLI_LIVE_WRITER";

fn key(i: u64) -> String {
    format!("key{i:08}")
}

fn value(i: u64) -> String {
    format!("value-{i}-{}", "x".repeat(60))
}

/// The writer: holds the store in the directory it is given, writes `key(i)` for i = 0, 1,
/// ... and acknowledges each once `put` returned (a line `ack 0 i`), while another thread
/// compacts several times a second (a line `compacted` each time). Small segments,
/// so the log rotates under the readers too.
#[test]
#[ignore = "the child process of reads_see_every_acknowledged_key_while_another_process_writes_and_compacts"]
fn live_writer_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let options = Options::default()
        .index(IndexKind::Ordered)
        .durability(Durability::None)
        .segment_size(64 * 1024);
    let store = KvStore::open_with(&args[0], options).expect("the child opens the store");
    let compacting = store.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(150));
        if compacting.compact().is_ok() {
            println!("compacted");
        }
    });
    for i in 0.. {
        store.put(key(i), value(i)).expect("the child writes");
        kv_testkit::acknowledge(0, i);
        // About 2,000 writes a second: enough to race every read, few enough that a debug
        // build reads the store quickly.
        if i % 4 == 3 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn reads_see_every_acknowledged_key_while_another_process_writes_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = kv_testkit::spawn_child(
        "live_writer_child",
        CHILD_ENV,
        &[dir.path().to_str().unwrap()],
    );
    let acked = Arc::new(AtomicI64::new(-1));
    let compactions = Arc::new(AtomicU64::new(0));
    let reader = {
        let (acked, compactions) = (Arc::clone(&acked), Arc::clone(&compactions));
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if line == "compacted" {
                    compactions.fetch_add(1, Ordering::SeqCst);
                } else if let Some(unit) = line.strip_prefix("ack 0 ") {
                    acked.store(unit.parse().unwrap(), Ordering::SeqCst);
                }
            }
        })
    };
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the child writes nothing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut reads = 0u64;
    let compactions_before = compactions.load(Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until || reads < 10 {
        // Every key up to `upto` was acknowledged before this read started.
        let upto = u64::try_from(acked.load(Ordering::SeqCst)).unwrap();
        let dir = dir.path();
        let fail = |what: &str, output: &std::process::Output| {
            panic!(
                "{what} after {upto} acknowledged: exit {:?}: {}",
                output.status,
                stderr(output)
            )
        };
        match reads % 5 {
            0 => {
                let output = run_on(dir, &["get", &key(upto)], b"");
                if !output.status.success() {
                    fail("get", &output);
                }
                assert_eq!(stdout(&output), format!("{}\n", value(upto)));
            }
            1 => {
                let output = run_on(dir, &["scan"], b"");
                if !output.status.success() {
                    fail("scan", &output);
                }
                let text = stdout(&output);
                let lines: Vec<&str> = text.lines().collect();
                assert!(lines.len() as u64 > upto, "scan saw {} keys", lines.len());
                for (i, line) in lines.iter().enumerate() {
                    let i = i as u64;
                    assert_eq!(
                        *line,
                        format!("{} {}", key(i), value(i)),
                        "no key is missed"
                    );
                }
            }
            2 => {
                let output = run_on(dir, &["export"], b"");
                if !output.status.success() {
                    fail("export", &output);
                }
                let lines = json_lines(&stdout(&output));
                assert!(lines.len() as u64 > upto, "export saw {} keys", lines.len());
                assert_eq!(lines[upto as usize]["key"], key(upto));
            }
            3 => {
                let output = run_on(dir, &["stats", "--json"], b"");
                if !output.status.success() {
                    fail("stats", &output);
                }
                let stats: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
                assert!(stats["keys"].as_u64().unwrap() > upto, "{stats}");
            }
            _ => {
                let output = run_on(dir, &["verify"], b"");
                if !output.status.success() {
                    fail("verify", &output);
                }
                let report = stdout(&output);
                let live: u64 = report
                    .split("live: ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{report}"));
                assert!(live > upto, "verify saw {live} keys: {report}");
            }
        }
        reads += 1;
    }
    let compacted = compactions.load(Ordering::SeqCst) - compactions_before;
    let written = acked.load(Ordering::SeqCst);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    assert!(
        compacted >= 3,
        "the child compacted {compacted} times during the reads"
    );
    assert!(
        written > 1_000,
        "the child wrote {written} keys during the reads"
    );
}
