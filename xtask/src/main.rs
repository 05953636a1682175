//! The project's chores, as one Rust program instead of shell scripts.
//!
//! - `cargo xtask ci`: everything CI checks: formatting, clippy (warnings denied), every
//!   test (unit, integration, doc, and each bench run once), the docs (warnings denied), a
//!   fuzz smoke run, `bench --quick`, a minute of torture and a minute of jepsen.
//! - `cargo xtask fuzz [--seconds N]`: every fuzz target over its corpus and N seconds of
//!   mutated inputs (default 5), on the stable toolchain.
//! - `cargo xtask bench [--quick] [--rocksdb] [--bench NAME] [--redis-only] [--rounds N]`: the criterion
//!   benchmarks, then `kv serve` side by side with Redis 7 under the same redis-benchmark
//!   lines (`versus_redis.rs`; skipped where Redis is not installed). `--quick` runs each
//!   briefly, `--rocksdb` adds RocksDB to the `peers` bench (its C++ build is long and needs
//!   libclang, so CI leaves it off), `--bench NAME` runs that criterion bench alone (and not
//!   the side-by-side run), `--redis-only` only the side-by-side run.
//! - `cargo xtask report`: the last `peers` and `w1_curve` bench results as the README's
//!   tables and two SVG charts under `docs/`.
//! - `cargo xtask torture [--minutes N]`: the crash torture run (default 1 minute): a child
//!   process writing and compacting is killed with SIGKILL again and again, and every
//!   acknowledged operation must survive. CI runs one minute of it.
//! - `cargo xtask jepsen [--minutes N]`: the fault-injection run (default 1 minute, which CI
//!   runs too): three `kv serve` nodes (the debug build) under clients while nodes are
//!   killed, paused and the majority lost; then no acknowledged write lost, identical stores
//!   and a linearizable history (`jepsen/`).

#![forbid(unsafe_code)]

mod report;
mod versus_redis;

use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz(seconds_arg(&args[1..]).unwrap_or(5)),
        Some("bench") => bench_args(&args[1..]).and_then(bench),
        Some("report") => report::report(),
        Some("torture") => torture(minutes_arg(&args[1..]).unwrap_or_else(|| "1".into())),
        Some("jepsen") => jepsen(minutes_arg(&args[1..]).unwrap_or_else(|| "1".into())),
        _ => Err(
            "usage: cargo xtask <ci | fuzz [--seconds N] | bench [--quick] [--rocksdb] [--bench NAME] [--redis-only] [--rounds N] | report | torture [--minutes N] | jepsen [--minutes N]>"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn seconds_arg(args: &[String]) -> Option<u64> {
    let at = args.iter().position(|a| a == "--seconds")?;
    args.get(at + 1)?.parse().ok()
}

fn minutes_arg(args: &[String]) -> Option<String> {
    let at = args.iter().position(|a| a == "--minutes")?;
    let minutes = args.get(at + 1)?;
    minutes.parse::<f64>().ok().map(|_| minutes.clone())
}

/// Runs `cargo` with `args` (and extra environment), failing on a non-zero exit.
fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("xtask: cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!(
        "xtask: cargo {} took {:.1}s",
        args.first().unwrap_or(&""),
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    cargo(&["test", "--workspace", "--all-targets"], &[])?;
    cargo(&["test", "--workspace", "--doc"], &[])?;
    cargo(
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    fuzz(5)?;
    // The benches run once each above, in test mode; this runs them for real, briefly, so
    // that `cargo xtask bench` itself keeps working.
    bench(Bench {
        quick: true,
        rocksdb: false,
        only: None,
        redis_only: false,
        rounds: 1,
    })?;
    torture("1".into())?;
    jepsen("1".into())
}

fn torture(minutes: String) -> Result<(), String> {
    cargo(
        &[
            "run",
            "--quiet",
            "--release",
            "--package",
            "kv-torture",
            "--",
            "--minutes",
            &minutes,
        ],
        &[],
    )
}

/// Builds `kv` (the debug build, which CI's tests built already) and runs `kv-jepsen` on it.
fn jepsen(minutes: String) -> Result<(), String> {
    let kv = versus_redis::build_kv(false)?;
    let kv = kv.to_str().ok_or("the kv binary's path is not UTF-8")?;
    cargo(
        &[
            "run",
            "--quiet",
            "--package",
            "kv-jepsen",
            "--",
            "--kv",
            kv,
            "--minutes",
            &minutes,
        ],
        &[],
    )
}

fn fuzz(seconds: u64) -> Result<(), String> {
    let seconds = seconds.to_string();
    cargo(
        &[
            "run",
            "--quiet",
            "--package",
            "kv-fuzz",
            "--bin",
            "fuzz-smoke",
            "--",
            "--seconds",
            &seconds,
        ],
        &[],
    )
}

/// What `cargo xtask bench` runs.
struct Bench {
    /// Each bench briefly (`--quick`).
    quick: bool,
    /// With the `rocksdb` feature of kv-benches: RocksDB in the `peers` bench.
    rocksdb: bool,
    /// Only this bench (`--bench NAME`), else all of them and the side-by-side run.
    only: Option<String>,
    /// Only the side-by-side run against Redis (`--redis-only`).
    redis_only: bool,
    /// Rounds of the side-by-side run (`--rounds N`).
    rounds: u32,
}

fn bench_args(args: &[String]) -> Result<Bench, String> {
    let mut bench = Bench {
        quick: false,
        rocksdb: false,
        only: None,
        redis_only: false,
        rounds: 3,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => bench.quick = true,
            "--rocksdb" => bench.rocksdb = true,
            "--redis-only" => bench.redis_only = true,
            "--rounds" => {
                bench.rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--rounds needs a count of at least 1")?;
            }
            "--bench" => {
                bench.only = Some(args.next().ok_or("--bench needs a bench's name")?.clone());
            }
            other => return Err(format!("bench: unknown argument {other}")),
        }
    }
    Ok(bench)
}

/// The arguments of the `cargo bench` that `bench` runs.
fn bench_command(bench: &Bench) -> Vec<&str> {
    let mut args = vec!["bench", "--package", "kv-benches"];
    match &bench.only {
        Some(name) => args.extend(["--bench", name.as_str()]),
        None => args.push("--benches"),
    }
    if bench.rocksdb {
        args.extend(["--features", "rocksdb"]);
    }
    if bench.quick {
        args.extend([
            "--",
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
            "--sample-size",
            "10",
        ]);
    }
    args
}

fn bench(bench: Bench) -> Result<(), String> {
    let quick: &[(&str, &str)] = if bench.quick {
        &[("KV_BENCH_QUICK", "1")]
    } else {
        &[]
    };
    if !bench.redis_only {
        cargo(&bench_command(&bench), quick)?;
    }
    if bench.only.is_none() {
        versus_redis::versus_redis(bench.quick, bench.rounds)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn bench_builds_rocksdb_only_when_asked() {
        let ci = bench_args(&args("--quick")).unwrap();
        assert!(!bench_command(&ci).contains(&"--features"));
        assert!(bench_command(&ci).contains(&"--benches"));
        let peers = bench_args(&args("--rocksdb --bench peers")).unwrap();
        assert_eq!(
            bench_command(&peers),
            [
                "bench",
                "--package",
                "kv-benches",
                "--bench",
                "peers",
                "--features",
                "rocksdb"
            ]
        );
    }

    #[test]
    fn the_side_by_side_run_takes_three_rounds_unless_told() {
        assert_eq!(bench_args(&args("--redis-only")).unwrap().rounds, 3);
        assert_eq!(bench_args(&args("--rounds 5")).unwrap().rounds, 5);
        for bad in ["--rounds", "--rounds 0", "--rounds x"] {
            assert!(bench_args(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn bench_refuses_what_it_does_not_know() {
        assert!(bench_args(&args("--rocks")).is_err());
        assert!(bench_args(&args("--bench")).is_err());
    }
}
