//! Clients that do not play along: ones that never read their replies, a burst of
//! connections past `maxclients`, and a pipeline in flight when the server stops.
//!
//! Each case runs on a runtime of one thread, as `kv serve` does on 2 cores (whatever such
//! a client does must not hold up the one thread every connection shares, and replies
//! there wait for the other ready connections), and on one of two.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use kv_server::ServerOptions;
use redis::Commands;
use support::{closed, line, read_line, TestServer};

/// The runtime threads each case runs on.
const THREADS: [usize; 2] = [1, 2];

/// For each case, a test that runs it on each of [`THREADS`]: `<case>::on_each_runtime`.
macro_rules! on_each_runtime {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn on_each_runtime() {
                for threads in super::THREADS {
                    super::$case(threads);
                }
            }
        }
    )*};
}

on_each_runtime! {
    a_client_that_never_reads_is_disconnected_and_frees_its_slot,
    the_idle_timeout_also_ends_a_wait_for_a_client_to_read,
    a_reply_past_the_output_limit_closes_the_connection,
    maxclients_serves_the_first_connections_accepted,
    a_pipeline_read_before_the_stop_is_all_run_and_answered,
}

/// Pipelines `count` `GET big` to `stream` in one write (a few bytes each).
fn pipeline_gets(stream: &mut std::net::TcpStream, count: usize) {
    let request = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(count);
    stream.write_all(&request).unwrap();
}

fn a_client_that_never_reads_is_disconnected_and_frees_its_slot(threads: usize) {
    let server = TestServer::start_on(
        threads,
        ServerOptions {
            maxclients: 2,
            write_timeout: Duration::from_millis(300),
            ..ServerOptions::default()
        },
    );
    let mut setter = server.client();
    let _: () = setter.set("big", vec![b'x'; 1024 * 1024]).unwrap();
    drop(setter);
    // 64 MiB of replies: far more than the sockets' buffers hold; it never reads.
    let mut deaf = server.raw();
    pipeline_gets(&mut deaf, 64);
    let started = Instant::now();
    // Another client is served meanwhile (it waits for the slot the setter left).
    let mut other = loop {
        let mut other = server.raw();
        if line(&mut other, b"PING\r\n") == "+PONG\r\n" {
            break other;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no slot for another client"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // A third waits for the deaf client's slot, which comes back at the write timeout.
    loop {
        let mut third = server.raw();
        if line(&mut third, b"PING\r\n") == "+PONG\r\n" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the client that does not read kept its slot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(line(&mut other, b"PING\r\n"), "+PONG\r\n");
}

fn the_idle_timeout_also_ends_a_wait_for_a_client_to_read(threads: usize) {
    let server = TestServer::start_on(
        threads,
        ServerOptions {
            timeout: Some(Duration::from_millis(300)),
            ..ServerOptions::default()
        },
    );
    let mut setter = server.client();
    let _: () = setter.set("big", vec![b'x'; 1024 * 1024]).unwrap();
    let mut deaf = server.raw();
    pipeline_gets(&mut deaf, 64);
    std::thread::sleep(Duration::from_millis(1000));
    // Its connection was closed: reading now gets what the sockets' buffers held, not
    // the 64 MiB of replies, and then EOF.
    let started = Instant::now();
    let mut sink = vec![0u8; 1 << 20];
    let mut received = 0;
    loop {
        match deaf.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(error) => {
                assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still connected"
        );
    }
    assert!(
        received < 64 * 1024 * 1024,
        "all {received} bytes of replies sent"
    );
}

fn a_reply_past_the_output_limit_closes_the_connection(threads: usize) {
    let server = TestServer::start_on(
        threads,
        ServerOptions {
            output_limit: 512 * 1024,
            ..ServerOptions::default()
        },
    );
    let mut c = server.client();
    let _: () = c.set("big", vec![b'x'; 1024 * 1024]).unwrap();
    let _: () = c.set("small", vec![b'x'; 1024]).unwrap();
    let mut s = server.raw();
    assert!(line(&mut s, b"STRLEN big\r\n") == ":1048576\r\n");
    s.write_all(b"GET big\r\n").unwrap();
    assert!(closed(&mut s), "a 1 MiB reply past a 512 KiB limit");
    // Others, and smaller replies, are unaffected.
    assert_eq!(c.get::<_, Vec<u8>>("small").unwrap().len(), 1024);
}

fn maxclients_serves_the_first_connections_accepted(threads: usize) {
    let server = TestServer::start_on(
        threads,
        ServerOptions {
            maxclients: 2,
            ..ServerOptions::default()
        },
    );
    for _ in 0..20 {
        let mut streams: Vec<_> = (0..4).map(|_| server.raw()).collect();
        for stream in &mut streams[..2] {
            assert_eq!(line(stream, b"PING\r\n"), "+PONG\r\n");
        }
        for stream in &mut streams[2..] {
            assert_eq!(read_line(stream), "-ERR max number of clients reached\r\n");
            assert!(closed(stream));
        }
        drop(streams);
        // Both slots back before the next round.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut info = loop {
            let mut probe = server.raw();
            if line(&mut probe, b"PING\r\n") == "+PONG\r\n" {
                break probe;
            }
            assert!(Instant::now() < deadline, "the slots never came back");
            std::thread::sleep(Duration::from_millis(5));
        };
        loop {
            info.write_all(b"INFO clients\r\n").unwrap();
            let header = read_line(&mut info);
            let length: usize = header[1..header.len() - 2].parse().unwrap();
            let mut body = vec![0u8; length + 2];
            info.read_exact(&mut body).unwrap();
            if String::from_utf8_lossy(&body).contains("connected_clients:1\r\n") {
                break;
            }
            assert!(Instant::now() < deadline, "the slots never came back");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The probe's slot is released before its connection closes.
        assert_eq!(line(&mut info, b"QUIT\r\n"), "+OK\r\n");
        assert!(closed(&mut info));
    }
}

fn a_pipeline_read_before_the_stop_is_all_run_and_answered(threads: usize) {
    let server = TestServer::start_on(threads, ServerOptions::default());
    let mut c = server.client();
    let big = vec![b'x'; 1024 * 1024];
    let _: () = c.set("big", &big[..]).unwrap();
    drop(c);
    // 20 × (GET big, SET k<i> i): 20 MiB of replies, so the server is still writing
    // them (its client not reading yet) when the stop comes; the requests (a few hundred
    // bytes) were all read at once.
    let mut s = server.raw();
    let mut request = Vec::new();
    for i in 0..20 {
        request.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        let (key, value) = (format!("k{i}"), i.to_string());
        request.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    s.write_all(&request).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let stopper = std::thread::spawn(move || server.stop());
    std::thread::sleep(Duration::from_millis(100));
    // Now the client reads: every reply comes, in order.
    let mut reader = std::io::BufReader::new(s);
    let expected_get = format!("${}\r\n", big.len());
    for i in 0..20 {
        let mut header = String::new();
        std::io::BufRead::read_line(&mut reader, &mut header).unwrap();
        assert_eq!(header, expected_get, "reply {i}");
        let mut body = vec![0u8; big.len() + 2];
        reader.read_exact(&mut body).unwrap();
        let mut ok = String::new();
        std::io::BufRead::read_line(&mut reader, &mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n", "SET k{i}");
    }
    let dir = stopper.join().unwrap();
    let store = kv_store::KvStore::open(dir.path()).unwrap();
    for i in 0..20 {
        assert_eq!(store.get(format!("k{i}")).unwrap(), i.to_string());
    }
}
