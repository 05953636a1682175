//! Replies and error strings through the `redis` client and the raw protocol.

mod support;

use std::time::Duration;

use kv_server::ServerOptions;
use redis::{Commands, Value};
use support::{expect_lines, line, read_line, TestServer};

#[test]
fn strings_keys_and_their_replies() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO").arg("hi").query(&mut c).unwrap();
    assert_eq!(echo, "hi");

    let _: () = c.set("k", "v").unwrap();
    assert_eq!(
        c.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("v")
    );
    assert_eq!(c.get::<_, Option<String>>("missing").unwrap(), None);
    // SET NX on a present key: nil, unchanged; XX on an absent one: nil.
    let nx: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(nx, None);
    let xx: Option<String> = redis::cmd("SET")
        .arg("absent")
        .arg("w")
        .arg("XX")
        .query(&mut c)
        .unwrap();
    assert_eq!(xx, None);
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("GET")
        .query(&mut c)
        .unwrap();
    assert_eq!(old.as_deref(), Some("v"));
    let old: Option<String> = redis::cmd("GETSET")
        .arg("k")
        .arg("x")
        .query(&mut c)
        .unwrap();
    assert_eq!(old.as_deref(), Some("w"));

    // Deadlines: EX, KEEPTTL, a plain SET drops it, PERSIST, EXPIRE, PEXPIRE.
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("1")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    assert_eq!(c.ttl::<_, i64>("t").unwrap(), 100);
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("2")
        .arg("KEEPTTL")
        .query(&mut c)
        .unwrap();
    assert!(c.pttl::<_, i64>("t").unwrap() > 99_000);
    assert_eq!(c.incr::<_, _, i64>("t", 5).unwrap(), 7);
    assert!(
        c.ttl::<_, i64>("t").unwrap() > 98,
        "INCR keeps the deadline"
    );
    assert_eq!(c.persist::<_, i64>("t").unwrap(), 1);
    assert_eq!(c.ttl::<_, i64>("t").unwrap(), -1);
    assert_eq!(c.ttl::<_, i64>("nothing").unwrap(), -2);
    assert_eq!(c.expire::<_, i64>("t", 50).unwrap(), 1);
    assert_eq!(c.expire::<_, i64>("nothing", 50).unwrap(), 0);
    let gt: i64 = redis::cmd("EXPIRE")
        .arg("t")
        .arg(10)
        .arg("GT")
        .query(&mut c)
        .unwrap();
    assert_eq!(gt, 0, "10 s is not later than 50 s");
    assert_eq!(c.pexpire::<_, i64>("t", 60).unwrap(), 1);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(c.exists::<_, i64>("t").unwrap(), 0, "expired");
    let _: () = redis::cmd("SETEX")
        .arg("s")
        .arg(30)
        .arg("v")
        .query(&mut c)
        .unwrap();
    assert_eq!(c.ttl::<_, i64>("s").unwrap(), 30);

    // Counters.
    assert_eq!(c.incr::<_, _, i64>("n", 1).unwrap(), 1);
    assert_eq!(
        redis::cmd("INCRBY")
            .arg("n")
            .arg(41)
            .query::<i64>(&mut c)
            .unwrap(),
        42
    );
    assert_eq!(
        redis::cmd("DECR").arg("n").query::<i64>(&mut c).unwrap(),
        41
    );
    assert_eq!(
        redis::cmd("DECRBY")
            .arg("n")
            .arg(40)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );

    // Several keys.
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut c)
        .unwrap();
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg("a")
        .arg("zz")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(values, vec![Some("1".into()), None, Some("2".into())]);
    assert_eq!(c.exists::<_, i64>(&["a", "b", "a", "zz"]).unwrap(), 3);
    assert_eq!(c.append::<_, _, i64>("a", "23").unwrap(), 3);
    assert_eq!(
        redis::cmd("STRLEN").arg("a").query::<i64>(&mut c).unwrap(),
        3
    );
    assert_eq!(
        redis::cmd("SETNX")
            .arg("a")
            .arg("x")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("SETNX")
            .arg("fresh")
            .arg("x")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("TYPE").arg("a").query::<String>(&mut c).unwrap(),
        "string"
    );
    assert_eq!(
        redis::cmd("TYPE")
            .arg("zz")
            .query::<String>(&mut c)
            .unwrap(),
        "none"
    );
    let mut keys: Vec<String> = c.keys("[ab]").unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "b"]);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(dbsize, 6, "k s n a b fresh (t expired)");
    assert_eq!(
        redis::cmd("GETDEL")
            .arg("fresh")
            .query::<Option<String>>(&mut c)
            .unwrap()
            .as_deref(),
        Some("x")
    );
    assert_eq!(c.del::<_, i64>(&["a", "b", "a", "zz"]).unwrap(), 2);

    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut c).unwrap();
    // Counted without a walk, as Redis counts them: `t`, past its deadline, is in the
    // counts until the expiry sweep removes it.
    assert!(
        info.contains("db0:keys=3,expires=1,avg_ttl=0")
            || info.contains("db0:keys=4,expires=2,avg_ttl=0"),
        "k s n, and t until it is swept: {info}"
    );
    // What `redis-cli --stat` reads each second, each an integer (a missing one printed
    // as -9223372036854775808 in its "blocked" column).
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    for field in [
        "used_memory",
        "connected_clients",
        "blocked_clients",
        "total_commands_processed",
        "total_connections_received",
    ] {
        let value = info
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("INFO has no {field}: {info}"));
        assert!(value.trim().parse::<u64>().is_ok(), "{field}:{value}");
    }
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query(&mut c)
        .unwrap();
    assert_eq!(config, vec!["appendfsync", "everysec"]);
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("me")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        redis::cmd("CLIENT")
            .arg("GETNAME")
            .query::<String>(&mut c)
            .unwrap(),
        "me"
    );
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(count > 40);
    let time: Vec<String> = redis::cmd("TIME").query(&mut c).unwrap();
    assert!(time[0].parse::<u64>().unwrap() > 1_600_000_000);
    let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 0);
}

#[test]
fn error_strings_are_redis_7s() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let cases: &[(&[u8], &str)] = &[
        (b"GET\r\n", "-ERR wrong number of arguments for 'get' command\r\n"),
        (b"SET k v NX XX\r\n", "-ERR syntax error\r\n"),
        (b"SET k v EX 0\r\n", "-ERR invalid expire time in 'set' command\r\n"),
        (b"SET k notanumber\r\n", "+OK\r\n"),
        (b"INCR k\r\n", "-ERR value is not an integer or out of range\r\n"),
        (b"INCRBY n 1x\r\n", "-ERR value is not an integer or out of range\r\n"),
        (b"SET big 9223372036854775807\r\n", "+OK\r\n"),
        (b"INCR big\r\n", "-ERR increment or decrement would overflow\r\n"),
        (b"foo a b\r\n", "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"),
        (b"LPUSH l a\r\n", "-ERR unknown command 'LPUSH', with args beginning with: 'l' 'a' \r\n"),
        (b"SELECT 1\r\n", "-ERR DB index is out of range\r\n"),
        (b"SELECT 0\r\n", "+OK\r\n"),
        (b"EXEC\r\n", "-ERR EXEC without MULTI\r\n"),
        (b"AUTH x\r\n", "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"),
        (b"GET k\r\n", "$10\r\n"),
    ];
    expect_lines(&mut s, cases);
}

#[test]
fn expire_times_that_overflow_are_refused_and_change_nothing() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let invalid = |name: &str| format!("-ERR invalid expire time in '{name}' command\r\n");
    let cases: &[(&[u8], String)] = &[
        (b"SET k v\r\n", "+OK\r\n".into()),
        (b"SET s v PX 9223372036854775807\r\n", invalid("set")),
        (b"SET s v EX 9223372036854775\r\n", invalid("set")),
        (b"SET s v EXAT 9223372036854776\r\n", invalid("set")),
        (b"set s v ex 9223372036854775807\r\n", invalid("set")),
        (b"EXISTS s\r\n", ":0\r\n".into()),
        (b"EXPIRE k 9223372036854775\r\n", invalid("expire")),
        (b"EXPIRE k 9223372036854776\r\n", invalid("expire")),
        (b"PEXPIRE k 9223372036854775807\r\n", invalid("pexpire")),
        (b"EXPIREAT k 9223372036854776\r\n", invalid("expireat")),
        (b"SETEX k 9223372036854775 w\r\n", invalid("setex")),
        (b"PSETEX k 9223372036854775807 w\r\n", invalid("psetex")),
        (b"GETEX k PX 9223372036854775807\r\n", invalid("getex")),
        (b"GETEX k EX 9223372036854775\r\n", invalid("getex")),
        (b"TTL k\r\n", ":-1\r\n".into()),
        (b"STRLEN k\r\n", ":1\r\n".into()),
        // The latest deadline Redis accepts: TTL must not overflow computing it.
        (b"PEXPIREAT k 9223372036854775807\r\n", ":1\r\n".into()),
        (b"EXPIRETIME k\r\n", ":9223372036854775\r\n".into()),
    ];
    expect_lines(&mut s, cases);
    for request in [&b"TTL k\r\n"[..], b"PTTL k\r\n"] {
        let reply = line(&mut s, request);
        let n: i64 = reply.trim_end()[1..].parse().unwrap();
        assert!(n > 1 << 40, "{reply}");
    }
}

#[test]
fn expire_applies_every_condition_given_as_redis_does() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let cases: &[(&[u8], &str)] = &[
        (b"SET a v\r\n", "+OK\r\n"),
        // XX fails first on a key without a deadline, whatever LT would say.
        (b"EXPIRE a 10 XX LT\r\n", ":0\r\n"),
        (b"EXPIRE a 10 LT XX\r\n", ":0\r\n"),
        (b"TTL a\r\n", ":-1\r\n"),
        (b"EXPIRE a 10 XX GT\r\n", ":0\r\n"),
        (b"EXPIRE a 100 GT\r\n", ":0\r\n"),
        (b"TTL a\r\n", ":-1\r\n"),
        // LT alone: no deadline counts as infinite.
        (b"EXPIRE a 100 LT\r\n", ":1\r\n"),
        (b"TTL a\r\n", ":100\r\n"),
        (b"EXPIRE a 200 XX LT\r\n", ":0\r\n"),
        (b"EXPIRE a 50 XX LT\r\n", ":1\r\n"),
        (b"TTL a\r\n", ":50\r\n"),
        (b"EXPIRE a 40 XX GT\r\n", ":0\r\n"),
        (b"EXPIRE a 60 GT XX\r\n", ":1\r\n"),
        (b"TTL a\r\n", ":60\r\n"),
        (b"EXPIRE a 70 NX\r\n", ":0\r\n"),
        (b"EXPIRE a 70 XX XX\r\n", ":1\r\n"),
        (b"SET b v\r\n", "+OK\r\n"),
        (b"EXPIRE b 10 NX\r\n", ":1\r\n"),
        (
            b"EXPIRE b 10 NX GT\r\n",
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
        ),
        (
            b"EXPIRE b 10 LT NX\r\n",
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
        ),
        (
            b"EXPIRE b 10 GT LT\r\n",
            "-ERR GT and LT options at the same time are not compatible\r\n",
        ),
        (
            b"EXPIRE b 10 XX GT LT\r\n",
            "-ERR GT and LT options at the same time are not compatible\r\n",
        ),
        (b"EXPIRE missing 10 LT\r\n", ":0\r\n"),
        (b"EXISTS missing\r\n", ":0\r\n"),
    ];
    expect_lines(&mut s, cases);
}

/// Redis keeps time in whole milliseconds: a deadline set again as far ahead within the
/// same millisecond is not earlier (LT) than the one before, and inside a block neither,
/// where the first deadline is the block's own. (GT would be true once a millisecond has
/// passed, so it is not checked here.)
#[test]
fn an_expiry_as_far_ahead_as_the_last_is_not_less() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    for _ in 0..20 {
        expect_lines(
            &mut s,
            &[
                (&b"SET a v PX 100000\r\n"[..], "+OK\r\n"),
                (b"PEXPIRE a 100000 LT\r\n", ":0\r\n"),
                (b"MULTI\r\n", "+OK\r\n"),
                (b"SET b v PX 100000\r\n", "+QUEUED\r\n"),
                (b"PEXPIRE b 100000 LT\r\n", "+QUEUED\r\n"),
            ],
        );
        assert_eq!(line(&mut s, b"EXEC\r\n"), "*2\r\n");
        assert_eq!(read_line(&mut s), "+OK\r\n");
        assert_eq!(read_line(&mut s), ":0\r\n", "LT inside MULTI");
    }
}

#[test]
fn set_and_getex_read_expiry_options_as_redis_7_does() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let cases: &[(&[u8], &str)] = &[
        // The same option again: the last value wins, and only it is checked.
        (b"SET k v EX 10 EX 20\r\n", "+OK\r\n"),
        (b"TTL k\r\n", ":20\r\n"),
        (
            b"SET k v EX 0 PX 5000 PX 30000\r\n",
            "-ERR syntax error\r\n",
        ),
        (b"SET k v PX 0 PX 30000\r\n", "+OK\r\n"),
        (b"TTL k\r\n", ":30\r\n"),
        (
            b"SET k v KEEPTTL KEEPTTL NX NX XX\r\n",
            "-ERR syntax error\r\n",
        ),
        (b"SET k v KEEPTTL KEEPTTL XX XX\r\n", "+OK\r\n"),
        (b"TTL k\r\n", ":30\r\n"),
        (b"SET k v EX 10 KEEPTTL\r\n", "-ERR syntax error\r\n"),
        // Every option is read before the value is checked.
        (b"SET k v EX abc BADOPT\r\n", "-ERR syntax error\r\n"),
        (
            b"SET k v EX abc\r\n",
            "-ERR value is not an integer or out of range\r\n",
        ),
        (b"GETEX k EX 10 EX 40\r\n", "$1\r\n"),
        (b"TTL k\r\n", ":40\r\n"),
        (b"GETEX k PERSIST EX 10\r\n", "-ERR syntax error\r\n"),
        (b"GETEX k KEEPTTL\r\n", "-ERR syntax error\r\n"),
        (b"GETEX k PERSIST PERSIST\r\n", "$1\r\n"),
        (b"TTL k\r\n", ":-1\r\n"),
    ];
    for (request, expected) in cases {
        let reply = line(&mut s, request);
        assert_eq!(reply, *expected, "{}", String::from_utf8_lossy(request));
        if reply.starts_with('$') {
            assert_eq!(read_line(&mut s), "v\r\n");
        }
    }
}

#[test]
fn hello_setname_refuses_what_client_setname_refuses() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let refused = "-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
    assert_eq!(line(&mut s, b"HELLO 3 SETNAME \"a b\"\r\n"), refused);
    assert_eq!(line(&mut s, b"CLIENT SETNAME \"a b\"\r\n"), refused);
    // Nothing changed: still RESP2, no name.
    assert_eq!(line(&mut s, b"CLIENT GETNAME\r\n"), "$-1\r\n");
    assert_eq!(line(&mut s, b"HELLO 3 SETNAME ok\r\n"), "%7\r\n");
}

#[test]
fn incrbyfloat_prints_its_result_as_redis_does() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    for (request, expected) in [
        (&b"SET f 0.1\r\n"[..], "+OK"),
        (b"INCRBYFLOAT f 0.2\r\n", "0.3"),
        (b"GET f\r\n", "0.3"),
        (b"SET g 5.0e3\r\n", "+OK"),
        (b"INCRBYFLOAT g 2.0e2\r\n", "5200"),
        (b"INCRBYFLOAT h 1e-20\r\n", "0"),
    ] {
        let mut reply = line(&mut s, request);
        if reply.starts_with('$') {
            reply = read_line(&mut s);
        }
        assert_eq!(
            reply.trim_end(),
            expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

#[test]
fn resp3_after_hello_3() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    assert_eq!(line(&mut s, b"GET missing\r\n"), "$-1\r\n");
    // The map's 7 pairs, then the PING's reply.
    assert_eq!(line(&mut s, b"HELLO 3\r\nPING\r\n"), "%7\r\n");
    let mut lines = 0;
    while support::read_line(&mut s) != "+PONG\r\n" {
        lines += 1;
    }
    assert_eq!(lines, 25);
    assert_eq!(line(&mut s, b"GET missing\r\n"), "_\r\n");
    assert_eq!(
        line(&mut s, b"HELLO 4\r\n"),
        "-NOPROTO unsupported protocol version\r\n"
    );

    // And through the client, which speaks RESP3 when told to.
    let mut c = redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = c.set("k", "v").unwrap();
    let value: Value = redis::cmd("GET").arg("nothing").query(&mut c).unwrap();
    assert_eq!(value, Value::Nil);
}

#[test]
fn pipelined_replies_come_in_order() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        pipe.cmd("INCR").arg("counter");
    }
    pipe.cmd("GET").arg("k499");
    let replies: Vec<Value> = pipe.query(&mut c).unwrap();
    assert_eq!(replies.len(), 501);
    for (i, reply) in replies[..500].iter().enumerate() {
        assert_eq!(*reply, Value::Int(i as i64 + 1));
    }
    assert_eq!(replies[500], Value::BulkString(b"499".to_vec()));

    // Inline and multibulk requests mixed in one write.
    let mut s = server.raw();
    std::io::Write::write_all(
        &mut s,
        b"PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nset q 'a b'\r\nGET q\r\n",
    )
    .unwrap();
    assert_eq!(support::read_line(&mut s), "+PONG\r\n");
    assert_eq!(support::read_line(&mut s), "$2\r\n");
    assert_eq!(support::read_line(&mut s), "hi\r\n");
    assert_eq!(support::read_line(&mut s), "+OK\r\n");
    assert_eq!(support::read_line(&mut s), "$3\r\n");
    assert_eq!(support::read_line(&mut s), "a b\r\n");
}

#[test]
fn concurrent_incr_loses_no_increment() {
    let server = TestServer::start(ServerOptions::default());
    const CLIENTS: usize = 8;
    const EACH: usize = 200;
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let mut c = server.client();
                for _ in 0..EACH {
                    let _: i64 = c.incr("counter", 1).unwrap();
                }
            });
        }
    });
    let mut c = server.client();
    assert_eq!(c.get::<_, i64>("counter").unwrap(), (CLIENTS * EACH) as i64);
}

#[test]
fn ranges_floats_renames_and_absolute_deadlines() {
    let server = TestServer::start(ServerOptions::default());
    let mut s = server.raw();
    let cases: &[(&[u8], &str)] = &[
        (b"SET s Hello\r\n", "+OK\r\n"),
        (b"SETRANGE s 6 World\r\n", ":11\r\n"),
        (b"GETRANGE s -5 -1\r\n", "$5\r\n"),
        (b"SETRANGE fresh 2 ab\r\n", ":4\r\n"),
        (b"STRLEN fresh\r\n", ":4\r\n"),
        (b"SETRANGE s -1 x\r\n", "-ERR offset is out of range\r\n"),
        (
            b"SETRANGE s 536870912 x\r\n",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n",
        ),
        (b"SET f 10.5\r\n", "+OK\r\n"),
        (b"INCRBYFLOAT f 0.1\r\n", "$4\r\n"),
        (
            b"INCRBYFLOAT f x\r\n",
            "-ERR value is not a valid float\r\n",
        ),
        (
            b"INCRBYFLOAT s 1\r\n",
            "-ERR value is not a valid float\r\n",
        ),
        (b"MSETNX a 1 b 2\r\n", ":1\r\n"),
        (b"MSETNX b 3 c 4\r\n", ":0\r\n"),
        (b"EXISTS c\r\n", ":0\r\n"),
        (b"RENAME nothing x\r\n", "-ERR no such key\r\n"),
        (b"SET t v EX 100\r\n", "+OK\r\n"),
        (b"RENAME t t2\r\n", "+OK\r\n"),
        (b"EXISTS t\r\n", ":0\r\n"),
        (b"TTL t2\r\n", ":100\r\n"),
        (b"RENAMENX t2 a\r\n", ":0\r\n"),
        (b"RENAMENX t2 t3\r\n", ":1\r\n"),
        (b"EXPIREAT a 4102444800\r\n", ":1\r\n"),
        (b"EXPIRETIME a\r\n", ":4102444800\r\n"),
        (b"PEXPIRETIME a\r\n", ":4102444800000\r\n"),
        (b"EXPIRETIME b\r\n", ":-1\r\n"),
        (b"EXPIRETIME nothing\r\n", ":-2\r\n"),
        (b"EXPIREAT a 4102444801 LT\r\n", ":0\r\n"),
        (b"PEXPIREAT a 1\r\n", ":1\r\n"),
        (b"EXISTS a\r\n", ":0\r\n"),
        (b"GETEX b EX 50\r\n", "$1\r\n"),
        (b"\r\nTTL b\r\n", ":50\r\n"),
        (b"GETEX b PERSIST\r\n", "$1\r\n"),
        (b"\r\nTTL b\r\n", ":-1\r\n"),
        (b"GETEX b EX\r\n", "-ERR syntax error\r\n"),
        (b"GETEX nothing PERSIST\r\n", "$-1\r\n"),
        (b"DEL b t3 nothing b\r\n", ":2\r\n"),
        (b"FLUSHALL\r\n", "+OK\r\n"),
        (b"RANDOMKEY\r\n", "$-1\r\n"),
        (b"SET only 1\r\n", "+OK\r\n"),
        (b"RANDOMKEY\r\n", "$4\r\n"),
    ];
    for (request, expected) in cases {
        let reply = line(&mut s, request);
        assert_eq!(reply, *expected, "{}", String::from_utf8_lossy(request));
        // The rest of a bulk reply.
        if reply.starts_with('$') && reply != "$-1\r\n" {
            let value = support::read_line(&mut s);
            match *request {
                b"GETRANGE s -5 -1\r\n" => assert_eq!(value, "World\r\n"),
                b"INCRBYFLOAT f 0.1\r\n" => assert_eq!(value, "10.6\r\n"),
                _ => {}
            }
        }
    }
}

/// Sets `<prefix>:0` to `<prefix>:<count - 1>`, each to its number, in one pipeline.
fn set_numbered(c: &mut redis::Connection, prefix: &str, count: usize) {
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(c).unwrap();
}

#[test]
fn scan_in_a_transaction_sees_the_transactions_own_writes() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    set_numbered(&mut c, "old", 50);
    // Pages of 3 through a walk of the whole store, each in a block that writes.
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = 0u64;
    for call in 0.. {
        assert!(call < 10_000, "the walk ends");
        let (_, _, (next, keys)): ((), i64, (u64, Vec<String>)) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("new")
            .arg(call)
            .cmd("DEL")
            .arg("old:0")
            .cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(3)
            .query(&mut c)
            .unwrap();
        assert!(
            keys.iter().any(|k| k == "new"),
            "the block's new key, on every page"
        );
        assert!(!keys.iter().any(|k| k == "old:0"), "not the key it deleted");
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let expected: std::collections::BTreeSet<String> = (1..50)
        .map(|i| format!("old:{i}"))
        .chain(std::iter::once("new".to_string()))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn scan_returns_every_key_present_throughout_while_others_write() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    set_numbered(&mut c, "stable", 500);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let written = std::sync::atomic::AtomicU64::new(0);
    // Until the churn has written `past` times (at most a second): so that writes really
    // come between the calls of the iteration.
    let churn_past = |past: u64| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while written.load(std::sync::atomic::Ordering::Relaxed) <= past
            && std::time::Instant::now() < until
        {
            std::thread::yield_now();
        }
        written.load(std::sync::atomic::Ordering::Relaxed)
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut w = server.client();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _: () = w.set(format!("churn:{i}"), i).unwrap();
                if i.is_multiple_of(2) {
                    let _: i64 = w.del(format!("churn:{}", i / 2)).unwrap();
                }
                i += 1;
                written.store(i, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0u64;
        let mut calls = 0;
        let mut interleaved = 0;
        let mut last = churn_past(0);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("stable:*")
                .arg("COUNT")
                .arg(37)
                .query(&mut c)
                .unwrap();
            assert!(keys.iter().all(|k| k.starts_with("stable:")));
            seen.extend(keys);
            calls += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
            let now = churn_past(last);
            interleaved += usize::from(now > last);
            last = now;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(seen.len(), 500, "every stable key, once or more");
        assert!(calls > 5, "the iteration took several calls ({calls})");
        assert_eq!(
            interleaved,
            calls - 1,
            "the churn wrote between every two calls"
        );
    });
    let (_, none): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("list")
        .arg("COUNT")
        .arg(10_000)
        .query(&mut c)
        .unwrap();
    assert!(none.is_empty());
    let mut s = server.raw();
    assert_eq!(line(&mut s, b"SCAN x\r\n"), "-ERR invalid cursor\r\n");
    assert_eq!(line(&mut s, b"SCAN 0 COUNT 0\r\n"), "-ERR syntax error\r\n");
}

#[test]
fn ttl_of_a_deadline_beyond_64_bit_milliseconds_saturates() {
    let dir = tempfile::tempdir().unwrap();
    let store = kv_store::KvStore::open(dir.path()).unwrap();
    // Through the library, a deadline further than Redis's replies can count.
    store
        .put_with_ttl("far", "v", Duration::from_secs(u64::MAX / 1000))
        .unwrap();
    let mut session = kv_server::Session::local(store);
    let ask = |session: &mut kv_server::Session, command: &str| {
        let args: Vec<bytes::Bytes> = command
            .split(' ')
            .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        session.handle(&args)
    };
    for command in ["TTL far", "PTTL far", "EXPIRETIME far", "PEXPIRETIME far"] {
        match ask(&mut session, command) {
            kv_server::Reply::Integer(n) => assert!(n > 1 << 40, "{command}: {n}"),
            other => panic!("{command}: {other:?}"),
        }
    }
}

#[test]
fn bgrewriteaof_compacts_in_the_background_and_info_says_how_it_went() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    for i in 0..2_000 {
        let _: () = c.set(format!("k{}", i % 100), i).unwrap();
    }
    let started: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert_eq!(started, "Background append only file rewriting started");
    // Writes go on while it runs; it ends, and says it went well.
    let _: () = c.set("during", "yes").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        if info.contains("aof_rewrite_in_progress:0") || std::time::Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(info.contains("aof_rewrite_in_progress:0"), "{info}");
    assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
    let stats: String = redis::cmd("INFO").arg("store").query(&mut c).unwrap();
    assert!(stats.contains("kv_compactions_total:1"), "{stats}");
    assert_eq!(
        c.get::<_, Option<String>>("during").unwrap().as_deref(),
        Some("yes")
    );
    assert_eq!(
        c.get::<_, Option<String>>("k99").unwrap().as_deref(),
        Some("1999")
    );
}

#[test]
fn command_docs_gives_each_commands_summary_and_group() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("GET")
        .arg("nosuchcommand")
        .query(&mut c)
        .unwrap();
    // RESP2: the map is a flat array of name, fields.
    let Value::Array(docs) = docs else {
        panic!("{docs:?}")
    };
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[0], Value::BulkString(b"get".to_vec()));
    let Value::Array(fields) = &docs[1] else {
        panic!("{docs:?}")
    };
    assert_eq!(fields[0], Value::BulkString(b"summary".to_vec()));
    assert_eq!(fields[2], Value::BulkString(b"group".to_vec()));
    assert_eq!(fields[3], Value::BulkString(b"string".to_vec()));
    // With no name, every command; a container lists its subcommands.
    let all: Value = redis::cmd("COMMAND").arg("DOCS").query(&mut c).unwrap();
    let Value::Array(all) = all else {
        panic!("{all:?}")
    };
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(
        all.len() / 2 >= 60 && all.len() / 2 <= count as usize,
        "{}",
        all.len()
    );
    let client = all
        .iter()
        .position(|v| *v == Value::BulkString(b"client".to_vec()))
        .expect("client is documented");
    assert!(format!("{:?}", all[client + 1]).contains("client|setname"));
}

/// `MGET` of more keys than one batched lookup reads (64), hits, misses, expired keys and
/// repeats mixed: each in its place, as a `GET` of each reads it.
#[test]
fn mget_of_many_keys_answers_each_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = kv_store::KvStore::open(dir.path()).unwrap();
    for i in 0..150 {
        if i % 3 != 0 {
            store.put(format!("k{i}"), format!("v{i}")).unwrap();
        }
    }
    store
        .put_with_ttl("k2", "gone", Duration::from_millis(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let mut session = kv_server::Session::local(store);
    let names: Vec<String> = (0..200).map(|i| format!("k{}", (i * 7) % 170)).collect();
    let mut args = vec![bytes::Bytes::from_static(b"MGET")];
    args.extend(names.iter().map(|n| bytes::Bytes::from(n.clone())));
    let kv_server::Reply::Array(replies) = session.handle(&args) else {
        panic!("MGET answers an array");
    };
    assert_eq!(replies.len(), names.len());
    for (name, reply) in names.iter().zip(replies) {
        let single = session.handle(&[bytes::Bytes::from_static(b"GET"), name.clone().into()]);
        assert_eq!(format!("{reply:?}"), format!("{single:?}"), "{name}");
        let i: usize = name[1..].parse().unwrap();
        match reply {
            kv_server::Reply::Bulk(value) => {
                assert!(i < 150 && !i.is_multiple_of(3) && i != 2, "{name}");
                assert_eq!(value, format!("v{i}"));
            }
            kv_server::Reply::Nil => assert!(i >= 150 || i.is_multiple_of(3) || i == 2, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// A `SET` with no condition and no `GET` writes without reading the key; in a pipeline and
/// inside `MULTI` its deadlines are still those of Redis: `EX` sets one, a plain `SET` drops
/// it, `KEEPTTL` keeps it, `PXAT` is absolute, and later commands of the block see each.
#[test]
fn set_without_a_condition_keeps_redis_deadlines_in_pipelines_and_blocks() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = server.client();
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 500_000;
    for atomic in [false, true] {
        let key = format!("b{atomic}");
        let mut pipe = redis::pipe();
        if atomic {
            pipe.atomic();
        }
        pipe.cmd("SET").arg(&key).arg("1").arg("EX").arg(100);
        pipe.cmd("TTL").arg(&key);
        pipe.cmd("SET").arg(&key).arg("2").arg("KEEPTTL");
        pipe.cmd("TTL").arg(&key);
        pipe.cmd("SET").arg(&key).arg("3");
        pipe.cmd("TTL").arg(&key);
        pipe.cmd("SET").arg(&key).arg("4").arg("PXAT").arg(far);
        pipe.cmd("PEXPIRETIME").arg(&key);
        pipe.cmd("GET").arg(&key);
        let (_, ttl_ex, _, ttl_kept, _, ttl_plain, _, at, value): (
            String,
            i64,
            String,
            i64,
            String,
            i64,
            String,
            u64,
            String,
        ) = pipe.query(&mut c).unwrap();
        assert_eq!(ttl_ex, 100, "{atomic}");
        assert!((99..=100).contains(&ttl_kept), "{atomic}: {ttl_kept}");
        assert_eq!(ttl_plain, -1, "{atomic}");
        assert_eq!(at, far, "{atomic}");
        assert_eq!(value, "4", "{atomic}");
        assert_eq!(c.pexpire_time::<_, u64>(&key).unwrap(), far, "{atomic}");
    }
}
