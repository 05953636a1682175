//! The fault-injection run (`cargo xtask jepsen [--minutes N]`): three `kv serve --node-id`
//! processes on 127.0.0.1 formed into a cluster with `kv cluster init`, clients doing `GET`,
//! `SET`, `INCR` and `MULTI`/`EXEC` against random nodes while a nemesis kills, pauses and
//! takes the majority away (`nemesis.rs`); then, every node back and caught up:
//!
//! - every acknowledged write is on every node, and no refused one on any (`lost: 0`);
//! - every node's store is identical (each key's value and deadline, read locally);
//! - no write was acknowledged while two of the three nodes were down;
//! - the history is linearizable, key by key (`linearizable: yes`).
//!
//! It exits nonzero otherwise, with the offending key's history. Usage:
//! `kv-jepsen --kv PATH [--minutes N] [--clients N] [--seed N] [--history FILE]`.

#![forbid(unsafe_code)]

mod check;
mod history;
mod nemesis;
mod verdict;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kv_testkit::cluster::Node;

use crate::history::{Outcome, Recorder};
use crate::verdict::Verdict;
use crate::workload::Clients;

/// How long the nodes may take to agree once healed, and to elect the first leader.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the linearizability search may take, all keys together (one minute's history
/// takes well under a second).
const CHECK_BUDGET: Duration = Duration::from_secs(120);

/// How long reading a node's whole store may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(20);

struct Args {
    kv: PathBuf,
    /// Where to write the whole history, one operation a line.
    history: Option<PathBuf>,
    run: Duration,
    clients: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut kv = None;
    let mut history = None;
    let mut minutes = 1.0f64;
    let mut clients = 6;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--kv" => kv = Some(PathBuf::from(value()?)),
            "--history" => history = Some(PathBuf::from(value()?)),
            "--minutes" => minutes = value()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--clients" => clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(minutes > 0.0 && minutes < 1e4) || clients == 0 {
        return Err("--minutes and --clients must be positive".into());
    }
    Ok(Args {
        kv: kv.ok_or(
            "usage: kv-jepsen --kv PATH [--minutes N] [--clients N] [--seed N] [--history FILE]",
        )?,
        history,
        run: Duration::from_secs_f64(minutes * 60.0),
        clients,
        seed,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("jepsen: {message}");
            return ExitCode::from(2);
        }
    };
    let root = match tempfile::Builder::new().prefix("kv-jepsen").tempdir() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("jepsen: cannot make a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args, root.path()) {
        Ok(true) => ExitCode::SUCCESS,
        outcome => {
            if let Err(message) = outcome {
                eprintln!("jepsen: {message}");
            }
            // The nodes' directories and logs, for a look.
            let kept = root.keep();
            eprintln!(
                "jepsen: FAILED (seed {}); the nodes' directories and logs are in {}",
                args.seed,
                kept.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The run; `Ok(false)` when a check failed (it says which).
fn run(args: &Args, root: &std::path::Path) -> Result<bool, String> {
    let started = Instant::now();
    eprintln!(
        "jepsen: {} clients for {:.0}s, seed {}, in {}",
        args.clients,
        args.run.as_secs_f64(),
        args.seed,
        root.display()
    );
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut node = Node::new(&args.kv, id, root.join(format!("n{id}")));
            node.log = Some(root.join(format!("n{id}.log")));
            node
        })
        .collect();
    for node in &mut nodes {
        node.start()?;
    }
    let init = Command::new(&args.kv)
        .args(["cluster", "init"])
        .args(nodes.iter().map(|n| &n.client))
        .output()
        .map_err(|e| format!("cannot run kv cluster init: {e}"))?;
    if !init.status.success() {
        return Err(format!("kv cluster init failed: {init:?}"));
    }
    wait_for(SETTLE_TIMEOUT, "a leader", || {
        nemesis::leader(&nodes).is_some()
    })?;

    let recorder = Recorder::new();
    let stop = AtomicBool::new(false);
    let unexpected = Mutex::new(Vec::new());
    let values = AtomicU64::new(1);
    let addrs: Vec<String> = nodes.iter().map(|n| n.client.clone()).collect();
    let clients = Clients {
        addrs: &addrs,
        recorder: &recorder,
        stop: &stop,
        unexpected: &unexpected,
        values: &values,
        begun: AtomicU64::new(0),
    };
    let faults = std::thread::scope(|scope| {
        // The clients stop when the nemesis is done, or panics: the scope waits for them.
        let _stop = StopOnDrop(&stop);
        for index in 0..args.clients {
            let clients = &clients;
            let seed = args.seed.wrapping_add(index as u64 + 1);
            scope.spawn(move || clients.run(index, seed));
        }
        let faults = nemesis::run(&mut nodes, &recorder, args.run, args.seed);
        // The clients go on, healthy, to the end of the run.
        if faults.is_ok() {
            std::thread::sleep(args.run.saturating_sub(recorder.elapsed()));
        }
        faults
    })?;
    let ran = recorder.elapsed();
    // Each operation ends within its timeouts: clients that took long to stop would be a hang.
    let stopping = ran.saturating_sub(args.run);
    eprintln!(
        "jepsen: the clients stopped {:.1}s after the run's end",
        stopping.as_secs_f64()
    );

    let settling = Instant::now();
    let applied = converge(&nodes)?;
    let stores = nodes.iter().map(dump).collect::<Result<Vec<_>, String>>()?;
    let settled = settling.elapsed();
    for node in &mut nodes {
        node.kill();
    }

    let records = recorder.into_records();
    if let Some(path) = &args.history {
        let lines: Vec<String> = records.iter().map(ToString::to_string).collect();
        std::fs::write(path, lines.join("\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let count = |f: fn(&Outcome) -> bool| records.iter().filter(|r| f(&r.outcome)).count();
    println!(
        "jepsen: {:.0}s of operations: {} ok, {} failed, {} indeterminate ({} in all, {:.0}/s acknowledged)",
        ran.as_secs_f64(),
        count(|o| matches!(o, Outcome::Ok(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Indeterminate(_))),
        records.len(),
        count(|o| matches!(o, Outcome::Ok(_))) as f64 / ran.as_secs_f64()
    );
    println!(
        "jepsen: nemesis: {} kills ({} of the leader), {} pauses, {} majority losses",
        faults.kills, faults.leader_kills, faults.pauses, faults.majority_losses
    );
    println!(
        "jepsen: healed and caught up to index {applied} in {:.1}s; {} keys on each node",
        settled.as_secs_f64(),
        stores[0].len()
    );
    println!("jepsen: acknowledged per 5 s: {}", timeline(&records, ran));
    let checking = Instant::now();
    let unexpected = unexpected
        .into_inner()
        .expect("the unexpected errors' lock");
    let verdict = Verdict::of(&records, &stores, &faults.windows, unexpected, CHECK_BUDGET);
    for line in verdict.report() {
        println!("jepsen: {line}");
    }
    println!(
        "jepsen: checked in {:.1}s; took {:.1}s in all",
        checking.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(verdict.passed())
}

/// How many operations were acknowledged in each 5 seconds of the run.
fn timeline(records: &[history::Record], ran: Duration) -> String {
    let mut buckets = vec![0usize; ran.as_secs() as usize / 5 + 1];
    for record in records {
        if matches!(record.outcome, Outcome::Ok(_)) {
            let bucket = record.returned_at.as_secs() as usize / 5;
            if let Some(b) = buckets.get_mut(bucket) {
                *b += 1;
            }
        }
    }
    buckets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Polls `done` until it holds, for at most `timeout`.
fn wait_for(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            return Err(format!("no {what} within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits until a node leads and every node has applied the same last entry, twice in a row
/// (no client writes any more); returns that index.
fn converge(nodes: &[Node]) -> Result<u64, String> {
    let mut last = None;
    let mut agreed = None;
    wait_for(
        SETTLE_TIMEOUT,
        "agreement of the nodes' applied indexes",
        || {
            let infos: Vec<_> = nodes
                .iter()
                .filter_map(|n| n.info(Duration::from_secs(2)).ok())
                .collect();
            let field =
                |i: &BTreeMap<String, String>, name: &str| i.get(name).cloned().unwrap_or_default();
            let state: Vec<(String, String)> = infos
                .iter()
                .map(|i| (field(i, "applied_index"), field(i, "last_log_index")))
                .collect();
            let leads = infos.iter().any(|i| field(i, "role") == "leader");
            let same =
                state.len() == nodes.len() && state.iter().all(|s| *s == state[0] && s.0 == s.1);
            let settled = leads && same && last.as_ref() == Some(&state);
            if settled {
                agreed = state[0].0.parse().ok();
            }
            last = Some(state);
            settled
        },
    )
    .map_err(|e| format!("{e}: last seen (applied, last log) {last:?}"))?;
    agreed.ok_or_else(|| "an applied index that is not a number".to_string())
}

/// A node's whole store as it holds it (`READONLY`: no forwarding, no ReadIndex): each key's
/// value and absolute deadline (`PEXPIRETIME`, -1 for none).
fn dump(node: &Node) -> Result<BTreeMap<String, (String, i64)>, String> {
    let fail = |e: redis::RedisError| format!("cannot read node {}'s store: {e}", node.id);
    let mut c = node.connect(DUMP_TIMEOUT).map_err(fail)?;
    redis::cmd("READONLY").exec(&mut c).map_err(fail)?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).map_err(fail)?;
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("GET").arg(key).cmd("PEXPIRETIME").arg(key);
    }
    let answers: Vec<(String, i64)> = if keys.is_empty() {
        Vec::new()
    } else {
        let flat: Vec<redis::Value> = pipe.query(&mut c).map_err(fail)?;
        flat.chunks(2)
            .map(|pair| {
                let value: String = redis::from_redis_value(&pair[0]).map_err(fail)?;
                let deadline: i64 = redis::from_redis_value(&pair[1]).map_err(fail)?;
                Ok((value, deadline))
            })
            .collect::<Result<_, String>>()?
    };
    Ok(keys.into_iter().zip(answers).collect())
}
