//! Through redis-cli itself (Debian's `redis-tools`): skipped, with a note, where it is
//! not installed.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use kv_server::ServerOptions;
use support::TestServer;

fn redis_cli(server: &TestServer, args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn redis_cli_works_against_the_server() {
    if !support::installed("redis-cli") {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    assert_eq!(redis_cli(&server, &["SET", "k", "v 1"], None), "OK\n");
    assert_eq!(redis_cli(&server, &["GET", "k"], None), "v 1\n");
    assert_eq!(
        redis_cli(&server, &["--no-raw", "INCR", "n"], None),
        "(integer) 1\n"
    );
    assert_eq!(
        redis_cli(&server, &["--no-raw", "GET", "nothing"], None),
        "(nil)\n"
    );
    assert_eq!(
        redis_cli(&server, &["--no-raw", "LPUSH", "l", "a"], None),
        "(error) ERR unknown command 'LPUSH', with args beginning with: 'l' 'a' \n"
    );
    // Commands on standard input, one a line, with redis-cli's quoting.
    let out = redis_cli(
        &server,
        &[],
        Some("SET 'a b' \"x\\ty\"\nMGET 'a b' n zz\nDBSIZE\n"),
    );
    assert_eq!(out, "OK\nx\ty\n1\n\n3\n");
}

#[test]
fn redis_benchmark_runs_against_the_server() {
    if !support::installed("redis-benchmark") {
        return;
    }
    let server = TestServer::start(ServerOptions::default());
    // Brief: a smoke run of each kind of line (inline PING, SET, GET, INCR, MSET, pipelined).
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args([
            "-t",
            "ping_inline,set,get,incr,mset",
            "-n",
            "2000",
            "-c",
            "4",
            "-P",
            "4",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Progress and result share a line, separated by carriage returns.
    let results: Vec<&str> = stdout.split(['\r', '\n']).collect();
    for test in [
        "PING_INLINE: ",
        "SET: ",
        "GET: ",
        "INCR: ",
        "MSET (10 keys): ",
    ] {
        assert!(
            results
                .iter()
                .any(|l| l.trim_start().starts_with(test) && l.contains("requests per second")),
            "{test} missing from:\n{stdout}"
        );
    }
    let mut c = server.client();
    let counter: i64 = redis::Commands::get(&mut c, "counter:__rand_int__").unwrap();
    assert_eq!(counter, 2000, "every INCR counted");
}
