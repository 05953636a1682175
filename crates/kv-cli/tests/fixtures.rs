//! Directories written by the original recipe (nori-wal 0.1: only `wal/` inside) open as
//! they are.

mod common;

use common::{assert_success, copy_fixture, expected_entries, export_map, run_on, stdout};

#[test]
fn export_of_the_clean_fixture_is_expected_tsv() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("clean", dir.path());
    let exported = export_map(dir.path());
    assert_eq!(exported.len(), 920);
    assert_eq!(exported, expected_entries());
}

#[test]
fn export_of_the_torn_fixture_is_expected_tsv_without_the_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("torn", dir.path());
    let mut expected = expected_entries();
    expected.remove("zstd:9");
    assert_eq!(export_map(dir.path()), expected);
}

#[test]
fn the_fixture_answers_gets_and_scans() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("clean", dir.path());
    let output = run_on(
        dir.path(),
        &["scan", "--prefix", "user:01", "--limit", "3"],
        b"",
    );
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        "user:0100 updated-100\nuser:0101 updated-101\nuser:0102 updated-102\n"
    );
    let output = run_on(
        dir.path(),
        &[],
        b"GET user:0007\nGET user:0050\nGET user:0999\n",
    );
    assert_eq!(stdout(&output), "(nil)\n(nil)\n\"value-999\"\n");
}
