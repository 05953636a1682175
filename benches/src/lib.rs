//! What only the criterion benches share: whether a run is a short one, and saving results
//! for `cargo xtask report`.
//!
//! The workloads themselves (their data, sizes, options and operations) and the machine
//! limits they are reported beside are in `kv-workloads`, which `kv bench` runs too; every
//! figure is reported next to the limit it is bounded by, measured in the same run, because
//! the machines are shared and absolute numbers drift.

#![forbid(unsafe_code)]

use std::path::Path;

/// Whether to use small sizes: the short CI run (`KV_BENCH_QUICK`), or a bench binary run by
/// `cargo test`, which runs each benchmark once to check that it works (without `--bench`).
pub fn quick() -> bool {
    std::env::var_os("KV_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

/// The slots of the table L5 chases (`kv_workloads::machine::dependent_access`): 32 Mi
/// slots of 4 bytes, 128 MiB, much larger than the caches (4 Mi, 16 MiB, when quick).
pub fn chase_slots() -> usize {
    if quick() {
        4 << 20
    } else {
        32 << 20
    }
}

/// Saves a bench's results as `<target>/kv-results/<name>.tsv` for `cargo xtask report`
/// (`target_tmpdir`: the bench's `CARGO_TARGET_TMPDIR`, inside the target directory),
/// with a first line saying when and where they were measured. Quick runs save nothing: their
/// figures are not worth a report.
pub fn save_results(target_tmpdir: &str, name: &str, header: &str, rows: &[String]) {
    if quick() {
        return;
    }
    let target = Path::new(target_tmpdir)
        .parent()
        .expect("the target directory")
        .join("kv-results");
    let _ = std::fs::create_dir_all(&target);
    let when = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut text = format!("# measured {when} on {cores} cores\n{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    let path = target.join(format!("{name}.tsv"));
    match std::fs::write(&path, text) {
        Ok(()) => eprintln!("results saved to {}", path.display()),
        Err(e) => eprintln!("cannot save results to {}: {e}", path.display()),
    }
}
