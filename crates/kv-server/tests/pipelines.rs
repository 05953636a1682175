//! Pipelines: a run of data commands from a write on is answered as one atomic block whose
//! writes share one commit. It must answer exactly what running the commands one at a time
//! answers, lose no increment between connections, and, when its commit fails, answer each
//! command as it would have been answered alone.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kv_server::{encode, Protocol, ServerOptions, Session};
use kv_store::{Durability, KvStore, Options};
use kv_wal::fs::fault::{Fault, FaultyFileSystem, Op};
use proptest::prelude::*;
use support::{request, TestServer};

/// What running `pipeline` one request at a time answers, encoded.
fn one_at_a_time(session: &mut Session, pipeline: &[Vec<String>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for words in pipeline {
        let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.clone())).collect();
        encode(&session.handle(&args), Protocol::Resp2, &mut out);
    }
    out.to_vec()
}

/// Sends `pipeline` in one write and reads `len` bytes of replies (fewer if the server
/// stops answering).
fn pipelined(stream: &mut TcpStream, pipeline: &[Vec<String>], len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = pipeline.iter().flat_map(|words| request(words)).collect();
    stream.write_all(&bytes).unwrap();
    let mut replies = vec![0; len];
    let mut read = 0;
    while read < len {
        match stream.read(&mut replies[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    replies.truncate(read);
    replies
}

fn words(text: &str) -> Vec<String> {
    text.split(' ').map(String::from).collect()
}

/// One data command over three keys and values that make INCR fail now and then, or a
/// command that counts or lists the keys.
fn command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c"]);
    let value = prop::sample::select(vec!["1", "10", "x"]);
    (0..21usize, key.clone(), key, value).prop_map(|(which, k, other, v)| {
        words(&match which {
            0 => format!("SET {k} {v}"),
            1 => format!("SET {k} {v} NX"),
            2 => format!("SET {k} {v} XX GET"),
            3 => format!("GET {k}"),
            4 => format!("INCR {k}"),
            5 => format!("INCRBY {k} -3"),
            6 => format!("DEL {k}"),
            7 => format!("DEL {k} {other}"),
            8 => format!("APPEND {k} {v}"),
            9 => format!("EXISTS {k} {other}"),
            10 => format!("MSET {k} {v} {other} 7"),
            11 => format!("GETSET {k} {v}"),
            12 => format!("GETDEL {k}"),
            13 => format!("STRLEN {k}"),
            14 => format!("EXPIRE {k} 100"),
            15 => format!("PERSIST {k}"),
            16 => format!("RENAME {k} {other}"),
            17 => format!("MSETNX {k} {v} {other} 5"),
            18 => format!("MGET {k} {other}"),
            // Commands that may stall, which a server runs off the runtime's threads.
            19 => "DBSIZE".to_string(),
            _ => format!("KEYS {k}"),
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Pipelines mixing reads, blind writes and read-modify-writes of the same keys,
    /// through the server (in blocks) and through a session one request at a time.
    /// Under `Sync` blocks go to the writer thread; under `Batch` they are written in
    /// place where nothing can make them wait. On one runtime thread replies are gathered.
    #[test]
    fn a_pipeline_answers_as_one_at_a_time_execution_would(
        pipelines in prop::collection::vec(prop::collection::vec(command(), 1..40), 1..4),
        sync in any::<bool>(),
        threads in 1..=2usize,
    ) {
        let server = server(sync, threads);
        let mut stream = server.raw();
        let dir = tempfile::tempdir().unwrap();
        let mut model = Session::local(KvStore::open(dir.path()).unwrap());
        for pipeline in &pipelines {
            let expected = one_at_a_time(&mut model, pipeline);
            let got = pipelined(&mut stream, pipeline, expected.len());
            prop_assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "{:?}",
                pipeline
            );
        }
    }
}

/// A server over a store that syncs every write (`sync`, whose writes go to the writer
/// thread), or batches its syncs (whose writes are made in place when they can be), on a
/// runtime of `threads` threads (one: each connection's replies wait for the other ready
/// connections to be served).
fn server(sync: bool, threads: usize) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let durability = if sync {
        Durability::Sync
    } else {
        Durability::Batch(Duration::from_millis(5))
    };
    let store = KvStore::open_with(dir.path(), Options::default().durability(durability)).unwrap();
    TestServer::serve_on(threads, dir, store, ServerOptions::default())
}

/// Each pairing of durability (synced or batched) and runtime threads (one or two).
const SERVERS: [(bool, usize); 4] = [(false, 2), (true, 2), (false, 1), (true, 1)];

#[test]
fn a_pipeline_of_each_kind_answers_as_redis_does() {
    for (sync, threads) in SERVERS {
        a_pipeline_of_each_kind_answers_as_redis_does_with(sync, threads);
    }
}

fn a_pipeline_of_each_kind_answers_as_redis_does_with(sync: bool, threads: usize) {
    let server = server(sync, threads);
    let mut stream = server.raw();
    let pipeline: Vec<Vec<String>> = [
        "GET k",
        "SET k 1",
        "INCR k",
        "GET k",
        "SET k v",
        "INCR k",
        "DEL k k",
        "INCR k",
        "GET k",
        "SET n 5 NX",
        "GET n",
    ]
    .iter()
    .map(|text| words(text))
    .collect();
    let expected = "$-1\r\n+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n\
                    -ERR value is not an integer or out of range\r\n:1\r\n:1\r\n$1\r\n1\r\n\
                    +OK\r\n$1\r\n5\r\n";
    let got = pipelined(&mut stream, &pipeline, expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

#[test]
fn pipelines_whose_replies_span_many_chunks_come_back_whole_and_in_order() {
    for (sync, threads) in SERVERS {
        pipelines_whose_replies_span_many_chunks_come_back_whole_and_in_order_with(sync, threads);
    }
}

/// Several clients at once, each pipelining reads whose replies (320 KiB a pipeline) are
/// written in several 64 KiB chunks, each chunk only once the client took the last: on one
/// runtime thread each chunk also waits for the other ready connections.
fn pipelines_whose_replies_span_many_chunks_come_back_whole_and_in_order_with(
    sync: bool,
    threads: usize,
) {
    const CLIENTS: usize = 6;
    const KEYS: usize = 8;
    const ROUNDS: usize = 5;
    let server = server(sync, threads);
    let value =
        |key: usize| -> Vec<u8> { (0..40 * 1024).map(|i| (i * 31 + key * 7) as u8).collect() };
    let mut c = server.client();
    for key in 0..KEYS {
        let _: () = redis::Commands::set(&mut c, format!("big:{key}"), value(key)).unwrap();
    }
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let server = &server;
            scope.spawn(move || {
                let mut c = server.client();
                for round in 0..ROUNDS {
                    // Each client asks in an order of its own, with a write among the reads.
                    let order: Vec<usize> =
                        (0..KEYS).map(|i| (i + client + round) % KEYS).collect();
                    let mut pipe = redis::pipe();
                    for &key in &order {
                        pipe.cmd("GET").arg(format!("big:{key}"));
                        pipe.cmd("SET")
                            .arg(format!("mark:{client}"))
                            .arg(round)
                            .ignore();
                    }
                    let replies: Vec<Vec<u8>> = pipe.query(&mut c).unwrap();
                    assert_eq!(replies.len(), KEYS);
                    for (reply, &key) in replies.iter().zip(&order) {
                        assert!(
                            *reply == value(key),
                            "client {client}: big:{key} whole, in its place"
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn concurrent_pipelined_incr_of_one_key_loses_no_increment() {
    for (sync, threads) in SERVERS {
        concurrent_pipelined_incr_of_one_key_loses_no_increment_with(sync, threads);
    }
}

fn concurrent_pipelined_incr_of_one_key_loses_no_increment_with(sync: bool, threads: usize) {
    const CLIENTS: usize = 8;
    const PIPELINES: usize = 40;
    const DEPTH: usize = 16;
    let server = server(sync, threads);
    let answers: Vec<i64> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let server = &server;
                scope.spawn(move || {
                    let mut c = server.client();
                    let mut answers = Vec::new();
                    for _ in 0..PIPELINES {
                        let mut pipe = redis::pipe();
                        for i in 0..DEPTH {
                            pipe.cmd("INCR").arg("hot");
                            // Other keys in the same blocks, read and written.
                            pipe.cmd("SET")
                                .arg(format!("c{client}:{i}"))
                                .arg(i)
                                .ignore();
                        }
                        let replies: Vec<i64> = pipe.query(&mut c).unwrap();
                        assert!(
                            replies.windows(2).all(|w| w[0] < w[1]),
                            "a pipeline's increments come in its order: {replies:?}"
                        );
                        answers.extend(replies);
                    }
                    answers
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let total = (CLIENTS * PIPELINES * DEPTH) as i64;
    let mut sorted = answers;
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=total).collect::<Vec<_>>(),
        "each INCR answered a value of its own"
    );
    let mut c = server.client();
    assert_eq!(
        redis::Commands::get::<_, i64>(&mut c, "hot").unwrap(),
        total
    );
}

#[test]
fn a_block_whose_commit_fails_answers_each_command_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFileSystem::new();
    let store = KvStore::open_with(
        dir.path(),
        Options::default()
            .durability(Durability::Sync)
            .file_system(Arc::new(fs)),
    )
    .unwrap();
    store.put("a", "old").unwrap();
    let server = TestServer::serve(dir, store, ServerOptions::default());
    let mut stream = server.raw();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    faults.fail_once(Op::Sync, 0, Fault::Error(std::io::ErrorKind::Other));
    let pipeline: Vec<Vec<String>> = ["SET a new", "INCR n", "GET a", "SET b 2", "GET b"]
        .iter()
        .map(|text| words(text))
        .collect();
    // The block's fsync fails: none of it is applied, and the store refuses writes from
    // then on. Each write answers the error; each read answers what the store holds.
    let refused = "-ERR the store refuses every write until it is reopened\r\n";
    let expected = format!("{refused}{refused}$3\r\nold\r\n{refused}$-1\r\n");
    let got = pipelined(&mut stream, &pipeline, expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);
    let closed = server.stop_result();
    assert!(
        matches!(
            closed,
            Err(kv_server::Error::Store(kv_store::Error::Failed(_)))
        ),
        "{closed:?}"
    );
}

#[test]
fn a_block_over_a_limit_answers_each_command_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open_with(dir.path(), Options::default().max_value_size(8)).unwrap();
    let server = TestServer::serve(dir, store, ServerOptions::default());
    let mut stream = server.raw();
    // The APPEND takes `a` over the value limit: the block is refused whole, then run one
    // command at a time, where only the APPEND fails.
    let pipeline: Vec<Vec<String>> = ["SET a 12345", "APPEND a 6789", "INCR n", "GET a"]
        .iter()
        .map(|text| words(text))
        .collect();
    let bytes: Vec<u8> = pipeline.iter().flat_map(|words| request(words)).collect();
    stream.write_all(&bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 256];
    while !got.ends_with(b"12345\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "+OK", "{text}");
    assert!(lines[1].starts_with("-ERR "), "{text}");
    assert_eq!(&lines[2..6], [":1", "$5", "12345", ""], "{text}");
}
