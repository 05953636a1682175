//! Transactions, authentication, protocol errors, limits, and shutdown.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use kv_server::ServerOptions;
use redis::{Commands, Value};
use support::{closed, line, read_line, TestServer};

#[test]
fn watch_multi_exec_commits_atomically_or_answers_nil() {
    let server = TestServer::start(ServerOptions::default());
    let mut a = server.client();
    let mut b = server.client();
    let _: () = a.set("balance", 10).unwrap();

    // Unchanged watched key: the block runs, and sees its own writes.
    let _: () = redis::cmd("WATCH").arg("balance").query(&mut a).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut a).unwrap();
    let queued: String = redis::cmd("INCRBY")
        .arg("balance")
        .arg(5)
        .query(&mut a)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    let _: String = redis::cmd("INCR").arg("balance").query(&mut a).unwrap();
    let _: String = redis::cmd("SET")
        .arg("log")
        .arg("paid")
        .query(&mut a)
        .unwrap();
    let replies: Value = redis::cmd("EXEC").query(&mut a).unwrap();
    let Value::Array(replies) = replies else {
        panic!("EXEC answered {replies:?}");
    };
    assert_eq!(replies[0], Value::Int(15));
    assert_eq!(replies[1], Value::Int(16));
    assert_eq!(replies[2], Value::Okay);
    assert_eq!(a.get::<_, i64>("balance").unwrap(), 16);

    // A watched key changed by another connection: EXEC answers nil, nothing written.
    let _: () = redis::cmd("WATCH").arg("balance").query(&mut a).unwrap();
    let _: () = b.set("balance", 100).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut a).unwrap();
    let _: String = redis::cmd("SET")
        .arg("balance")
        .arg(0)
        .query(&mut a)
        .unwrap();
    let _: String = redis::cmd("SET").arg("other").arg(1).query(&mut a).unwrap();
    let replies: Value = redis::cmd("EXEC").query(&mut a).unwrap();
    assert_eq!(replies, Value::Nil);
    assert_eq!(a.get::<_, i64>("balance").unwrap(), 100);
    assert_eq!(a.get::<_, Option<i64>>("other").unwrap(), None);

    // A refused command at queue time aborts the block; DISCARD drops one.
    let mut s = server.raw();
    assert_eq!(line(&mut s, b"MULTI\r\n"), "+OK\r\n");
    assert_eq!(line(&mut s, b"SET x 1\r\n"), "+QUEUED\r\n");
    assert_eq!(
        line(&mut s, b"GET\r\n"),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        line(&mut s, b"EXEC\r\n"),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(line(&mut s, b"MULTI\r\n"), "+OK\r\n");
    assert_eq!(
        line(&mut s, b"MULTI\r\n"),
        "-ERR MULTI calls can not be nested\r\n"
    );
    assert_eq!(line(&mut s, b"SET x 1\r\n"), "+QUEUED\r\n");
    assert_eq!(line(&mut s, b"DISCARD\r\n"), "+OK\r\n");
    assert_eq!(line(&mut s, b"EXISTS x\r\n"), ":0\r\n");
    // A command that fails at EXEC fails alone, as in Redis; the others apply.
    assert_eq!(line(&mut s, b"MULTI\r\n"), "+OK\r\n");
    assert_eq!(line(&mut s, b"SET x a\r\n"), "+QUEUED\r\n");
    assert_eq!(line(&mut s, b"INCR x\r\n"), "+QUEUED\r\n");
    assert_eq!(line(&mut s, b"EXEC\r\n"), "*2\r\n");
    assert_eq!(read_line(&mut s), "+OK\r\n");
    assert_eq!(
        read_line(&mut s),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(line(&mut s, b"GET x\r\n"), "$1\r\n");
}

#[test]
fn errors_redis_reports_at_exec_time_do_not_abort_the_block() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    for (request, expected) in [
        (&b"MULTI\r\n"[..], "+OK\r\n"),
        (b"SET k v BADOPT\r\n", "+QUEUED\r\n"),
        (b"INCRBY n x\r\n", "+QUEUED\r\n"),
        (b"SET a 1\r\n", "+QUEUED\r\n"),
        (b"EXEC\r\n", "*3\r\n"),
        (b"", "-ERR syntax error\r\n"),
        (b"", "-ERR value is not an integer or out of range\r\n"),
        (b"", "+OK\r\n"),
        (b"EXISTS a k n\r\n", ":1\r\n"),
        // An arity the table allows but the command refuses: that command's error.
        (b"MULTI\r\n", "+OK\r\n"),
        (b"MSET x 1 y\r\n", "+QUEUED\r\n"),
        (b"SET c 1\r\n", "+QUEUED\r\n"),
        (b"EXEC\r\n", "*2\r\n"),
        (b"", "-ERR wrong number of arguments for 'mset' command\r\n"),
        (b"", "+OK\r\n"),
        // Unknown commands and wrong arities still abort it.
        (b"MULTI\r\n", "+OK\r\n"),
        (b"SET b 2\r\n", "+QUEUED\r\n"),
        (
            b"NOPE\r\n",
            "-ERR unknown command 'NOPE', with args beginning with: \r\n",
        ),
        (
            b"EXEC\r\n",
            "-EXECABORT Transaction discarded because of previous errors.\r\n",
        ),
        (b"MULTI\r\n", "+OK\r\n"),
        (b"SET b 2\r\n", "+QUEUED\r\n"),
        (
            b"SET b\r\n",
            "-ERR wrong number of arguments for 'set' command\r\n",
        ),
        (
            b"EXEC\r\n",
            "-EXECABORT Transaction discarded because of previous errors.\r\n",
        ),
        (b"EXISTS b\r\n", ":0\r\n"),
        // SAVE would sync before the block's writes: refused, and the block aborted.
        (b"MULTI\r\n", "+OK\r\n"),
        (b"SET b 2\r\n", "+QUEUED\r\n"),
        (
            b"SAVE\r\n",
            "-ERR Command not allowed inside a transaction\r\n",
        ),
        (
            b"EXEC\r\n",
            "-EXECABORT Transaction discarded because of previous errors.\r\n",
        ),
        (b"EXISTS b\r\n", ":0\r\n"),
    ] {
        assert_eq!(
            line(&mut s, request),
            expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }

    // Before AUTH, NOAUTH comes before the command's own errors.
    let server = TestServer::start(ServerOptions {
        requirepass: Some("s3cret".into()),
        ..ServerOptions::default()
    });
    let mut s = server.raw();
    for request in [
        &b"SET k v BADOPT\r\n"[..],
        b"INCRBY n x\r\n",
        b"SET k v EX 0\r\n",
    ] {
        assert_eq!(
            line(&mut s, request),
            "-NOAUTH Authentication required.\r\n",
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

#[test]
fn exec_blocks_are_atomic_against_concurrent_writers() {
    // Each block moves one unit from `a` to `b`; the sum never changes, and no block is
    // lost, while other connections increment a key the blocks read.
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    let _: () = c.set("a", 1000).unwrap();
    let _: () = c.set("b", 0).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut c = server.client();
                for _ in 0..50 {
                    let replies: Value = redis::pipe()
                        .cmd("MULTI")
                        .ignore()
                        .cmd("DECR")
                        .arg("a")
                        .ignore()
                        .cmd("INCR")
                        .arg("b")
                        .ignore()
                        .cmd("EXEC")
                        .query(&mut c)
                        .unwrap();
                    assert!(matches!(replies, Value::Array(_)), "{replies:?}");
                }
            });
        }
    });
    assert_eq!(c.get::<_, i64>("a").unwrap(), 800);
    assert_eq!(c.get::<_, i64>("b").unwrap(), 200);
}

#[test]
fn auth_is_required_before_anything_else() {
    let server = TestServer::start(ServerOptions {
        requirepass: Some("s3cret".into()),
        ..ServerOptions::default()
    });
    let mut s = server.raw();
    assert_eq!(
        line(&mut s, b"GET k\r\n"),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        line(&mut s, b"PING\r\n"),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        line(&mut s, b"AUTH wrong\r\n"),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        line(&mut s, b"AUTH someone s3cret\r\n"),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(line(&mut s, b"AUTH s3cret\r\n"), "+OK\r\n");
    assert_eq!(line(&mut s, b"PING\r\n"), "+PONG\r\n");
    // RESET forgets the authentication.
    assert_eq!(line(&mut s, b"RESET\r\n"), "+RESET\r\n");
    assert_eq!(
        line(&mut s, b"GET k\r\n"),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(line(&mut s, b"AUTH default s3cret\r\n"), "+OK\r\n");

    // Through the client, with the password in the URL (HELLO/AUTH at connect).
    let mut c = redis::Client::open(format!("redis://:s3cret@{}/", server.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = c.set("k", "v").unwrap();
    let wrong = redis::Client::open(format!("redis://:nope@{}/", server.addr))
        .unwrap()
        .get_connection();
    assert!(wrong.is_err());
}

#[test]
fn without_a_password_auth_as_the_default_user_succeeds() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    assert_eq!(line(&mut s, b"AUTH default anything\r\n"), "+OK\r\n");
    assert_eq!(
        line(&mut s, b"AUTH someone anything\r\n"),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        line(&mut s, b"AUTH anything\r\n"),
        "-ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?\r\n"
    );
    // HELLO with AUTH, as clients send when given a user and password.
    assert_eq!(line(&mut s, b"HELLO 3 AUTH default x\r\n"), "%7\r\n");
    let mut c = redis::Client::open(format!("redis://default:x@{}/", server.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = c.set("k", "v").unwrap();
}

#[test]
fn a_malformed_request_closes_only_its_connection() {
    let server = TestServer::start(ServerOptions::default());
    let mut bystander = server.raw();
    assert_eq!(line(&mut bystander, b"SET k v\r\n"), "+OK\r\n");
    for (bad, error) in [
        (
            &b"*1\r\n$x\r\n"[..],
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (b"*1\r\n:5\r\n", "-ERR Protocol error: expected '$'\r\n"),
        (
            b"*99999999\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"GET \"k\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut s = server.raw();
        // A good request before it in the same write is still answered.
        assert_eq!(line(&mut s, &[&b"PING\r\n"[..], bad].concat()), "+PONG\r\n");
        assert_eq!(read_line(&mut s), error);
        assert!(closed(&mut s), "the connection closes after {error}");
    }
    assert_eq!(line(&mut bystander, b"GET k\r\n"), "$1\r\n");
}

#[test]
fn an_empty_argument_header_is_a_protocol_error_not_a_panic() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    assert_eq!(
        line(&mut s, b"*1\r\n\r\n"),
        "-ERR Protocol error: expected '$'\r\n"
    );
    assert!(closed(&mut s));
    assert_eq!(line(&mut server.raw(), b"PING\r\n"), "+PONG\r\n");
}

#[test]
fn before_auth_only_small_requests_are_read() {
    let server = TestServer::start(ServerOptions {
        requirepass: Some("s3cret".into()),
        ..ServerOptions::default()
    });
    let mut s = server.raw();
    assert_eq!(
        line(&mut s, b"*11\r\n"),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert!(closed(&mut s));
    let mut s = server.raw();
    assert_eq!(
        line(&mut s, b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    assert!(closed(&mut s));
    // AUTH and a large request in one write: the second is read once AUTH has run.
    let mut s = server.raw();
    let big = vec![b'v'; 20_000];
    let mut request = b"AUTH s3cret\r\n*13\r\n$4\r\nMSET\r\n".to_vec();
    for i in 0..5 {
        request.extend_from_slice(format!("$2\r\nk{i}\r\n$20000\r\n").as_bytes());
        request.extend_from_slice(&big);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"$2\r\nk5\r\n$1\r\nx\r\nGET k5\r\n");
    s.write_all(&request).unwrap();
    assert_eq!(read_line(&mut s), "+OK\r\n");
    assert_eq!(read_line(&mut s), "+OK\r\n");
    assert_eq!(read_line(&mut s), "$1\r\n");
    assert_eq!(read_line(&mut s), "x\r\n");
}

#[test]
fn a_10_gb_bulk_is_refused_before_it_is_read() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let started = Instant::now();
    // Declared, never sent: the answer comes at once, not after 10 GB.
    assert_eq!(
        line(&mut s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000000\r\n"),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(closed(&mut s));
    assert!(started.elapsed() < Duration::from_secs(2));
    // A bulk past the value limit (64 MiB) is refused the same way.
    let mut s = server.raw();
    assert_eq!(
        line(&mut s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$67108865\r\n"),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
}

#[test]
fn a_half_sent_command_blocks_nobody() {
    let server = TestServer::start(ServerOptions::default());
    let mut slow = server.raw();
    slow.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nva")
        .unwrap();
    let mut other = server.client();
    let started = Instant::now();
    for i in 0..100 {
        let _: () = other.set(format!("k{i}"), i).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // The rest arrives: the command completes.
    slow.write_all(b"lue\r\n").unwrap();
    assert_eq!(read_line(&mut slow), "+OK\r\n");
    assert_eq!(other.get::<_, String>("slow").unwrap(), "value");
}

#[test]
fn past_maxclients_a_connection_is_refused() {
    let server = TestServer::start(ServerOptions {
        maxclients: 2,
        ..ServerOptions::default()
    });
    let mut first = server.raw();
    let mut second = server.raw();
    assert_eq!(line(&mut first, b"PING\r\n"), "+PONG\r\n");
    assert_eq!(line(&mut second, b"PING\r\n"), "+PONG\r\n");
    let mut third = server.raw();
    assert_eq!(
        read_line(&mut third),
        "-ERR max number of clients reached\r\n"
    );
    assert!(closed(&mut third));
    drop(first);
    // The slot comes back once the server sees the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = server.raw();
        if line(&mut again, b"PING\r\n") == "+PONG\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_timeout() {
    let server = TestServer::start(ServerOptions {
        timeout: Some(Duration::from_millis(200)),
        ..ServerOptions::default()
    });
    let mut s = server.raw();
    assert_eq!(line(&mut s, b"PING\r\n"), "+PONG\r\n");
    let started = Instant::now();
    assert!(closed(&mut s));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn quit_answers_then_closes() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    assert_eq!(line(&mut s, b"QUIT\r\nPING\r\n"), "+OK\r\n");
    assert!(closed(&mut s));
}

#[test]
fn shutdown_closes_the_store_and_keeps_every_acknowledged_write() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    for i in 0..200 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    let mut idle = server.raw();
    let dir = server.stop();
    assert!(closed(&mut idle), "connections are closed at shutdown");
    // The store was closed: it opens again (its lock released), with every write.
    let store = kv_store::KvStore::open(dir.path()).unwrap();
    assert_eq!(store.len(), 200);
    assert_eq!(store.get("k199").unwrap(), "199");
}

#[test]
fn a_pipeline_of_large_replies_is_answered_in_chunks_and_in_order() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    let big = vec![b'x'; 256 * 1024];
    let _: () = c.set("big", &big[..]).unwrap();
    // 64 large replies (16 MiB) between small ones, sent in one write before any is read:
    // the server answers a chunk at a time, as the client takes them.
    let mut pipe = redis::pipe();
    for i in 0..64 {
        pipe.cmd("GET").arg("big");
        pipe.cmd("INCR").arg("n");
        pipe.cmd("ECHO").arg(i);
    }
    let replies: Vec<Value> = pipe.query(&mut c).unwrap();
    for (i, triple) in replies.chunks(3).enumerate() {
        assert_eq!(triple[0], Value::BulkString(big.clone()));
        assert_eq!(triple[1], Value::Int(i as i64 + 1));
        assert_eq!(triple[2], Value::BulkString(i.to_string().into_bytes()));
    }
}

#[test]
fn client_list_shows_each_connection_while_it_lives() {
    let server = TestServer::start(ServerOptions::default());
    let mut a = server.client();
    let mut b = server.client();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("alpha")
        .query(&mut a)
        .unwrap();
    let b_id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut b).unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut a).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(" name=alpha "), "{list}");
    assert!(
        list.contains(&format!("id={b_id} addr=127.0.0.1:")),
        "{list}"
    );
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut a).unwrap();
        if list.lines().count() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection stays listed: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A command whose work grows with the keys (`KEYS`, `DBSIZE` once a key has a deadline)
/// runs where it holds up no other connection: on one runtime thread (`kv serve`'s
/// default on 2 cores), another connection's `PING`s are answered while it runs.
///
/// Were the walks run on the runtime thread, at most two `PING`s would be answered in
/// the window, however long it is: one before the pipeline is read, one after it is
/// answered. Each pipeline repeats its walk, so that the window is long enough for a
/// few `PING`s on a machine busy with other tests (CI once answered only two `PING`s
/// during a lone `DBSIZE` over these keys).
#[test]
fn a_command_that_walks_every_key_holds_up_no_other_connection() {
    const KEYS: usize = 300_000;
    let server = TestServer::start_on(1, ServerOptions::default());
    let mut filler = server.raw();
    for first in (0..KEYS).step_by(1000) {
        let mut mset = vec!["MSET".to_string()];
        for i in first..first + 1000 {
            mset.extend([format!("key:{i}"), "v".to_string()]);
        }
        filler.write_all(&support::request(&mset)).unwrap();
        assert_eq!(read_line(&mut filler), "+OK\r\n");
    }
    // One deadline, so that DBSIZE counts the live keys one by one.
    assert_eq!(line(&mut filler, b"SET ttl 1 EX 1000\r\n"), "+OK\r\n");
    let live = KEYS + 1;
    // Alone, and in a pipeline after a write (which the writes made in place leave for
    // a thread that may wait). KEYS's pattern matches nothing, so that its replies stay
    // small (the walk is the same), and matching it makes each walk many times longer
    // than a DBSIZE one: fewer repeats.
    let cases: [(&str, usize, Vec<String>); 4] = [
        ("KEYS none:*", 2, vec!["*0\r\n".into()]),
        ("DBSIZE", 20, vec![format!(":{live}\r\n")]),
        (
            "SET x 1\r\nKEYS none:*",
            2,
            vec!["+OK\r\n".into(), "*0\r\n".into()],
        ),
        (
            "INCR n\r\nDBSIZE",
            20,
            vec![":{n}\r\n".into(), format!(":{}\r\n", live + 2)],
        ),
    ];
    for (walk, repeats, replies) in cases {
        let mut walker = server.raw();
        let mut pinger = server.raw();
        assert_eq!(line(&mut pinger, b"PING\r\n"), "+PONG\r\n");
        walker
            .write_all(format!("{walk}\r\n").repeat(repeats).as_bytes())
            .unwrap();
        // A pipeline's replies leave together, after its last walk.
        walker.set_nonblocking(true).unwrap();
        let mut pongs = 0;
        let mut byte = [0u8];
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(walker.peek(&mut byte), Ok(1..)) {
            assert!(Instant::now() < deadline, "{walk} never answered");
            assert_eq!(line(&mut pinger, b"PING\r\n"), "+PONG\r\n");
            pongs += 1;
        }
        walker.set_nonblocking(false).unwrap();
        for n in 1..=repeats {
            for reply in &replies {
                let reply = reply.replace("{n}", &n.to_string());
                assert_eq!(read_line(&mut walker), reply, "{walk}");
            }
        }
        assert!(pongs >= 3, "{walk}: {pongs} PINGs answered while it ran");
    }
}
