//! import, export and compact show progress on standard error when it is a terminal, and
//! write nothing more to it in a pipe.

mod common;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};

use common::{assert_success, kv, run_on, stderr, stdout};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

/// An export file of `count` entries.
fn export_file(dir: &Path, count: usize) -> std::path::PathBuf {
    let lines: String = (0..count)
        .map(|i| format!("{{\"key\":\"key{i:06}\",\"value\":\"value-{i}\"}}\n"))
        .collect();
    let path = dir.join("input.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

/// Runs `kv --dir DIR args` with standard error on a pseudo-terminal; returns its output,
/// standard error being what the terminal received.
fn run_on_terminal(dir: &Path, args: &[&str]) -> Output {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pseudo-terminal");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = File::options()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut all = vec!["--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let child = kv(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(terminal))
        .spawn()
        .unwrap();
    // Read what the terminal receives until the child is gone (then reading fails, EIO).
    let mut master = File::from(master);
    let screen = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let mut output = child.wait_with_output().unwrap();
    output.stderr = screen.join().unwrap();
    output
}

#[test]
fn import_export_and_compact_show_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let input = export_file(dir.path(), 20_000);
    let store = dir.path().join("store");

    let imported = run_on_terminal(&store, &["import", input.to_str().unwrap()]);
    assert_success(&imported);
    assert_eq!(
        stdout(&imported),
        "imported 20000 entries in 20 batches (0 already expired, skipped)\n"
    );
    assert!(
        stderr(&imported).contains("importing"),
        "{:?}",
        stderr(&imported)
    );

    let exported = run_on_terminal(&store, &["export"]);
    assert_success(&exported);
    assert_eq!(stdout(&exported).lines().count(), 20_000);
    assert!(
        stderr(&exported).contains("exporting"),
        "{:?}",
        stderr(&exported)
    );

    let compacted = run_on_terminal(&store, &["compact"]);
    assert_success(&compacted);
    assert!(stdout(&compacted).starts_with("OK snapshot"));
    assert!(
        stderr(&compacted).contains("compacting 20000 entries"),
        "{:?}",
        stderr(&compacted)
    );
}

#[test]
fn nothing_is_drawn_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let input = export_file(dir.path(), 20_000);
    let store = dir.path().join("store");
    for args in [
        &["import", input.to_str().unwrap()][..],
        &["export"],
        &["compact"],
        &["get", "key000001"],
    ] {
        let output = run_on(&store, args, b"");
        assert_success(&output);
        assert_eq!(stderr(&output), "", "{args:?}");
    }
    let piped = std::fs::read(&input).unwrap();
    let output = run_on(&store, &["import"], &piped);
    assert_success(&output);
    assert_eq!(stderr(&output), "", "import from a pipe");
}
