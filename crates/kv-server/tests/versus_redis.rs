//! The same commands sent to `kv serve` and to Redis 7 itself (Debian's `redis-server`,
//! started here on a Unix socket), and every reply compared byte for byte: Redis's behaviour is
//! the server's contract. Skipped, with a note, where `redis-server` is not installed.
//!
//! Where the two differ on purpose, the command is left out and the reason given:
//! - other types than strings (`LPUSH`, `HSET`, ...): unknown commands here;
//! - `SELECT 1`: one database here;
//! - `HELLO`'s version and id, `CONFIG GET`'s values, `SCAN`'s order, `RANDOMKEY`: what
//!   they answer is the server's own;
//! - `DBSIZE` after `SET ... EXAT` of a past instant: Redis 7.0 keeps that key, already
//!   expired, and counts it until it reclaims it; kv counts live keys.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kv_server::{ReplicatedServer, ServerOptions};
use proptest::prelude::*;
use support::{request, TestServer};

/// A `redis-server` child on a Unix socket of its own (no port to race for), with nothing
/// persisted; killed on drop.
struct Redis {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// `None` where `redis-server` is not installed, or off x86-64: elsewhere Redis's
    /// `long double` is not the x87's and C's `char` may be unsigned, so `INCRBYFLOAT` and
    /// glob ranges answer differently there by design.
    fn start() -> Option<Redis> {
        if !cfg!(target_arch = "x86_64") {
            eprintln!("note: not x86-64; the comparison with Redis is skipped");
            return None;
        }
        if !support::installed("redis-server") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut redis = Redis {
            child,
            socket,
            _dir: dir,
        };
        let started = Instant::now();
        while UnixStream::connect(&redis.socket).is_err() {
            if let Some(status) = redis.child.try_wait().unwrap() {
                panic!("redis-server exited before it listened: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen on {}",
                redis.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection that sends one command and reads back its whole reply, as raw bytes.
struct Conn {
    writer: Box<dyn Write + Send>,
    reader: BufReader<Box<dyn Read + Send>>,
}

impl Conn {
    fn tcp(server: &TestServer) -> Conn {
        let stream = server.raw();
        Conn::over(stream.try_clone().unwrap(), stream)
    }

    fn unix(path: &Path) -> Conn {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn::over(stream.try_clone().unwrap(), stream)
    }

    fn over(reader: impl Read + Send + 'static, writer: impl Write + Send + 'static) -> Conn {
        Conn {
            reader: BufReader::new(Box::new(reader)),
            writer: Box::new(writer),
        }
    }

    fn call(&mut self, args: &[Vec<u8>]) -> Vec<u8> {
        self.writer.write_all(&request(args)).unwrap();
        let mut reply = Vec::new();
        self.read_reply(&mut reply);
        reply
    }

    /// Sends every request in one write; [`replies`](Self::replies) reads their replies.
    fn send_pipeline(&mut self, requests: &[Vec<Vec<u8>>]) {
        let all: Vec<u8> = requests.iter().flat_map(|args| request(args)).collect();
        self.writer.write_all(&all).unwrap();
    }

    /// The next `count` replies.
    fn replies(&mut self, count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let mut reply = Vec::new();
                self.read_reply(&mut reply);
                reply
            })
            .collect()
    }

    /// Appends one whole RESP2 reply (the only protocol these tests speak), nested ones
    /// included.
    fn read_reply(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.reader.read_until(b'\n', out).unwrap();
        assert!(
            out[start..].ends_with(b"\r\n"),
            "connection closed mid-reply"
        );
        let header = String::from_utf8_lossy(&out[start..out.len() - 2]).into_owned();
        let (kind, count) = header.split_at(1);
        let count: i64 = match kind {
            "$" | "*" => count.parse().unwrap(),
            _ => return,
        };
        match kind {
            _ if count < 0 => {}
            "$" => {
                let mut body = vec![0; count as usize + 2];
                self.reader.read_exact(&mut body).unwrap();
                out.extend_from_slice(&body);
            }
            _ => (0..count).for_each(|_| self.read_reply(out)),
        }
    }
}

/// Both servers, empty, one connection to each.
struct Pair {
    kv: Conn,
    redis: Conn,
    _servers: (TestServer, Redis),
}

impl Pair {
    fn start() -> Option<Pair> {
        let redis = Redis::start()?;
        Some(Pair::beside(
            TestServer::start(ServerOptions::default()),
            redis,
        ))
    }

    /// Redis beside a replicated node (`kv serve --node-id`), a cluster of its own: its
    /// writes go through Raft and a staged view of the store (`replicated.rs`,
    /// `staged.rs`), another path than the single node's.
    fn start_replicated() -> Option<Pair> {
        let redis = Redis::start()?;
        Some(Pair::beside(replicated_node(), redis))
    }

    fn beside(kv: TestServer, redis: Redis) -> Pair {
        Pair {
            kv: Conn::tcp(&kv),
            redis: Conn::unix(&redis.socket),
            _servers: (kv, redis),
        }
    }

    /// Runs `args` on both; the two replies.
    fn both(&mut self, args: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        (self.kv.call(args), self.redis.call(args))
    }
}

/// A replicated server on 127.0.0.1:0 over a `kv_raft::Node`, initialized as a cluster of
/// one and ready for writes.
fn replicated_node() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (raft_tx, raft_rx) = std::sync::mpsc::channel();
    let kv = TestServer::run(dir, move |listening, stopped| async move {
        let raft = "127.0.0.1:0".parse().unwrap();
        let node = kv_raft::Node::start(&path, kv_raft::NodeOptions::new(1, raft))
            .await
            .unwrap();
        let options = ServerOptions {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..ServerOptions::default()
        };
        let server = ReplicatedServer::bind(node.clone(), options).await?;
        raft_tx.send(node.raft_addr()).unwrap();
        listening.send(server.local_addr()?).unwrap();
        server
            .run_until(async {
                stopped.await.ok();
            })
            .await?;
        node.shutdown().await.unwrap();
        Ok(())
    });
    let raft = raft_rx.recv().unwrap();
    let mut conn = Conn::tcp(&kv);
    let init = [
        "KVRAFT",
        "INIT",
        "1",
        &raft.to_string(),
        &kv.addr.to_string(),
    ];
    let init = init.map(|word| word.as_bytes().to_vec());
    assert_eq!(conn.call(&init), b"+OK\r\n");
    // Writable once it has elected itself.
    let set = [b"SET".to_vec(), b"probe".to_vec(), b"1".to_vec()];
    let started = Instant::now();
    while conn.call(&set) != b"+OK\r\n" {
        assert!(started.elapsed() < Duration::from_secs(30), "no leader");
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.call(&[b"DEL".to_vec(), b"probe".to_vec()]);
    kv
}

/// A line split as redis-cli splits it, for the scripts below: words, or double quotes.
fn words(line: &str) -> Vec<Vec<u8>> {
    let mut args = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let (word, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').expect("a closing quote");
                (&quoted[..end], &quoted[end + 1..])
            }
            None => rest.split_at(rest.find(' ').unwrap_or(rest.len())),
        };
        args.push(word.as_bytes().to_vec());
        rest = after.trim_start();
    }
    args
}

/// Every string and key command, with the options and the mistakes clients make; each line
/// is run on both servers in order and must be answered identically.
const SCRIPT: &str = r#"
FLUSHALL
SET k v
SET k v EX 0
SET k v EX -1
SET k v PX 0
SET k v EX abc
SET k v EX 10 PX 100
SET k v NX XX
SET k v EX 10 KEEPTTL
SET k v GET NX
SET k v KEEPTTL
SET k v EXAT 0
SET k v EX 9999999999999999
SET k v foo
SET k
SETNX k w
SETNX k2 w
SETEX k 0 v
SETEX k abc v
PSETEX k 0 v
SETEX k 100 v
GETSET k x
GETDEL k
GETDEL k
SET n 10
INCR n
INCRBY n -20
DECRBY n -9223372036854775808
INCRBY n abc
INCRBY n 9223372036854775807
SET big 9223372036854775807
INCR big
SET small -9223372036854775808
DECR small
SET sp " 12"
INCR sp
SET plus +5
INCR plus
SET lead 007
INCR lead
SET f 1.5
INCR f
INCRBYFLOAT f 0.1
INCRBYFLOAT f abc
INCRBYFLOAT f 12345.6789
INCRBYFLOAT f 1e308
INCRBYFLOAT f 1e5000
INCRBYFLOAT f inf
INCRBYFLOAT f 0x1p-2
INCRBYFLOAT f " 1"
SET f 1e15
INCRBYFLOAT f 0.1
SET f 5e-18
INCRBYFLOAT f 0
INCRBYFLOAT fresh -3.0000
APPEND a hello
APPEND a " world"
STRLEN a
GETRANGE a 0 4
GETRANGE a -5 -1
GETRANGE a 5 3
GETRANGE a -1 -100
GETRANGE a 0 -100
GETRANGE a -100 100
GETRANGE nokey 0 10
GETRANGE a 0 abc
SETRANGE a 6 WORLD
SETRANGE a 20 X
GET a
SETRANGE newk 3 abc
GET newk
SETRANGE newk2 0 ""
EXISTS newk2
SETRANGE a -1 x
SETRANGE a 4102444800 ""
SETRANGE nokey 4102444800 ""
SETRANGE a 4102444800 x
SELECT 9223372036854775807
SELECT 2147483648
EXPIRE a x FOO
PEXPIREAT a 1.5 NX XX
MSET a 1 b
MSET a 1 b 2
MGET a b c
MSETNX a 1 c 3
MSETNX c 3 d 4
DEL a b c d zz
EXISTS a a c
TYPE a
TYPE n
RENAME nokey x
RENAME n n
RENAME n n2
RENAMENX n2 n2
SET q 1
RENAMENX n2 q
EXPIRE q 100
TTL q
EXPIRE q 100 NX
EXPIRE q 50 XX
EXPIRE q 200 GT
EXPIRE q 10 GT
EXPIRE q 30 LT
EXPIRE q 30 NX XX
EXPIRE q 30 GT LT
EXPIRE q 30 FOO
EXPIRE q abc
EXPIRE nokey 10
PERSIST q
PERSIST q
TTL q
TTL nokey
PTTL nokey
EXPIRETIME q
EXPIRETIME nokey
EXPIRE q 30 GT
EXPIRE q -1
EXISTS q
SET q 1
EXPIREAT q 99999999999
EXPIRETIME q
PEXPIRETIME q
EXPIRE q 9223372036854775807
PEXPIRE q 9223372036854775807
GETEX q PERSIST
TTL q
GETEX q EX 0
GETEX q EX 10 PX 10
GETEX q FOO
GETEX nokey EX 10
GETEX nokey EX abc
GETEX nokey EX 0
GETEX nokey PXAT -1
GETEX nokey EX
GETEX q EXAT 1
EXISTS q
ECHO
PING hello
DBSIZE
SELECT 0
SELECT abc
MULTI
SET m 1
INCR m
INCR m x
GET m
EXEC
MULTI
SET m 1
GET
EXEC
EXEC
DISCARD
MULTI
MULTI
DISCARD
MULTI
WATCH m
EXEC
WATCH m
MULTI
SET m 5
EXEC
UNWATCH
HELLO 4
HELLO abc
CLIENT SETNAME "a b"
CLIENT GETNAME
FOOBAR a b
GET
FLUSHDB FOO
DBSIZE
MGET n2 big m lead plus newk fresh small sp f k2 q k
"#;

#[test]
fn every_line_of_a_script_is_answered_as_redis_answers_it() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let mut differences = Vec::new();
    for line in SCRIPT.lines().filter(|line| !line.trim().is_empty()) {
        let (kv, redis) = pair.both(&words(line));
        if kv != redis {
            let (kv, redis) = (shown(&kv), shown(&redis));
            differences.push(format!("{line}\n  kv:    {kv:?}\n  redis: {redis:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// A time to live that is not one: zero, negative, not a number.
fn no_time() -> BoxedStrategy<String> {
    prop::sample::select(vec!["0", "-1", "x"])
        .prop_map(String::from)
        .boxed()
}

/// A time to live in seconds, drawn from a range wide enough that two are never equal: a
/// `GT` or `LT` between two equal relative deadlines is decided by whether both were set
/// in the same millisecond, on each server apart, which no comparison can rely on.
fn seconds() -> impl Strategy<Value = String> {
    (100u64..100_000_000).prop_map(|s| s.to_string())
}

/// The same in milliseconds.
fn millis() -> impl Strategy<Value = String> {
    (100_000u64..100_000_000_000).prop_map(|ms| ms.to_string())
}

/// One of the four keys the random sequences use.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from)
}

/// An `EXPIRE` condition, or none.
fn condition() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "NX", "XX", "GT", "LT"]).prop_map(String::from)
}

/// A random command: mostly string commands, some with absolute deadlines.
fn command() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![4 => string_command(), 1 => deadline_command()]
}

/// Deadlines given as instants (whose answers do not depend on the moment they are read),
/// and the commands that read them back.
fn deadline_command() -> impl Strategy<Value = Vec<String>> {
    // Seconds since the epoch: in 2100 and 2101, in the past, and not a number.
    let at = || {
        prop::sample::select(vec!["4102444800", "4133980800", "1", "0", "-5", "x"])
            .prop_map(String::from)
    };
    let at_ms = || {
        prop::sample::select(vec!["4102444800123", "4102444800000", "1000", "0", "x"])
            .prop_map(String::from)
    };
    prop_oneof![
        (key(), at(), condition()).prop_map(|(k, t, c)| args(vec!["EXPIREAT".into(), k, t, c])),
        (key(), at_ms(), condition()).prop_map(|(k, t, c)| args(vec!["PEXPIREAT".into(), k, t, c])),
        key().prop_map(|k| vec!["EXPIRETIME".into(), k]),
        key().prop_map(|k| vec!["PEXPIRETIME".into(), k]),
        // Only future instants for SET: Redis 7.0 stores a key set already past its
        // deadline and counts it in DBSIZE until it reclaims it; kv counts live keys.
        (
            key(),
            prop::sample::select(vec!["4102444800", "4133980800", "x"])
        )
            .prop_map(|(k, t)| vec!["SET".into(), k, "v".into(), "EXAT".into(), t.into()]),
        (
            key(),
            prop::sample::select(vec!["4102444800123", "4102444800000", "x"])
        )
            .prop_map(|(k, t)| vec!["SET".into(), k, "1".into(), "PXAT".into(), t.into()]),
        (key(), at()).prop_map(|(k, t)| vec!["GETEX".into(), k, "EXAT".into(), t]),
        (key(), at_ms()).prop_map(|(k, t)| vec!["GETEX".into(), k, "PXAT".into(), t]),
        (key(), no_time().prop_union(seconds().boxed())).prop_map(|(k, t)| vec![
            "SETEX".into(),
            k,
            t,
            "v".into()
        ]),
        (key(), no_time().prop_union(millis().boxed())).prop_map(|(k, t)| vec![
            "PSETEX".into(),
            k,
            t,
            "2".into()
        ]),
        (key(), key()).prop_map(|(a, b)| vec!["UNLINK".into(), a, b]),
        key().prop_map(|k| vec!["ECHO".into(), k]),
    ]
}

/// A random string command over four keys, with values that are integers, floats near
/// the edges, and text.
fn string_command() -> impl Strategy<Value = Vec<String>> {
    let value = prop_oneof![
        (-100i64..100).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "",
            "abc",
            "1.5",
            " 1",
            "9223372036854775806",
            "-9223372036854775807",
            "1e3",
            "0x10",
            "12345.6789",
            "-0",
            // Binary: a value holding the protocol's own line end, and a zero byte.
            "a\r\nb",
            "\0\u{7f}",
        ])
        .prop_map(String::from),
    ];
    let offset = || (-12i64..12).prop_map(|n| n.to_string());
    let ttl = || no_time().prop_union(seconds().boxed());
    let set_option = prop_oneof![
        prop::sample::select(vec![
            "", "NX", "XX", "GET", "KEEPTTL", "NX GET", "XX GET", "EX 0"
        ])
        .prop_map(String::from),
        seconds().prop_map(|s| format!("EX {s}")),
        millis().prop_map(|ms| format!("PX {ms}")),
        seconds().prop_map(|s| format!("EX {s} GET")),
    ];
    prop_oneof![
        (key(), value.clone(), set_option).prop_map(move |(k, v, o)| {
            let mut c = vec!["SET".to_string(), k, v];
            c.extend(o.split(' ').filter(|w| !w.is_empty()).map(String::from));
            c
        }),
        key().prop_map(|k| vec!["GET".into(), k]),
        key().prop_map(|k| vec!["GETDEL".into(), k]),
        (key(), value.clone()).prop_map(|(k, v)| vec!["GETSET".into(), k, v]),
        (key(), value.clone()).prop_map(|(k, v)| vec!["SETNX".into(), k, v]),
        (key(), value.clone()).prop_map(|(k, v)| vec!["APPEND".into(), k, v]),
        key().prop_map(|k| vec!["INCR".into(), k]),
        key().prop_map(|k| vec!["DECR".into(), k]),
        (key(), offset()).prop_map(|(k, n)| vec!["INCRBY".into(), k, n]),
        (key(), value.clone()).prop_map(|(k, v)| vec!["INCRBYFLOAT".into(), k, v]),
        key().prop_map(|k| vec!["STRLEN".into(), k]),
        (key(), offset(), offset()).prop_map(|(k, s, e)| vec!["GETRANGE".into(), k, s, e]),
        (key(), 0u8..10, value.clone()).prop_map(|(k, o, v)| vec![
            "SETRANGE".into(),
            k,
            o.to_string(),
            v
        ]),
        (
            prop::sample::select(vec!["MSET", "MSETNX"]),
            prop::collection::vec((key(), value), 1..4)
        )
            .prop_map(|(name, pairs)| {
                let mut c = vec![name.to_string()];
                pairs.into_iter().for_each(|(k, v)| c.extend([k, v]));
                c
            }),
        prop::collection::vec(key(), 1..5)
            .prop_map(|keys| args([vec!["MGET".into()], keys].concat())),
        prop::collection::vec(key(), 1..5)
            .prop_map(|keys| args([vec!["DEL".into()], keys].concat())),
        prop::collection::vec(key(), 1..5)
            .prop_map(|keys| args([vec!["EXISTS".into()], keys].concat())),
        (key(), key()).prop_map(|(a, b)| vec!["RENAME".into(), a, b]),
        (key(), key()).prop_map(|(a, b)| vec!["RENAMENX".into(), a, b]),
        (key(), ttl(), condition()).prop_map(|(k, t, c)| args(vec!["EXPIRE".into(), k, t, c])),
        key().prop_map(|k| vec!["PERSIST".into(), k]),
        key().prop_map(|k| vec!["TTL".into(), k]),
        key().prop_map(|k| vec!["TYPE".into(), k]),
        (
            key(),
            prop_oneof![
                prop::sample::select(vec!["", "PERSIST"]).prop_map(String::from),
                seconds().prop_map(|s| format!("EX {s}")),
                millis().prop_map(|ms| format!("PX {ms}")),
            ]
        )
            .prop_map(|(k, o)| args(vec!["GETEX".into(), k, o])),
        Just(vec!["DBSIZE".to_string()]),
        Just(vec!["MULTI".to_string()]),
        Just(vec!["EXEC".to_string()]),
        Just(vec!["DISCARD".to_string()]),
        key().prop_map(|k| vec!["WATCH".into(), k]),
    ]
}

/// A command's words, options given as one "A B" string split apart and empty ones dropped.
fn args(words: Vec<String>) -> Vec<String> {
    words
        .iter()
        .flat_map(|w| w.split(' '))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// Two replies of a time (`TTL`, `EXPIRETIME`, ...) agree when both are the same negative
/// code, or both are within `margin` of each other: a deadline given relative to now is
/// set, and read, a moment apart on the two servers.
fn same_time(kv: &[u8], redis: &[u8], margin: i64) -> bool {
    let number = |reply: &[u8]| {
        let digits = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
        std::str::from_utf8(digits).ok()?.parse::<i64>().ok()
    };
    match (number(kv), number(redis)) {
        (Some(a), Some(b)) if a >= 0 && b >= 0 => (a - b).abs() <= margin,
        _ => kv == redis,
    }
}

/// `commands` with each time read inside `MULTI` turned into `TYPE`: a deadline set
/// relative to each server's clock is read back a moment apart, which [`same_reply`]
/// allows for in a reply of its own but could not inside `EXEC`'s.
fn untimed_in_blocks(commands: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut queuing = false;
    commands
        .iter()
        .map(|command| {
            let mut command = command.clone();
            let timed = matches!(command[0].as_str(), "TTL" | "EXPIRETIME" | "PEXPIRETIME");
            if queuing && timed {
                command[0] = "TYPE".into();
            }
            match command[0].as_str() {
                "MULTI" => queuing = true,
                "EXEC" | "DISCARD" => queuing = false,
                _ => {}
            }
            command
        })
        .collect()
}

/// Whether the two servers' replies to `command` agree: byte for byte, or for a time
/// within what a moment apart can change.
fn same_reply(command: &[String], kv: &[u8], redis: &[u8]) -> bool {
    match command[0].as_str() {
        "TTL" | "EXPIRETIME" => same_time(kv, redis, 1),
        "PEXPIRETIME" => same_time(kv, redis, 1000),
        _ => kv == redis,
    }
}

/// Sends `commands` to both servers one at a time, then, from empty again, as one pipeline,
/// and checks every reply.
fn check_both_ways(pair: &mut Pair, commands: &[Vec<String>]) -> Result<(), TestCaseError> {
    let commands = untimed_in_blocks(commands);
    check_in_turn(pair, &commands)?;
    // From a fresh start: out of any MULTI the sequence left open, with nothing watched.
    for reset in ["DISCARD", "UNWATCH", "FLUSHALL"] {
        pair.both(&bytes_of(&[reset.to_string()]));
    }
    let requests: Vec<Vec<Vec<u8>>> = commands.iter().map(|c| bytes_of(c)).collect();
    // Both sent before either is read, so that the two run at the same time and a deadline
    // set relative to now is set a moment apart, not a whole pipeline apart.
    pair.kv.send_pipeline(&requests);
    pair.redis.send_pipeline(&requests);
    let kv = pair.kv.replies(requests.len());
    let redis = pair.redis.replies(requests.len());
    for ((command, kv), redis) in commands.iter().zip(kv).zip(redis) {
        prop_assert!(
            same_reply(command, &kv, &redis),
            "pipelined, {command:?}: kv {:?}, redis {:?}",
            shown(&kv),
            shown(&redis)
        );
    }
    Ok(())
}

/// Sends `commands` to both servers one at a time and checks every reply.
fn check_in_turn(pair: &mut Pair, commands: &[Vec<String>]) -> Result<(), TestCaseError> {
    for command in commands {
        let (kv, redis) = pair.both(&bytes_of(command));
        prop_assert!(
            same_reply(command, &kv, &redis),
            "one at a time, {command:?}: kv {:?}, redis {:?}",
            shown(&kv),
            shown(&redis)
        );
    }
    Ok(())
}

/// A reply as text, for a failure's message (its bytes are what is compared).
fn shown(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

fn bytes_of(command: &[String]) -> Vec<Vec<u8>> {
    command.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// The bulk strings of a flat array reply (`KEYS`), sorted: the two servers keep their keys
/// in different orders. Panics on any other reply (an error, say), which has no items to
/// compare.
fn sorted_items(reply: &[u8]) -> Vec<Vec<u8>> {
    let line_end =
        |from: usize| from + reply[from..].windows(2).position(|w| w == b"\r\n").unwrap();
    assert_eq!(
        reply.first(),
        Some(&b'*'),
        "not an array: {:?}",
        String::from_utf8_lossy(reply)
    );
    let count: usize = std::str::from_utf8(&reply[1..line_end(0)])
        .unwrap()
        .parse()
        .unwrap();
    let mut at = line_end(0) + 2;
    let mut items = Vec::new();
    while at < reply.len() {
        let header = line_end(at);
        let len: usize = std::str::from_utf8(&reply[at + 1..header])
            .unwrap()
            .parse()
            .unwrap();
        items.push(reply[header + 2..header + 2 + len].to_vec());
        at = header + 2 + len + 2;
    }
    assert_eq!(items.len(), count, "the array's length");
    items.sort();
    items
}

/// Any of the string and key commands with 0-5 arguments drawn from keys, numbers at the
/// edges, options of other commands and junk: which error comes first, and what a
/// misplaced option does, must be Redis's. No time given is short enough to pass while a
/// case runs (the shortest is 100 s), so no answer depends on the moment.
fn any_arguments() -> impl Strategy<Value = Vec<String>> {
    let name = prop::sample::select(vec![
        "GET",
        "SET",
        "SETNX",
        "SETEX",
        "PSETEX",
        "GETSET",
        "GETDEL",
        "GETEX",
        "MGET",
        "MSET",
        "MSETNX",
        "INCR",
        "DECR",
        "INCRBY",
        "DECRBY",
        "INCRBYFLOAT",
        "APPEND",
        "STRLEN",
        "GETRANGE",
        "SETRANGE",
        "DEL",
        "UNLINK",
        "EXISTS",
        "EXPIRE",
        "PEXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "TTL",
        "EXPIRETIME",
        "PERSIST",
        "TYPE",
        "RENAME",
        "RENAMENX",
        "ECHO",
        "PING",
    ]);
    let word = prop::sample::select(vec![
        "a",
        "b",
        "c",
        "0",
        "-1",
        "abc",
        "1.5",
        "EX",
        "PX",
        "EXAT",
        "PXAT",
        "NX",
        "XX",
        "GT",
        "LT",
        "KEEPTTL",
        "GET",
        "PERSIST",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999",
        "",
        "x y",
        "4102444800",
    ])
    .prop_map(String::from)
    .boxed()
    // Numbers wide enough apart to be no tie as times, small enough as offsets (a string
    // of 1 MB at most; past 64 MiB kv refuses what Redis allocates, by design).
    .prop_union((100_000u64..1_000_000).prop_map(|n| n.to_string()).boxed());
    (name, prop::collection::vec(word, 0..6))
        .prop_map(|(name, words)| std::iter::once(name.to_string()).chain(words).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Random sequences of string commands, transactions included, get Redis's replies,
    /// sent one command at a time and as one pipeline: kv runs a pipeline's data commands
    /// as atomic blocks over a view of their own (`block.rs`), another path.
    #[test]
    fn random_commands_are_answered_as_redis_answers_them(
        commands in prop::collection::vec(command(), 1..120)
    ) {
        let Some(mut pair) = Pair::start() else {
            return Ok(());
        };
        check_both_ways(&mut pair, &commands)?;
    }

    /// `KEYS` patterns, classes and escapes included, select the keys Redis selects.
    #[test]
    fn glob_patterns_select_the_keys_redis_selects(
        patterns in prop::collection::vec(
            prop::collection::vec(
                prop::sample::select(b"ab*?[]^-\\!x\xe9\x80".to_vec()), 0..8),
            1..200,
        )
    ) {
        let Some(mut pair) = Pair::start() else {
            return Ok(());
        };
        let keys: [&[u8]; 16] = [
            b"", b"a", b"b", b"ab", b"a*b", b"a?b", b"a[b]", b"a\\b", b"[", b"]", b"^",
            b"-", b"x", b"\xe9", b"\x80", b"*",
        ];
        for key in keys {
            pair.both(&[b"SET".to_vec(), key.to_vec(), b"1".to_vec()]);
        }
        for pattern in patterns {
            let (kv, redis) = (
                pair.kv.call(&[b"KEYS".to_vec(), pattern.clone()]),
                pair.redis.call(&[b"KEYS".to_vec(), pattern.clone()]),
            );
            prop_assert_eq!(
                sorted_items(&kv),
                sorted_items(&redis),
                "KEYS {}",
                pattern.escape_ascii()
            );
        }
    }

    /// Commands with arguments in any order and of any kind get Redis's replies, errors
    /// included, over keys that hold an integer, text and a deadline.
    #[test]
    fn any_arguments_are_answered_as_redis_answers_them(
        commands in prop::collection::vec(any_arguments(), 1..60)
    ) {
        let Some(mut pair) = Pair::start() else {
            return Ok(());
        };
        for setup in [
            vec!["SET", "a", "10"],
            vec!["SET", "b", "hello"],
            vec!["SET", "c", "1", "EX", "1000"],
        ] {
            let setup: Vec<String> = setup.into_iter().map(String::from).collect();
            pair.both(&bytes_of(&setup));
        }
        check_in_turn(&mut pair, &commands)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Random sequences on a replicated node, one command at a time and as a pipeline,
    /// get Redis's replies (but `WATCH`, which a replicated node refuses).
    #[test]
    fn a_replicated_node_answers_as_redis_answers(
        commands in prop::collection::vec(
            command().prop_filter("a replicated node refuses WATCH", |c| c[0] != "WATCH"),
            1..200,
        )
    ) {
        let Some(mut pair) = Pair::start_replicated() else {
            return Ok(());
        };
        check_both_ways(&mut pair, &commands)?;
    }
}
