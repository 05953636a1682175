//! `kv bench --quick` runs in seconds and prints results a script can read.

mod common;

use common::{assert_success, json_lines, run_in, stdout};

/// The `workload` of each line, in order.
fn workloads(lines: &[serde_json::Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["workload"].as_str().unwrap())
        .collect()
}

#[test]
fn bench_quick_json_prints_the_required_fields() {
    let cwd = tempfile::tempdir().unwrap();
    let output = run_in(
        Some(cwd.path()),
        &[
            "bench",
            "--quick",
            "--json",
            "--workload",
            "W1,W5",
            "--workload",
            "W7",
            "--threads",
            "2",
        ],
        b"",
    );
    assert_success(&output);
    let lines = json_lines(&stdout(&output));
    let workloads = workloads(&lines);
    assert_eq!(workloads, ["W5", "W1", "W7"]);
    for line in &lines {
        for field in [
            "workload",
            "threads",
            "ops_per_sec",
            "p50_us",
            "p99_us",
            "limit",
            "ratio_to_limit",
        ] {
            assert!(line.get(field).is_some(), "{field} in {line}");
        }
        assert_eq!(line["quick"], true);
    }

    let w1 = &lines[1];
    assert_eq!(w1["threads"], 2);
    assert!(w1["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(w1["p50_us"].as_f64().unwrap() > 0.0);
    assert!(w1["p99_us"].as_f64().unwrap() >= w1["p50_us"].as_f64().unwrap());
    assert_eq!(w1["limit"], "L1");
    assert!(w1["ratio_to_limit"].as_f64().unwrap() > 0.0);
    assert!(w1["records_per_fsync"].as_f64().unwrap() >= 1.0);

    let w5 = &lines[0];
    assert!(w5["overhead_bytes_per_key"].is_f64(), "{w5}");
    assert!(w5["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(w5["limit"].is_null());

    let w7 = &lines[2];
    assert_eq!(w7["limit"], "L2");
    assert!(w7["compaction_seconds"].as_f64().unwrap() > 0.0, "{w7}");
    assert!(w7["writer_p99_before_us"].as_f64().unwrap() > 0.0, "{w7}");
    assert!(w7["snapshot_bytes_after"].as_u64().unwrap() > 0, "{w7}");

    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "the bench directory is removed: {left:?}");
}

#[test]
fn bench_quick_prints_a_table_with_the_limits() {
    let cwd = tempfile::tempdir().unwrap();
    let output = run_in(
        Some(cwd.path()),
        &[
            "bench",
            "--quick",
            "--workload",
            "W3",
            "--workload",
            "W4",
            "--workload",
            "W8",
        ],
        b"",
    );
    assert_success(&output);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("(quick: sizes / 100)"), "{text}");
    assert!(lines[1].starts_with("limits: L1 "), "{text}");
    assert!(lines[2].starts_with("id  workload"), "{text}");
    let rows: Vec<&str> = lines[3..].iter().map(|l| &l[..2]).collect();
    assert_eq!(rows, ["W3", "W3", "W3", "W4", "W4", "W4", "W8"], "{text}");
    assert!(
        lines[5].starts_with("W3  get_many"),
        "the batched gets' row: {text}"
    );
    assert!(text.contains("x L6"), "W3 is compared with L6: {text}");
    assert!(text.contains("ratio_to_single_gets="), "{text}");
    assert!(text.contains("open from a snapshot"), "{text}");
    assert!(text.contains("x L3"), "W4 is compared with L3: {text}");
    assert!(output.stderr.is_empty(), "no progress bar off a terminal");
}

#[test]
fn bench_w4_prints_the_log_replays_then_the_open_from_a_snapshot() {
    let cwd = tempfile::tempdir().unwrap();
    let output = run_in(
        Some(cwd.path()),
        &["bench", "--quick", "--json", "--workload", "W4"],
        b"",
    );
    assert_success(&output);
    let lines = json_lines(&stdout(&output));
    let workloads = workloads(&lines);
    assert_eq!(workloads, ["W4", "W4", "W4-snapshot"]);
    let snapshot = &lines[2];
    assert_eq!(
        snapshot["ops"], 10_000,
        "every key, from the snapshot: {snapshot}"
    );
    assert_eq!(snapshot["limit"], "L3");
    assert!(snapshot["records_per_sec"].as_f64().unwrap() > 0.0);
    assert!(
        snapshot["snapshot_bytes"].as_u64().unwrap() > 0,
        "{snapshot}"
    );
}
