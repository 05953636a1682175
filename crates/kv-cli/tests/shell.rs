//! The shell: the commands and replies of `kv serve` (one command table), printed as
//! redis-cli prints them; redis-cli's quoting; HELP; the PUT alias; errors that keep the
//! shell going; Ctrl-C that cuts a long reply; and `kv --connect` against a `kv serve`
//! child, compared line for line with redis-cli itself where it is installed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{assert_success, kv, run, run_in, run_on, stderr, stdout, Shell};

/// Runs `script` through `kv --dir DIR` on pipes; returns what it printed.
fn shell_output(dir: &Path, script: &str) -> String {
    let output = run_on(dir, &[], script.as_bytes());
    assert_success(&output);
    stdout(&output)
}

#[test]
fn each_line_is_answered_before_the_next_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask("SET user:1 ada"), "OK");
    assert_eq!(shell.ask("PUT user:2 bob"), "OK", "PUT is SET");
    assert_eq!(shell.ask("GET user:1"), "\"ada\"");
    assert_eq!(shell.ask("GET user:9"), "(nil)");
    assert_eq!(shell.ask("DEL user:1 user:9"), "(integer) 1");
    assert_eq!(shell.ask("EXISTS user:1 user:2"), "(integer) 1");
    assert_eq!(shell.ask("QUIT"), "OK");
    let (status, rest) = shell.finish();
    assert!(status.success());
    assert!(rest.is_empty(), "nothing after QUIT: {rest:?}");

    let mut again = Shell::start(dir.path(), &[]);
    assert_eq!(
        again.ask("GET user:2"),
        "\"bob\"",
        "the store was closed and kept"
    );
    again.send("exit");
    let (status, rest) = again.finish();
    assert!(status.success());
    assert!(rest.is_empty(), "EXIT answers nothing: {rest:?}");
}

#[test]
fn every_reply_kind_prints_as_redis_cli_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"SET greeting "hello world"
GET greeting
GET absent
INCR counter
INCRBY counter -3
KEYS nothing*
MSET k1 1 k2 2 k3 3 k4 4 k5 5 k6 6 k7 7 k8 8 k9 9 k10 10
MGET k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 absent
SET bin "a\x00\xff\n\r\t\a\b\"\\ \x7e"
GET bin
SET bin "é"
GET bin
INCR greeting
MULTI
INCR counter
MGET counter k1
SET k1 v BADOPT
EXEC
SCAN 0 MATCH greet* COUNT 100
WATCH counter
UNWATCH
HELLO 3 SETNAME me
CONFIG GET appendonly
CONFIG GET nothing
HELLO 2
CONFIG GET appendonly
"#;
    let expected = r#"OK
"hello world"
(nil)
(integer) 1
(integer) -2
(empty array)
OK
 1) "1"
 2) "2"
 3) "3"
 4) "4"
 5) "5"
 6) "6"
 7) "7"
 8) "8"
 9) "9"
10) "10"
11) (nil)
OK
"a\x00\xff\n\r\t\a\b\"\\ ~"
OK
"\xc3\xa9"
(error) ERR value is not an integer or out of range
OK
QUEUED
QUEUED
QUEUED
1) (integer) -1
2) 1) "-1"
   2) "1"
3) (error) ERR syntax error
1) "0"
2) 1) "greeting"
OK
OK
1# "server" => "redis"
2# "version" => "7.2.0"
3# "proto" => (integer) 3
4# "id" => (integer) 1
5# "mode" => "standalone"
6# "role" => "master"
7# "modules" => (empty array)
1# "appendonly" => "yes"
(empty hash)
 1) "server"
 2) "redis"
 3) "version"
 4) "7.2.0"
 5) "proto"
 6) (integer) 2
 7) "id"
 8) (integer) 1
 9) "mode"
10) "standalone"
11) "role"
12) "master"
13) "modules"
14) (empty array)
1) "appendonly"
2) "yes"
"#;
    assert_eq!(shell_output(dir.path(), script), expected);
}

#[test]
fn lines_are_split_as_redis_cli_splits_them() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"SET "a key" 'single "quoted" \n'
GET "a key"
SET 'it\'s' ab"c d"
GET 'it\'s'
GET it's
GET "\x41\x42\q\\"
SET "\x41\x42\q\\" hex
GET ABq\
GET AB\q\
  set   spaced	 out  
GET spaced
SET k "open
SET k 'open
SET k "closed"glued
GET k
"#;
    let expected = r#"OK
"single \"quoted\" \\n"
OK
"abc d"
Invalid argument(s)
(nil)
OK
"hex"
(nil)
OK
"out"
Invalid argument(s)
Invalid argument(s)
Invalid argument(s)
(nil)
"#;
    assert_eq!(shell_output(dir.path(), script), expected);
}

#[test]
fn errors_answer_and_the_shell_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_on(
        dir.path(),
        &[],
        b"FROB k\nGET\nSET k v EX 0\nSET k v EX soon\nEXEC\nSET k \"unbalanced\nSET k v\nGET k\n",
    );
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        "(error) ERR unknown command 'FROB', with args beginning with: 'k' \n\
         (error) ERR wrong number of arguments for 'get' command\n\
         (error) ERR invalid expire time in 'set' command\n\
         (error) ERR value is not an integer or out of range\n\
         (error) ERR EXEC without MULTI\n\
         Invalid argument(s)\n\
         OK\n\
         \"v\"\n"
    );
}

#[test]
fn error_lines_keep_terminal_escapes_and_nuls_off_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut script = b"\x1b[2JBOOM k\n".to_vec();
    script.extend(b"GET a\x00b\n");
    script.extend(b"SET ");
    script.extend(std::iter::repeat_n(b'X', 10_000_000));
    script.extend(b" v \x1b[31m\n");
    let output = run_on(dir.path(), &[], &script);
    assert_success(&output);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one answer a line: {lines:?}");
    assert_eq!(
        lines[0],
        r"(error) ERR unknown command '\x1b[2JBOOM', with args beginning with: 'k' "
    );
    assert_eq!(lines[1], "(nil)", "a NUL ends the line, as in redis-cli");
    assert_eq!(lines[2], "(error) ERR syntax error");
    assert!(
        !out.bytes().any(|b| b == 0x1b || b == 0),
        "no raw escape or NUL reaches the terminal"
    );
}

#[test]
fn help_lists_the_commands_and_shows_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = shell_output(dir.path(), "HELP\n");
    for syntax in [
        "  GET key\n",
        "  SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]\n",
        "  CLIENT SETNAME connection-name\n",
        "  BGREWRITEAOF\n",
    ] {
        assert!(out.contains(syntax), "HELP shows {syntax:?}: {out}");
    }
    assert!(out.contains("PUT = SET"), "{out}");
    assert_eq!(
        shell_output(dir.path(), "help get\n"),
        "\n  GET key\n  summary: The value of a key, or nil.\n  group: string\n\n"
    );
    let put = shell_output(dir.path(), "HELP PUT\n");
    assert!(
        put.starts_with("\n  SET key value [NX|XX] [GET] [EX seconds"),
        "{put}"
    );
    assert!(put.contains("(the shell's PUT is this command)"), "{put}");
    let setname = shell_output(dir.path(), "HELP client setname\n");
    assert!(
        setname.contains("  CLIENT SETNAME connection-name\n"),
        "{setname}"
    );
    assert_eq!(
        shell_output(dir.path(), "HELP frob\nPING\n"),
        "(error) no help for \"frob\": HELP lists the commands\nPONG\n"
    );
}

#[test]
fn the_shell_words_are_aliases_of_server_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = shell_output(
        dir.path(),
        "put k v EX 100\nPut k2 v2\nTTL k\nSYNC\nCOMPACT\nGET k2\nSTATS\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..6],
        ["OK", "OK", "(integer) 100", "OK", "OK", "\"v2\""]
    );
    // STATS is INFO store, printed raw as redis-cli prints INFO.
    assert_eq!(lines[6], "# Store", "(lines() drops the \\r of \\r\\n)");
    assert!(out.contains("kv_keys:2\r\n"), "{out}");
    assert!(out.contains("kv_compactions_total:1\r\n"), "{out}");
}

#[test]
fn a_ttl_entry_disappears_after_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask("SET short lived PX 300"), "OK");
    assert_eq!(shell.ask("GET short"), "\"lived\"");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(shell.ask("GET short"), "(nil)");
    assert_eq!(shell.ask("TTL short"), "(integer) -2");
}

#[test]
fn blank_lines_and_comments_get_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        shell_output(dir.path(), "\n   \n# a comment\n  # another\nPING\n"),
        "PONG\n"
    );
}

#[test]
fn kv_with_no_arguments_reads_stdin_on_kv_data_and_kv_shell_does_the_same() {
    let cwd = tempfile::tempdir().unwrap();
    let output = run_in(Some(cwd.path()), &[], b"SET a 1\n");
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\n");
    assert!(
        cwd.path().join("kv-data/wal").is_dir(),
        "the store is ./kv-data"
    );
    let output = run_in(Some(cwd.path()), &["shell"], b"GET a\nSET b 2\n");
    assert_success(&output);
    assert_eq!(stdout(&output), "\"1\"\nOK\n");
}

#[test]
fn input_that_is_not_utf8_is_taken_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &["--dir", dir.path().to_str().unwrap()],
        b"SET k\xfe v\xff\nGET k\xfe\nGET \"k\\xfe\"\n",
    );
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\n\"v\\xff\"\n\"v\\xff\"\n");
}

/// Writes `count` keys straight through the library (faster than a script).
fn store_with_keys(dir: &Path, count: usize) {
    let store = kv_store::KvStore::open_with(
        dir,
        kv_store::Options::default().durability(kv_store::Durability::None),
    )
    .unwrap();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        let mut batch = kv_store::WriteBatch::new();
        for i in chunk {
            batch.put(format!("key:{i:07}"), "v");
        }
        store.write(batch).unwrap();
    }
    store.close().unwrap();
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {name} {pid}");
}

#[test]
fn ctrl_c_cuts_a_long_reply_and_the_shell_goes_on() {
    const KEYS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    store_with_keys(dir.path(), KEYS);
    let mut child = common::spawn_piped(&mut kv(&["--dir", dir.path().to_str().unwrap()]));
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"KEYS *\n").unwrap();
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.ends_with(") \"key:0000000\"\n"), "{first:?}");
    // kv now blocks on the full pipe, in the middle of the reply.
    signal(child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(300));
    stdin.write_all(b"PING\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "kv goes on after Ctrl-C: {status:?}");
    let lines: Vec<&str> = rest.lines().collect();
    assert_eq!(lines[lines.len() - 2..], ["(interrupted)", "PONG"]);
    assert!(
        lines.len() < KEYS / 2,
        "the reply was cut: {} of {KEYS} keys printed",
        lines.len()
    );
}

#[test]
fn a_ctrl_c_during_the_open_ends_kv_once_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    store_with_keys(dir.path(), 200_000);
    // Standard input stays open and empty: only the Ctrl-C can end kv.
    let mut child = common::spawn_piped(&mut kv(&["--dir", dir.path().to_str().unwrap()]));
    // kv catches SIGINT before it opens the store, which takes a while with this many keys.
    wait_until_catching_sigint(child.id());
    signal(child.id(), "-INT");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kv went on after a Ctrl-C during its open");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "", "no command ran");
    assert_eq!(shell_output(dir.path(), "DBSIZE\n"), "(integer) 200000\n");
}

/// Waits until process `pid` has a handler for SIGINT (`SigCgt` in its status).
fn wait_until_catching_sigint(pid: u32) {
    const SIGINT_BIT: u64 = 1 << (2 - 1);
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0);
        if caught & SIGINT_BIT != 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "kv never caught SIGINT"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_second_ctrl_c_before_the_first_is_taken_ends_kv() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask("PING"), "PONG");
    // Idle: nothing takes the first one.
    signal(shell.child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(shell.ask("PING"), "PONG", "one Ctrl-C does not end kv");
    signal(shell.child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(200));
    signal(shell.child.id(), "-INT");
    let status = shell.child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let again = shell_output(dir.path(), "PING\n");
    assert_eq!(again, "PONG\n", "the store opens again");
}

/// A `kv serve` child on a free port of 127.0.0.1, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    port: String,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let (child, addr) = common::spawn_serve(dir, extra);
        Server {
            child,
            port: addr.port().to_string(),
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kv --connect` to it with `extra` arguments, `script` on standard input.
    fn kv(&self, extra: &[&str], script: &str) -> Output {
        let mut command = kv(&["--connect", &self.address()]);
        command.args(extra).env_remove("REDISCLI_AUTH");
        pipe(command, script)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "-TERM");
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` with `script` on its standard input.
fn pipe(command: Command, script: &str) -> Output {
    common::output_of(command, script.as_bytes())
}

#[test]
fn connect_runs_the_same_shell_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let output = server.kv(
        &[],
        "PUT k v\nGET k\nFROB\nSET k \"open\nMGET k nope\nHELP get\nHELLO 3\nCONFIG GET appendonly\nQUIT\nGET k\n",
    );
    assert_success(&output);
    let out = stdout(&output);
    assert_eq!(
        out.replace(char::is_numeric, "N"),
        "OK\n\"v\"\n\
         (error) ERR unknown command 'FROB', with args beginning with: \n\
         Invalid argument(s)\n\
         N) \"v\"\nN) (nil)\n\
         \n  GET key\n  summary: The value of a key, or nil.\n  group: string\n\n\
         N# \"server\" => \"redis\"\nN# \"version\" => \"N.N.N\"\nN# \"proto\" => (integer) N\n\
         N# \"id\" => (integer) N\nN# \"mode\" => \"standalone\"\nN# \"role\" => \"master\"\n\
         N# \"modules\" => (empty array)\n\
         N# \"appendonly\" => \"yes\"\n\
         OK\n",
        "{out}"
    );
    // What the shell wrote is in the server's store.
    let again = server.kv(&[], "GET k\n");
    assert_eq!(stdout(&again), "\"v\"\n");
}

#[test]
fn connect_authenticates_with_pass_and_fails_clearly_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--requirepass", "sesame"]);
    let denied = server.kv(&[], "GET k\n");
    // The connection itself is made; the commands are refused until AUTH.
    assert_eq!(stdout(&denied), "(error) NOAUTH Authentication required.\n");
    let allowed = server.kv(&["--pass", "sesame"], "SET k v\nGET k\n");
    assert_success(&allowed);
    assert_eq!(stdout(&allowed), "OK\n\"v\"\n");
    let mut from_env = kv(&["--connect", &server.address()]);
    from_env.env("REDISCLI_AUTH", "sesame");
    assert_eq!(stdout(&pipe(from_env, "GET k\n")), "\"v\"\n");
    let wrong = server.kv(&["--pass", "nope"], "GET k\n");
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("could not connect to"),
        "{}",
        stderr(&wrong)
    );
    drop(server);

    let gone = pipe(kv(&["--connect", "127.0.0.1:1"]), "PING\n");
    assert_eq!(gone.status.code(), Some(3));
    assert!(
        stderr(&gone).contains("could not connect to 127.0.0.1:1"),
        "{}",
        stderr(&gone)
    );
    let bad = pipe(kv(&["--connect", "no-port"]), "PING\n");
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let misplaced = pipe(kv(&["--connect", "127.0.0.1:1", "get", "k"]), "");
    assert_eq!(misplaced.status.code(), Some(2), "{}", stderr(&misplaced));
}

#[test]
fn connect_exits_3_when_the_connection_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut child = common::spawn_piped(&mut kv(&["--connect", &server.address()]));
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"PING\n").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "PONG\n");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stdin.write_all(b"PING\n").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("the connection broke"),
        "{}",
        stderr(&output)
    );
}

/// The lines of the comparison with redis-cli: every reply kind of `kv serve`.
const SAME_AS_REDIS_CLI: &str = r#"SET greeting "hello world"
GET greeting
GET absent
INCR counter
KEYS nothing*
MSET k1 1 k2 2 k3 3 k4 4 k5 5 k6 6 k7 7 k8 8 k9 9 k10 10
MGET k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 absent
SET bin "a\x00\xff\n\r\t\a\b\"\\ \x7e"
GET bin
SET 'it\'s' ab"c d"
GET it's
SET k "open
FROB x y
GET
INCR greeting
MULTI
INCR counter
MGET counter k1
SET k1 v BADOPT
EXEC
SCAN 0 MATCH greet* COUNT 100
TTL greeting
EXPIRE greeting 100
TTL greeting
INCRBYFLOAT f 1.5
HELLO 3
CONFIG GET appendonly
CONFIG GET nothing
MGET absent greeting
PING
ECHO "a b"
HELLO 2
CONFIG GET appendonly
DEL greeting bin absent
DBSIZE
"#;

/// `HELLO`'s connection id differs between two connections: masked, in every layout
/// (`4# "id" => (integer) 7`, ` 7) "id"` then ` 8) (integer) 7`, `id 7`, `id` then `7`).
fn mask_ids(text: &str) -> String {
    let mut masked = Vec::new();
    let mut after_id = false;
    for line in text.lines() {
        let is_id = line.contains("\"id\" => ") || line.starts_with("id ") || after_id;
        after_id = line.ends_with(") \"id\"") || line == "id";
        masked.push(if is_id { "(connection id)" } else { line });
    }
    masked.join("\n")
}

#[test]
fn connect_prints_exactly_what_redis_cli_prints() {
    let redis_cli = Path::new("/usr/bin/redis-cli");
    if !redis_cli.exists() {
        eprintln!("skipped: /usr/bin/redis-cli is not installed (Debian package redis-tools)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // redis-cli prints for a terminal on a pipe when told --no-raw; kv always does, and
    // prints as `redis-cli --raw` when told --raw.
    for (redis_cli_mode, kv_args) in [("--no-raw", &[][..]), ("--raw", &["--raw"][..])] {
        let mut command = Command::new(redis_cli);
        command.args(["-p", &server.port, redis_cli_mode]);
        let by_redis_cli = pipe(command, SAME_AS_REDIS_CLI);
        assert_success(&by_redis_cli);
        let flushed = server.kv(&[], "FLUSHALL\n");
        assert_eq!(stdout(&flushed), "OK\n");
        let by_kv = server.kv(kv_args, SAME_AS_REDIS_CLI);
        assert_success(&by_kv);
        // --raw prints the bytes of strings, not all UTF-8.
        let lossy = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();
        let (expected, got) = (lossy(&by_redis_cli), lossy(&by_kv));
        assert!(expected.lines().count() > 60, "{expected}");
        assert_eq!(mask_ids(&got), mask_ids(&expected), "{redis_cli_mode}");
        assert_eq!(stdout(&server.kv(&[], "FLUSHALL\n")), "OK\n");
    }
}
