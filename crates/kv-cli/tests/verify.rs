//! `kv verify` reports damage, a torn tail included, and changes no byte of the directory.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{
    assert_same_files, assert_success, copy_fixture, kv, read_lines, run_on, snapshot, stderr,
    stdout, write_store,
};

#[test]
fn verify_passes_the_clean_nori_wal_fixture_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("clean", dir.path());
    let before = snapshot(dir.path());
    let output = run_on(dir.path(), &["verify"], b"");
    assert_success(&output);
    let report = stdout(&output);
    assert!(report.contains("2 segments, 1220 records"), "{report}");
    assert!(report.contains("live: 920 keys"), "{report}");
    assert!(report.ends_with("OK\n"), "{report}");
    assert_same_files(&before, &snapshot(dir.path()));
}

#[test]
fn verify_reports_the_torn_fixture_and_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("torn", dir.path());
    let before = snapshot(dir.path());
    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
    let report = stdout(&output);
    assert!(
        report.starts_with(
            "DAMAGED: the log is damaged in segment 1 at offset 13393: record cut short"
        ),
        "{report}"
    );
    assert!(report.contains("newest segment"), "{report}");
    assert!(stderr(&output).contains("is damaged (nothing was changed)"));
    assert_same_files(&before, &snapshot(dir.path()));
}

#[test]
fn verify_reports_a_flipped_byte_in_the_middle_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 500);
    assert_success(&run_on(dir.path(), &["verify"], b""));

    let segment = dir.path().join("wal/000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let before = snapshot(dir.path());

    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(4), "damage exits 4");
    let report = stdout(&output);
    assert!(
        report.starts_with("DAMAGED: the log is damaged in segment 0 at offset"),
        "{report}"
    );
    // The advice is the command line's, not the library's.
    assert!(
        report.contains("kv --dir DIR repair --to NEWDIR"),
        "{report}"
    );
    assert!(!report.contains("RecoveryMode"), "{report}");
    assert_same_files(&before, &snapshot(dir.path()));

    // An ordinary open refuses the damage too, with a clear message, and changes nothing.
    let output = run_on(dir.path(), &["get", "key00001"], b"");
    assert_eq!(
        output.status.code(),
        Some(3),
        "an open that fails is a runtime error"
    );
    assert!(
        stderr(&output).contains("is damaged; nothing was changed"),
        "{}",
        stderr(&output)
    );
    assert_same_files(&before, &snapshot(dir.path()));
}

#[test]
fn verify_of_a_store_killed_mid_run_keeps_its_preallocated_tail() {
    // A killed writer leaves its segment preallocated, zeros past the data; closing a store
    // trims them, so an ordinary open-and-close would change the file. verify must not.
    let dir = tempfile::tempdir().unwrap();
    let mut child = kv(&["--dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let answers = read_lines(child.stdout.take().unwrap());
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, b"PUT a 1\nPUT b 2\n").unwrap();
    for _ in 0..2 {
        assert_eq!(answers.recv_timeout(Duration::from_secs(20)).unwrap(), "OK");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let segment_len = std::fs::metadata(dir.path().join("wal/000000.wal"))
        .unwrap()
        .len();
    assert!(
        segment_len > 1 << 20,
        "the segment is preallocated ({segment_len} bytes)"
    );
    let before = snapshot(dir.path());

    let output = run_on(dir.path(), &["verify"], b"");
    assert_success(&output);
    assert!(
        stdout(&output).contains("live: 2 keys"),
        "{}",
        stdout(&output)
    );
    assert_same_files(&before, &snapshot(dir.path()));
}

#[test]
fn verify_checks_the_snapshot_of_a_compacted_store_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 300);
    assert_success(&run_on(dir.path(), &["compact"], b""));
    assert_success(&run_on(dir.path(), &[], b"PUT after compaction\n"));
    let before = snapshot(dir.path());

    let output = run_on(dir.path(), &["verify"], b"");
    assert_success(&output);
    let report = stdout(&output);
    assert!(report.contains("snapshot: "), "{report}");
    assert!(report.contains("live: 301 keys"), "{report}");
    assert_same_files(&before, &snapshot(dir.path()));

    // A flipped byte in the middle of one of the snapshot's parts.
    let path = a_snapshot_part(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let damaged = snapshot(dir.path());
    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
    assert!(
        stdout(&output).starts_with("DAMAGED: "),
        "{}",
        stdout(&output)
    );
    assert_same_files(&damaged, &snapshot(dir.path()));
}

#[test]
fn verify_reports_a_cut_snapshot_and_a_missing_manifest_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut script: String = (0..50).map(|i| format!("PUT key{i:02} v{i}\n")).collect();
    script.push_str("COMPACT\nPUT last one\n");
    assert_success(&run_on(dir.path(), &[], script.as_bytes()));
    assert_success(&run_on(dir.path(), &["verify"], b""));

    let snapshot_file = a_snapshot_part(dir.path());
    let full = std::fs::read(&snapshot_file).unwrap();
    std::fs::write(&snapshot_file, &full[..full.len() / 2]).unwrap();
    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stdout(&output).starts_with("DAMAGED: "),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("snapshot"), "{}", stdout(&output));
    std::fs::write(&snapshot_file, &full).unwrap();

    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let before = snapshot(dir.path());
    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stdout(&output).starts_with("DAMAGED: "),
        "{}",
        stdout(&output)
    );
    assert_same_files(&before, &snapshot(dir.path()));
    // An ordinary open refuses it too, and deletes nothing.
    let output = run_on(dir.path(), &["scan"], b"");
    assert_eq!(output.status.code(), Some(3));
    assert_same_files(&before, &snapshot(dir.path()));
}

/// A manifest a newer version of kv wrote is not damage: `kv verify` says what it is, exits
/// as on any other refusal (3, not 4), and changes nothing.
#[test]
fn verify_does_not_call_a_newer_manifest_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut script: String = (0..20).map(|i| format!("PUT key{i:02} v{i}\n")).collect();
    script.push_str("COMPACT\n");
    assert_success(&run_on(dir.path(), &[], script.as_bytes()));
    let manifest = dir.path().join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[7] = b'9';
    bytes.extend_from_slice(b"and more of a format this build does not know");
    std::fs::write(&manifest, &bytes).unwrap();
    let before = snapshot(dir.path());
    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(!stdout(&output).contains("DAMAGED"), "{}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("newer version of kv"), "{stderr}");
    assert_same_files(&before, &snapshot(dir.path()));
}

#[test]
fn verify_reports_a_snapshot_lengthened_by_zeros_as_damage_and_keeps_the_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut script: String = (0..50).map(|i| format!("PUT key{i:02} v{i}\n")).collect();
    script.push_str("COMPACT\nPUT last one\n");
    assert_success(&run_on(dir.path(), &[], script.as_bytes()));
    let snapshot_file = a_snapshot_part(dir.path());
    let mut longer = std::fs::read(&snapshot_file).unwrap();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&snapshot_file, &longer).unwrap();
    let before = snapshot(dir.path());
    let output = run_on(dir.path(), &["verify"], b"");
    assert_eq!(output.status.code(), Some(4), "{}", stdout(&output));
    assert!(
        stdout(&output).starts_with("DAMAGED: ") && stdout(&output).contains("snapshot"),
        "{}",
        stdout(&output)
    );
    assert_same_files(&before, &snapshot(dir.path()));
}

/// The longest part file of the snapshot of the store in `dir`.
fn a_snapshot_part(dir: &std::path::Path) -> std::path::PathBuf {
    let snapshot = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a snapshot");
    std::fs::read_dir(snapshot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a part")
}
