//! `kv repair` salvages a damaged store into a new one without changing it; an open that cuts
//! a torn tail says so; commands that only read work on a read-only mount.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{
    assert_same_files, assert_success, copy_fixture, expected_entries, export_map, run_on,
    snapshot, stderr, stdout, write_store, Shell,
};

/// Repairs `dir` into `to`, checking that it salvaged `entries` and changed nothing in `dir`;
/// returns what `to` holds.
fn repair_unchanged(dir: &Path, to: &Path, entries: usize) -> BTreeMap<String, String> {
    let before = snapshot(dir);
    let output = run_on(dir, &["repair", "--to", to.to_str().unwrap()], b"");
    assert_success(&output);
    assert!(
        stdout(&output).contains(&format!("salvaged {entries} entries")),
        "{}",
        stdout(&output)
    );
    assert_same_files(&before, &snapshot(dir));
    let salvaged = export_map(to);
    assert_eq!(salvaged.len(), entries);
    salvaged
}

#[test]
fn repair_skips_damage_in_the_middle_copies_the_rest_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 500);
    let segment = dir.path().join("wal/000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let before = snapshot(dir.path());

    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("salvaged");
    let output = run_on(dir.path(), &["repair", "--to", to.to_str().unwrap()], b"");
    assert_success(&output);
    let report = stdout(&output);
    assert!(
        report.starts_with("skipped damaged bytes in wal/000000.wal at offset"),
        "{report}"
    );
    assert!(report.contains("salvaged 499 entries"), "{report}");
    assert_same_files(&before, &snapshot(dir.path()));

    let salvaged = export_map(&to);
    assert_eq!(salvaged.len(), 499, "every record but the damaged one");
    for (key, value) in &salvaged {
        let i: usize = key["key".len()..].parse().unwrap();
        assert_eq!(value, &format!("value-{i}-{}", "x".repeat(40)));
    }
    assert_success(&run_on(&to, &["verify"], b""));
}

#[test]
fn repair_salvages_a_store_with_a_stray_byte_in_its_preallocated_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &["--durability", "sync"]);
    for i in 0..50 {
        assert_eq!(shell.ask(&format!("PUT key{i:02} value{i}")), "OK");
    }
    // SIGKILL: the segment keeps its preallocated zeros past the data.
    shell.child.kill().unwrap();
    shell.child.wait().unwrap();
    let segment = dir.path().join("wal/000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    let data_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(bytes.len() > data_end + 100_000, "a preallocated tail");
    bytes[data_end + 50_000] = 0x5a;
    std::fs::write(&segment, &bytes).unwrap();

    let target = tempfile::tempdir().unwrap();
    let salvaged = repair_unchanged(dir.path(), target.path(), 50);
    assert_eq!(salvaged["key49"], "value49");
}

#[test]
fn repair_reads_a_compacted_store_with_crash_leftovers_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut script: String = (0..100)
        .map(|i| format!("PUT key{i:03} old{i}\n"))
        .collect();
    script.push_str("COMPACT\n");
    script.extend((50..130).map(|i| format!("PUT key{i:03} new{i}\n")));
    script.push_str("DEL key000\n");
    assert_success(&run_on(dir.path(), &[], script.as_bytes()));
    // What a compaction killed while writing its snapshot and manifest leaves behind.
    let leftover = dir.path().join("snapshots/000009.tmp");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("000000.wal"), b"half a snapshot").unwrap();
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"half a manifest").unwrap();

    let target = tempfile::tempdir().unwrap();
    let salvaged = repair_unchanged(dir.path(), target.path(), 129);
    assert_eq!(salvaged["key049"], "old49");
    assert_eq!(salvaged["key050"], "new50");
    assert_eq!(salvaged["key129"], "new129");
    assert!(!salvaged.contains_key("key000"));
}

#[test]
fn repair_refuses_a_target_that_holds_anything() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 3);
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep"), b"mine").unwrap();
    let output = run_on(
        dir.path(),
        &["repair", "--to", target.path().to_str().unwrap()],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(target.path().join("keep")).unwrap(), b"mine");

    for inside in ["wal/salvaged", "snapshots/new", "."] {
        let to = dir.path().join(inside);
        let before = snapshot(dir.path());
        let output = run_on(dir.path(), &["repair", "--to", to.to_str().unwrap()], b"");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{inside}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("outside the store") || stderr(&output).contains("not empty"),
            "{inside}: {}",
            stderr(&output)
        );
        assert_same_files(&before, &snapshot(dir.path()));
    }
}

#[test]
fn an_open_that_cuts_a_torn_tail_says_where_and_how_much() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("torn", dir.path());
    let before = snapshot(dir.path());
    // A reading command leaves the torn tail out of its view and says so, every time: it
    // changes nothing.
    for _ in 0..2 {
        let output = run_on(dir.path(), &["get", "no-such-key"], b"");
        assert!(
            stderr(&output).contains(
                "left out the end of wal/000001.wal at offset 13393: 16 bytes (record cut \
                 short): a write still in progress, or the torn tail of a crash (nothing was \
                 changed)"
            ),
            "{}",
            stderr(&output)
        );
        assert_same_files(&before, &snapshot(dir.path()));
    }
    // A command that writes cuts it, and says so.
    let output = run_on(dir.path(), &["del", "no-such-key"], b"");
    assert!(
        stderr(&output).contains(
            "cut off the end of wal/000001.wal at offset 13393: 16 bytes (record cut short)"
        ),
        "{}",
        stderr(&output)
    );
    let output = run_on(dir.path(), &["get", "no-such-key"], b"");
    assert_eq!(
        stderr(&output),
        "",
        "the next open has nothing to leave out"
    );
}

/// A read-only bind mount of `source`, unmounted when dropped; `None` where this process may
/// not mount (not root, or no mount namespace rights).
struct ReadOnlyMount {
    path: tempfile::TempDir,
}

impl ReadOnlyMount {
    fn of(source: &Path) -> Option<ReadOnlyMount> {
        let path = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(source)
            .arg(path.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(ReadOnlyMount { path })
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path.path()).status();
    }
}

#[test]
fn reading_commands_work_on_a_read_only_mount_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("torn", dir.path());
    let Some(mount) = ReadOnlyMount::of(dir.path()) else {
        // CI runs as root, where a bind mount works: a failure there is a failure.
        assert!(
            std::env::var_os("KV_TEST_NO_MOUNT").is_some(),
            "cannot make a read-only bind mount (run as root, or set KV_TEST_NO_MOUNT=1 to skip)"
        );
        return;
    };
    let ro = mount.path.path();
    let before = snapshot(dir.path());

    let mut expected = expected_entries();
    expected.remove("zstd:9");
    let (key, value) = expected.iter().next().unwrap();
    let output = run_on(ro, &["get", key], b"");
    assert_success(&output);
    assert_eq!(stdout(&output), format!("{value}\n"));
    assert!(
        stderr(&output).contains("left out the end of wal/000001.wal"),
        "the cut the view made is reported: {}",
        stderr(&output)
    );

    let output = run_on(ro, &["export"], b"");
    assert_success(&output);
    assert!(export_map(ro) == expected, "the torn fixture's 919 keys");
    assert_success(&run_on(ro, &["scan"], b""));
    assert_success(&run_on(ro, &["stats"], b""));

    let output = run_on(ro, &["put", "k", "v"], b"");
    assert_eq!(
        output.status.code(),
        Some(3),
        "a write fails, with a reason"
    );
    assert!(stderr(&output).contains("Read-only"), "{}", stderr(&output));
    assert_same_files(&before, &snapshot(dir.path()));
}
