//! `kv serve` as a process: the ready line, protected mode, a clean stop on SIGTERM, and
//! no acknowledged write lost to a SIGKILL under load from several connections, one
//! request at a time or pipelined.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn serve(dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    common::spawn_serve(dir, extra)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `request`, reads one reply line; `None` once the server is gone.
fn request(stream: &mut TcpStream, request: &[u8]) -> Option<String> {
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let mut byte = [0u8];
    while !reply.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            _ => return None,
        }
    }
    String::from_utf8(reply).ok()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_stops_cleanly_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(dir.path(), &[]);
    let mut c = connect(addr);
    assert_eq!(
        request(&mut c, b"SET greeting hello\r\n").unwrap(),
        "+OK\r\n"
    );
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success(), "exit 0 after SIGTERM");
    let (mut child, addr) = serve(dir.path(), &["--requirepass", "pw"]);
    let mut c = connect(addr);
    assert_eq!(
        request(&mut c, b"GET greeting\r\n").unwrap(),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(request(&mut c, b"AUTH pw\r\n").unwrap(), "+OK\r\n");
    assert_eq!(request(&mut c, b"GET greeting\r\n").unwrap(), "$5\r\n");
    signal(&child, "-INT");
    assert!(child.wait().unwrap().success(), "exit 0 after SIGINT");
}

#[test]
fn the_batch_window_reaches_the_served_store() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [common::DurabilityCase<'_>; 3] = [
        (&[], "batch", "5"),
        (&["--batch-window", "1000"], "batch", "1000"),
        (&["--durability", "sync"], "sync", "0"),
    ];
    for case in cases {
        let (mut child, addr) = serve(dir.path(), case.0);
        let mut c = connect(addr);
        let header = request(&mut c, b"INFO persistence\r\n").unwrap();
        let length: usize = header.trim_start_matches('$').trim_end().parse().unwrap();
        let mut body = vec![0; length + 2];
        c.read_exact(&mut body).unwrap();
        common::assert_durability_shown(&String::from_utf8(body).unwrap(), case);
        signal(&child, "-TERM");
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn a_public_address_without_a_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir.path())
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env_remove("KV_REQUIREPASS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without a password"), "{stderr}");
    assert!(stderr.contains("--protected-mode no"), "{stderr}");
}

#[test]
fn a_public_raft_address_without_a_cluster_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0", "--node-id", "1"])
        .args(["--raft-bind", "0.0.0.0:0"])
        .env_remove("KV_REQUIREPASS")
        .env_remove("KV_CLUSTER_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without a cluster secret"), "{stderr}");
    assert!(stderr.contains("--cluster-secret"), "{stderr}");
    // Refused before the directory became a node's.
    assert!(!dir.path().join("node-id").exists());
}

#[test]
fn no_acknowledged_set_is_lost_to_a_sigkill_under_load() {
    const CONNECTIONS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    // More runtime threads than connections: every connection's task on a thread of its own.
    // A batch window of an hour: no fdatasync runs before the kill, so what survives it is
    // what the OS held, whatever the window (the help's promise).
    let (mut child, addr) = serve(dir.path(), &["--threads", "5", "--batch-window", "3600000"]);
    // Each connection's last acknowledged write.
    let acked: Vec<Option<u64>> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..CONNECTIONS)
            .map(|thread| {
                scope.spawn(move || {
                    let mut c = connect(addr);
                    let mut last = None;
                    for unit in 0u64.. {
                        let key = format!("t{thread}:{unit}");
                        let request_bytes = format!(
                            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{unit}\r\n",
                            key.len(),
                            unit.to_string().len()
                        );
                        match request(&mut c, request_bytes.as_bytes()) {
                            Some(reply) => {
                                assert_eq!(reply, "+OK\r\n");
                                last = Some(unit);
                            }
                            None => break,
                        }
                    }
                    last
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        child.kill().unwrap(); // SIGKILL, mid-load.
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    child.wait().unwrap();
    assert!(
        acked.iter().all(|a| a.is_some_and(|n| n > 10)),
        "every connection wrote: {acked:?}"
    );

    let (mut child, addr) = serve(dir.path(), &[]);
    let mut c = connect(addr);
    for (thread, last) in acked.iter().enumerate() {
        let last = last.unwrap();
        for unit in [0, last / 2, last] {
            let reply = request(&mut c, format!("GET t{thread}:{unit}\r\n").as_bytes()).unwrap();
            assert_eq!(
                reply,
                format!("${}\r\n", unit.to_string().len()),
                "t{thread}:{unit} lost"
            );
            let value = request(&mut c, b"").unwrap();
            assert_eq!(value, format!("{unit}\r\n"));
        }
    }
    // Every acknowledged key: EXISTS counts each one present.
    for (thread, last) in acked.iter().enumerate() {
        let last = last.unwrap();
        let mut exists = format!("*{}\r\n$6\r\nEXISTS\r\n", last + 2);
        for unit in 0..=last {
            let key = format!("t{thread}:{unit}");
            exists.push_str(&format!("${}\r\n{key}\r\n", key.len()));
        }
        let present = request(&mut c, exists.as_bytes()).unwrap();
        assert_eq!(
            present,
            format!(":{}\r\n", last + 1),
            "thread {thread}: keys lost"
        );
    }
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn no_acknowledged_pipelined_write_is_lost_to_a_sigkill_under_load() {
    const CONNECTIONS: usize = 6;
    const DEPTH: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(dir.path(), &["--durability", "sync"]);
    // Per connection: the SETs acknowledged (in order, so a count) and the last INCR reply.
    let acked: Vec<(u64, i64)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..CONNECTIONS)
            .map(|thread| {
                scope.spawn(move || {
                    let mut c = connect(addr);
                    let (mut sets, mut count) = (0u64, 0i64);
                    // Half the connections end each pipeline with a DBSIZE: a command
                    // that may stall, so their pipelines are answered, and their writes
                    // committed, on the blocking pool rather than on the writer thread.
                    let counts = thread % 2 == 1;
                    'pipelines: for first in (0u64..).step_by(DEPTH as usize) {
                        // One write: DEPTH SETs of new keys, each followed by an INCR.
                        let mut pipeline = String::new();
                        for unit in first..first + DEPTH {
                            let key = format!("t{thread}:{unit}");
                            pipeline.push_str(&format!(
                                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{unit}\r\n",
                                key.len(),
                                unit.to_string().len()
                            ));
                            pipeline.push_str(&format!("INCR count{thread}\r\n"));
                        }
                        if counts {
                            pipeline.push_str("DBSIZE\r\n");
                        }
                        if c.write_all(pipeline.as_bytes()).is_err() {
                            break;
                        }
                        for _ in first..first + DEPTH {
                            match request(&mut c, b"") {
                                Some(reply) => {
                                    assert_eq!(reply, "+OK\r\n");
                                    sets += 1;
                                }
                                None => break 'pipelines,
                            }
                            match request(&mut c, b"") {
                                Some(reply) => count = reply[1..reply.len() - 2].parse().unwrap(),
                                None => break 'pipelines,
                            }
                        }
                        if counts {
                            match request(&mut c, b"") {
                                Some(reply) => assert!(reply.starts_with(':'), "{reply}"),
                                None => break 'pipelines,
                            }
                        }
                    }
                    (sets, count)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        child.kill().unwrap(); // SIGKILL, mid-load.
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    child.wait().unwrap();
    assert!(
        acked.iter().all(|&(sets, _)| sets > DEPTH),
        "every connection wrote several pipelines: {acked:?}"
    );

    let (mut child, addr) = serve(dir.path(), &[]);
    let mut c = connect(addr);
    for (thread, &(sets, count)) in acked.iter().enumerate() {
        let mut exists = format!("*{}\r\n$6\r\nEXISTS\r\n", sets + 1);
        for unit in 0..sets {
            let key = format!("t{thread}:{unit}");
            exists.push_str(&format!("${}\r\n{key}\r\n", key.len()));
        }
        let present = request(&mut c, exists.as_bytes()).unwrap();
        assert_eq!(
            present,
            format!(":{sets}\r\n"),
            "thread {thread}: SETs lost"
        );
        // At least every acknowledged increment (more may have been written unanswered).
        let header = request(&mut c, format!("GET count{thread}\r\n").as_bytes()).unwrap();
        assert!(
            header.starts_with('$'),
            "thread {thread}: the counter is lost"
        );
        let value = request(&mut c, b"").unwrap();
        let kept: i64 = value.trim_end().parse().unwrap();
        assert!(
            kept >= count,
            "thread {thread}: {kept} kept, {count} acknowledged"
        );
    }
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_client_whose_replies_pass_the_output_limit_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(dir.path(), &["--output-limit", "1000"]);
    let mut c = connect(addr);
    let value = "v".repeat(2000);
    let set = format!(
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{value}\r\n",
        value.len()
    );
    assert_eq!(request(&mut c, set.as_bytes()).unwrap(), "+OK\r\n");
    // The reply alone is over the limit: the connection closes instead.
    assert_eq!(request(&mut c, b"GET k\r\n"), None);
    // Others go on, and a reply under the limit is sent.
    let mut c = connect(addr);
    assert_eq!(request(&mut c, b"STRLEN k\r\n").unwrap(), ":2000\r\n");
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());

    // A write timeout of 0 would close every connection at once: refused.
    let output = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0", "--write-timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// Whether process `pid` has directory `dir` open (as the store's open does to lock it).
fn has_open(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == dir))
}

#[test]
fn sigint_during_a_slow_open_closes_the_store_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    let store = kv_store::KvStore::open(&path).unwrap();
    store.put("kept", "yes").unwrap();
    store.close().unwrap();
    // The SIGINT must land inside the open, which waits at most 250 ms for the lock held
    // here; on a loaded machine this thread may sleep longer than that between seeing
    // the open and signalling, and the open gives up first (exit 3, "open in another
    // process"): try again.
    for attempt in 1..=5 {
        match sigint_during_open(&path) {
            Some(stdout) => {
                assert_eq!(stdout, "", "it stopped before listening");
                let store = kv_store::KvStore::open(&path).unwrap();
                assert_eq!(store.get("kept").unwrap(), "yes");
                return;
            }
            None => eprintln!("attempt {attempt}: the open gave up on the lock first"),
        }
    }
    panic!("the SIGINT never landed inside the open in 5 attempts");
}

/// Starts `kv serve` on `path` while this process holds the store's directory lock (so
/// its open waits for the lock: kv-wal retries a held lock for 250 ms), SIGINTs it once
/// it has the directory open, and gives back its stdout if it exited 0, or `None` if the
/// open gave up on the lock before the signal came.
fn sigint_during_open(path: &Path) -> Option<String> {
    let lock = std::fs::File::open(path).unwrap();
    lock.try_lock().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(path)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("KV_REQUIREPASS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has the directory open it is inside the store's open: SIGINT it there.
    let started = std::time::Instant::now();
    while !has_open(child.id(), path) {
        assert!(started.elapsed() < Duration::from_secs(10), "never opened");
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, "-INT");
    drop(lock);
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    if status.code() == Some(3) && stderr.contains("open in another process") {
        return None;
    }
    assert!(
        status.success(),
        "SIGINT during the open: {status}: {stderr}"
    );
    Some(stdout)
}
