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
    if Command::new("redis-cli").arg("--version").output().is_err() {
        eprintln!("note: redis-cli is not installed (apt-get install redis-tools); test skipped");
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
