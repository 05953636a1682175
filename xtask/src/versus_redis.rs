//! `cargo xtask bench`'s side-by-side run: `kv serve` (release) against Redis 7, both on
//! this machine, in the same run, measured by the same `redis-benchmark` lines, the issue's:
//! `redis-benchmark -t set,get,incr,mset -n 200000 -c 50 -r 1000000 -d 100 -P {1,16} --csv`.
//!
//! Three pairings: `kv serve --durability sync` against Redis with `appendonly yes` and
//! `appendfsync always` (every acknowledged write is on disk); `--durability batch` (synced
//! within 5 ms) against `appendfsync everysec`; and `--durability batch --batch-window 1000`
//! against `everysec`, the same promise (synced within a second). Each server gets a
//! directory of its own under the system's temporary directory and a port of 127.0.0.1;
//! Redis runs with `--save ''`. For each pipeline depth the two servers are measured one
//! after the other, so a change in the machine's load falls on both alike as far as it can.
//!
//! The whole run is repeated `--rounds` times (3 by default), and who goes first alternates
//! between rounds: on this shared 2-core VM one line's figure has moved by a third between
//! two runs of the same build, so a single run ranks nothing. Each figure is the median of
//! its rounds, shown with their range.
//!
//! Prints a markdown table (command, `-P`, pairing, kv and Redis requests per second, their
//! ratio, and each one's p50 and p99 latency) and records it as
//! `<target>/kv-results/versus-redis.md`. Skipped, with a note, where `redis-server` or
//! `redis-benchmark` is missing. `--quick` (part of `cargo xtask ci`) runs 2,000 requests
//! per line against the debug build, in one round whatever `--rounds` says, only to show
//! the harness works, and records nothing. `KV_VERSUS_REDIS_BIN=<path>` measures that `kv`
//! executable (another commit's build, say) instead of building this one.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The issue's lines: tests, clients, key space, value size.
const TESTS: &str = "set,get,incr,mset";
const CLIENTS: &str = "50";
const KEYSPACE: &str = "1000000";
const VALUE_SIZE: &str = "100";
const PIPELINES: [u32; 2] = [1, 16];

/// A kv durability and the Redis settings that promise the same.
struct Pairing {
    name: &'static str,
    /// `kv serve`'s durability options.
    kv_args: &'static [&'static str],
    appendfsync: &'static str,
}

const PAIRINGS: [Pairing; 3] = [
    Pairing {
        name: "sync / always",
        kv_args: &["--durability", "sync"],
        appendfsync: "always",
    },
    Pairing {
        name: "batch / everysec",
        kv_args: &["--durability", "batch"],
        appendfsync: "everysec",
    },
    // The same promise as `everysec`: a write acknowledged is synced within a second.
    Pairing {
        name: "batch 1 s / everysec",
        kv_args: &["--durability", "batch", "--batch-window", "1000"],
        appendfsync: "everysec",
    },
];

/// The longest one redis-benchmark line may take before it is stopped.
const LINE_TIMEOUT: Duration = Duration::from_secs(180);

/// One line of redis-benchmark's `--csv` output.
#[derive(Debug, Clone)]
struct Measured {
    test: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One line of the table: a redis-benchmark test at one depth in one pairing, and what each
/// server measured in each round.
struct Row {
    pairing: &'static str,
    pipeline: u32,
    test: String,
    kv: Vec<Measured>,
    redis: Vec<Measured>,
}

impl Row {
    /// Adds a round's lines of each server to `rows`, one row per test kv answered.
    fn add_round(
        rows: &mut Vec<Row>,
        pairing: &'static str,
        pipeline: u32,
        kv: Vec<Measured>,
        redis: &[Measured],
    ) {
        for kv in kv {
            let index = match rows
                .iter()
                .position(|r| r.pairing == pairing && r.pipeline == pipeline && r.test == kv.test)
            {
                Some(index) => index,
                None => {
                    rows.push(Row {
                        pairing,
                        pipeline,
                        test: kv.test.clone(),
                        kv: Vec::new(),
                        redis: Vec::new(),
                    });
                    rows.len() - 1
                }
            };
            let row = &mut rows[index];
            row.redis
                .extend(redis.iter().find(|r| r.test == kv.test).cloned());
            row.kv.push(kv);
        }
    }
}

pub fn versus_redis(quick: bool, rounds: u32) -> Result<(), String> {
    for tool in ["redis-server", "redis-benchmark"] {
        if !on_path(tool) {
            eprintln!(
                "xtask: the side-by-side run with Redis is skipped: `{tool}` is not installed \
                 (Debian: apt-get install redis-server redis-tools)"
            );
            return Ok(());
        }
    }
    // Another build of `kv` (an older commit's, to compare) when asked for.
    let kv = match std::env::var_os("KV_VERSUS_REDIS_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => build_kv(!quick)?,
    };
    let requests: u32 = if quick { 2_000 } else { 200_000 };
    let rounds = if quick { 1 } else { rounds.max(1) };
    let started = Instant::now();
    let mut rows = Vec::new();
    for pairing in &PAIRINGS {
        let ours = Server::kv(&kv, pairing)?;
        let theirs = Server::redis(pairing)?;
        for round in 0..rounds {
            for pipeline in PIPELINES {
                // Who goes first alternates, so that neither always meets the machine as
                // the other left it.
                let (kv_lines, redis_lines) = if round % 2 == 0 {
                    let kv_lines = benchmark(ours.addr, pipeline, requests)?;
                    (kv_lines, benchmark(theirs.addr, pipeline, requests)?)
                } else {
                    let redis_lines = benchmark(theirs.addr, pipeline, requests)?;
                    (benchmark(ours.addr, pipeline, requests)?, redis_lines)
                };
                Row::add_round(&mut rows, pairing.name, pipeline, kv_lines, &redis_lines);
            }
        }
        ours.stop();
        theirs.stop();
    }
    let table = table(&rows, requests, rounds);
    println!("{table}");
    eprintln!(
        "xtask: side by side with Redis took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    if quick {
        return Ok(());
    }
    // Beside the criterion benches' own results.
    let results = target_dir()?.join("kv-results");
    std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
    let path = results.join("versus-redis.md");
    std::fs::write(&path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("xtask: recorded {}", path.display());
    Ok(())
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Requests per second as a median, and the rounds' range when there were several:
/// `123,456 (98,765-130,000)`.
fn rps_cell(measured: &[Measured]) -> String {
    let rps: Vec<f64> = measured.iter().map(|m| m.rps).collect();
    let middle = thousands(median(rps.clone()));
    if rps.len() < 2 {
        return middle;
    }
    let low = rps.iter().copied().fold(f64::INFINITY, f64::min);
    let high = rps.iter().copied().fold(0.0, f64::max);
    format!("{middle} ({}-{})", thousands(low), thousands(high))
}

/// The table, with a first line saying what was measured, where and with what.
fn table(rows: &[Row], requests: u32, rounds: u32) -> String {
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let redis = output("redis-server", &["--version"]);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!(
        "Measured {date} on {cores} cores; {redis}.\n`redis-benchmark -t {TESTS} -n {requests} \
         -c {CLIENTS} -r {KEYSPACE} -d {VALUE_SIZE} -P <P> --csv`, {rounds} round(s) against \
         the same two servers, kv first in the odd ones; each figure is the median of the rounds \
         (their range in brackets), latencies in ms.\n\n\
         | command | -P | kv / Redis | kv rps | Redis rps | kv ÷ Redis | kv p50 | kv p99 | \
         Redis p50 | Redis p99 |\n| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: \
         | ---: |\n"
    );
    let medians =
        |measured: &[Measured], of: fn(&Measured) -> f64| median(measured.iter().map(of).collect());
    for row in rows {
        let kv = &row.kv;
        let (redis_rps, ratio, redis_p50, redis_p99) = if row.redis.is_empty() {
            ("-".into(), "-".into(), "-".into(), "-".into())
        } else {
            let redis = &row.redis;
            (
                rps_cell(redis),
                format!("{:.2}×", medians(kv, |m| m.rps) / medians(redis, |m| m.rps)),
                format!("{:.3}", medians(redis, |m| m.p50_ms)),
                format!("{:.3}", medians(redis, |m| m.p99_ms)),
            )
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {redis_rps} | {ratio} | {:.3} | {:.3} | \
             {redis_p50} | {redis_p99} |\n",
            row.test,
            row.pipeline,
            row.pairing,
            rps_cell(kv),
            medians(kv, |m| m.p50_ms),
            medians(kv, |m| m.p99_ms),
        ));
    }
    out
}

/// `123456.7` as `123,457`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Builds `kv` (in release, or the debug build the tests already made, for a quick run whose
/// figures mean nothing) and returns the executable's path (cargo says where, whatever the
/// target directory). `cargo xtask jepsen` runs the debug build too.
pub(crate) fn build_kv(release: bool) -> Result<PathBuf, String> {
    let mut args = vec!["build", "-p", "kv-cli", "--bin", "kv"];
    if release {
        args.push("--release");
    }
    eprintln!("xtask: cargo {}", args.join(" "));
    args.push("--message-format=json-render-diagnostics");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(&args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err("building kv failed".into());
    }
    // The compiler-artifact message of the `kv` binary carries `"executable":"<path>"`.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("\"name\":\"kv\"") && line.contains("\"bin\""))
        .find_map(|line| {
            let (_, rest) = line.split_once("\"executable\":\"")?;
            let (path, _) = rest.split_once('"')?;
            Some(PathBuf::from(path))
        })
        .ok_or_else(|| "cargo did not say where kv was built".into())
}

/// The workspace's target directory, as cargo sees it.
fn target_dir() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let (_, rest) = text
        .split_once("\"target_directory\":\"")
        .ok_or("cargo metadata did not name the target directory")?;
    let (path, _) = rest
        .split_once('"')
        .ok_or("cargo metadata: no end of path")?;
    Ok(PathBuf::from(path))
}

/// A server process with a directory of its own, stopped and removed when dropped.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Server {
    fn kv(kv: &Path, pairing: &Pairing) -> Result<Server, String> {
        let dir = fresh_dir("kv")?;
        let mut child = Command::new(kv)
            .arg("--dir")
            .arg(dir.join("store"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(pairing.kv_args)
            .env_remove("KV_REQUIREPASS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start kv serve: {e}"))?;
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line);
        let addr = line
            .strip_prefix("ready: listening on ")
            .and_then(|a| a.trim().parse().ok());
        let server = |addr| Server { child, dir, addr };
        match (read, addr) {
            (Ok(_), Some(addr)) => Ok(server(addr)),
            _ => {
                server(SocketAddr::from(([127, 0, 0, 1], 0))).stop();
                Err(format!("kv serve did not get ready: {line:?}"))
            }
        }
    }

    fn redis(pairing: &Pairing) -> Result<Server, String> {
        let dir = fresh_dir("redis")?;
        // A free port: taken, then let go for redis-server.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync"])
            .arg(pairing.appendfsync)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let server = Server {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(server.addr).is_err() {
            if Instant::now() > deadline {
                server.stop();
                return Err("redis-server did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// SIGTERM (both stop cleanly on it), then SIGKILL if it takes over 10 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fresh_dir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("kv-versus-redis-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs the issue's redis-benchmark line against `addr` and reads its CSV.
fn benchmark(addr: SocketAddr, pipeline: u32, requests: u32) -> Result<Vec<Measured>, String> {
    let mut child = Command::new("redis-benchmark")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-t", TESTS, "-n", &requests.to_string(), "-c", CLIENTS])
        .args([
            "-r",
            KEYSPACE,
            "-d",
            VALUE_SIZE,
            "-P",
            &pipeline.to_string(),
        ])
        .arg("--csv")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-benchmark: {e}"))?;
    let deadline = Instant::now() + LINE_TIMEOUT;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-benchmark -P {pipeline} against {addr} took too long"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let measured = parse_csv(&String::from_utf8_lossy(&output.stdout));
    if measured.is_empty() {
        return Err(format!(
            "redis-benchmark -P {pipeline} against {addr} measured nothing"
        ));
    }
    Ok(measured)
}

/// redis-benchmark's `--csv`: a header naming the columns, then one quoted line per test.
fn parse_csv(text: &str) -> Vec<Measured> {
    let split = |line: &str| -> Vec<String> {
        line.split("\",\"")
            .map(|cell| cell.trim_matches('"').to_string())
            .collect()
    };
    let mut lines = text.lines().filter(|l| l.starts_with('"'));
    let Some(header) = lines.next().map(split) else {
        return Vec::new();
    };
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(rps), Some(p50), Some(p99)) = (
        column("rps"),
        column("p50_latency_ms"),
        column("p99_latency_ms"),
    ) else {
        return Vec::new();
    };
    lines
        .map(split)
        .filter_map(|cells| {
            let number = |i: usize| cells.get(i)?.parse::<f64>().ok();
            Some(Measured {
                test: cells.first()?.clone(),
                rps: number(rps)?,
                p50_ms: number(p50)?,
                p99_ms: number(p99)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read_by_its_header() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET\",\"60350.03\",\"0.738\",\"0.248\",\"0.711\",\"1.023\",\"1.215\",\"4.919\"\n\
                   \"MSET (10 keys)\",\"27824.15\",\"1.683\",\"0.448\",\"1.567\",\"2.655\",\"5.047\",\"21.455\"\n";
        let measured = parse_csv(csv);
        assert_eq!(measured.len(), 2);
        assert_eq!(measured[0].test, "SET");
        assert_eq!(measured[0].rps, 60350.03);
        assert_eq!(measured[0].p50_ms, 0.711);
        assert_eq!(measured[0].p99_ms, 1.215);
        assert_eq!(measured[1].test, "MSET (10 keys)");
        assert!(parse_csv("").is_empty());
    }

    fn measured(test: &str, rps: f64) -> Measured {
        Measured {
            test: test.into(),
            rps,
            p50_ms: rps / 1000.0,
            p99_ms: rps / 100.0,
        }
    }

    #[test]
    fn each_figure_is_the_median_of_its_rounds_with_their_range() {
        let mut rows = Vec::new();
        for (kv, redis) in [(300.0, 100.0), (100.0, 400.0), (200.0, 300.0)] {
            Row::add_round(
                &mut rows,
                "sync / always",
                16,
                vec![measured("SET", kv), measured("GET", 2.0 * kv)],
                &[measured("GET", redis), measured("SET", redis)],
            );
        }
        assert_eq!(rows.len(), 2);
        let set = &rows[0];
        assert_eq!(
            (set.test.as_str(), set.kv.len(), set.redis.len()),
            ("SET", 3, 3)
        );
        assert_eq!(rps_cell(&set.kv), "200 (100-300)");
        assert_eq!(rps_cell(&set.redis), "300 (100-400)");
        let table = table(&rows, 1000, 3);
        // SET: medians 200 against 300; GET: 400 against 300.
        assert!(table.contains("| SET | 16 | sync / always | 200 (100-300) | 300 (100-400) | 0.67× | 0.200 | 2.000 | 0.300 | 3.000 |"), "{table}");
        assert!(
            table.contains("| GET | 16 | sync / always | 400 (200-600) | 300 (100-400) | 1.33× |"),
            "{table}"
        );
        assert!(table.contains("3 round(s)"));
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert_eq!(rps_cell(&[measured("SET", 1234.0)]), "1,234");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(60350.03), "60,350");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
