//! A `kv` shell killed with SIGKILL while PUTs stream in loses no acknowledged write and
//! shows no write it was never sent.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{assert_success, json_lines, kv, read_lines, run_on, stdout};

fn value_of(i: u64) -> String {
    format!("v{i}-{}", "x".repeat((i % 97) as usize))
}

/// Streams `PUT k<i> <value>` lines into `kv --dir DIR extra...` without waiting for the
/// answers, kills it `delay` after its first OK, then checks what reopening finds.
fn kill_while_writing(delay: Duration, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = kv(&["--dir", dir.path().to_str().unwrap()]);
    let mut child = command
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kv");
    let mut input = child.stdin.take().unwrap();
    let answers = read_lines(child.stdout.take().unwrap());

    // `attempted` counts lines whose write began: no key at or past it can exist.
    let attempted = Arc::new(AtomicU64::new(0));
    let writer = {
        let attempted = Arc::clone(&attempted);
        std::thread::spawn(move || {
            for i in 0.. {
                attempted.store(i + 1, Ordering::SeqCst);
                let line = format!("PUT k{i} {}\n", value_of(i));
                if input.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        })
    };

    let first = answers
        .recv_timeout(Duration::from_secs(20))
        .expect("a first answer");
    assert_eq!(first, "OK");
    let mut acknowledged = 1u64;
    let kill_at = Instant::now() + delay;
    while Instant::now() < kill_at {
        if let Ok(answer) = answers.recv_timeout(Duration::from_millis(1)) {
            assert_eq!(answer, "OK");
            acknowledged += 1;
        }
    }
    child.kill().expect("SIGKILL kv");
    child.wait().expect("reap kv");
    // Answers already in the pipe were acknowledged before the kill, too.
    while let Ok(answer) = answers.recv_timeout(Duration::from_secs(5)) {
        assert_eq!(answer, "OK");
        acknowledged += 1;
    }
    writer.join().unwrap();
    let attempted = attempted.load(Ordering::SeqCst);
    assert!(
        attempted > acknowledged,
        "writes were in flight at the kill ({acknowledged} acknowledged of {attempted})"
    );

    let export = run_on(dir.path(), &["export"], b"");
    assert_success(&export);
    let mut found = std::collections::BTreeMap::new();
    for line in json_lines(&stdout(&export)) {
        let key = line["key"].as_str().unwrap();
        let i: u64 = key.strip_prefix('k').unwrap().parse().unwrap();
        assert!(i < attempted, "k{i} was never sent (only {attempted} were)");
        assert_eq!(line["value"].as_str().unwrap(), value_of(i), "k{i}");
        found.insert(i, ());
    }
    for i in 0..acknowledged {
        assert!(found.contains_key(&i), "k{i} was acknowledged, then lost");
    }
}

#[test]
fn sigkill_loses_no_acknowledged_put() {
    // Random-ish kill points: a fixed spread, shifted by the clock. (Each reopening scans the
    // zero tail of a 128 MiB preallocated segment, over a second in a debug build: hence
    // only three.)
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis() as u64
        % 20;
    for base in [5, 40, 120] {
        kill_while_writing(Duration::from_millis(base + jitter), &[]);
    }
}

#[test]
fn sigkill_loses_no_acknowledged_put_with_sync_durability() {
    kill_while_writing(Duration::from_millis(60), &["--durability", "sync"]);
}
