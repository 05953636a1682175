//! A server on 127.0.0.1:0 in a thread of its own, and raw protocol helpers.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use kv_server::{Server, ServerOptions};
use kv_store::KvStore;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), kv_server::Error>>>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start(options: ServerOptions) -> TestServer {
        Self::start_on(RUNTIME_THREADS, options)
    }

    /// A server over a new store on a runtime of `threads` threads.
    pub fn start_on(threads: usize, options: ServerOptions) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path()).unwrap();
        Self::serve_on(threads, dir, store, options)
    }

    pub fn start_in(dir: tempfile::TempDir, options: ServerOptions) -> TestServer {
        let store = KvStore::open(dir.path()).unwrap();
        Self::serve(dir, store, options)
    }

    /// Serves `store`, opened in `dir`, on a runtime of two threads.
    pub fn serve(dir: tempfile::TempDir, store: KvStore, options: ServerOptions) -> TestServer {
        Self::serve_on(RUNTIME_THREADS, dir, store, options)
    }

    /// Serves `store`, opened in `dir`, on a runtime of `threads` threads (one: its
    /// connections gather their replies).
    pub fn serve_on(
        threads: usize,
        dir: tempfile::TempDir,
        store: KvStore,
        options: ServerOptions,
    ) -> TestServer {
        let options = ServerOptions {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..options
        };
        Self::run_on(threads, dir, |listening, stopped| async move {
            let server = Server::bind(store, options).await?;
            listening.send(server.local_addr()?).unwrap();
            server
                .run_until(async {
                    stopped.await.ok();
                })
                .await
        })
    }

    /// Runs `serve` on a runtime in a thread of its own: it sends the address it listens
    /// on, then serves until `stopped` (a replicated server runs this way too).
    pub fn run<F, Fut>(dir: tempfile::TempDir, serve: F) -> TestServer
    where
        F: FnOnce(std::sync::mpsc::Sender<SocketAddr>, tokio::sync::oneshot::Receiver<()>) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = Result<(), kv_server::Error>>,
    {
        Self::run_on(RUNTIME_THREADS, dir, serve)
    }

    /// [`TestServer::run`] on a runtime of `threads` threads.
    pub fn run_on<F, Fut>(threads: usize, dir: tempfile::TempDir, serve: F) -> TestServer
    where
        F: FnOnce(std::sync::mpsc::Sender<SocketAddr>, tokio::sync::oneshot::Receiver<()>) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = Result<(), kv_server::Error>>,
    {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || runtime(threads).block_on(serve(addr_tx, stopped)));
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        }
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://{}/", self.addr))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    /// Stops the server (graceful shutdown) and returns its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shutdown();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Stops the server and returns what serving ended with (a store that failed does not
    /// close cleanly).
    pub fn stop_result(mut self) -> Result<(), kv_server::Error> {
        let stop = self.stop.take().unwrap();
        let _ = stop.send(());
        self.thread.take().unwrap().join().unwrap()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.thread.take().unwrap().join().unwrap().unwrap();
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        }
    }
}

/// `args` as a request in the protocol's multibulk form.
pub fn request(args: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Whether `tool` (`redis-server`, `redis-cli`, `redis-benchmark`) can be run. Where it
/// cannot, the test that needs it says so and skips, unless `KV_REQUIRE_REDIS_TOOLS` is set
/// (`.ci/run` sets it where it could install them), which makes a missing tool a failure:
/// CI must not pass by comparing nothing.
pub fn installed(tool: &str) -> bool {
    if std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("KV_REQUIRE_REDIS_TOOLS").is_none(),
        "{tool} is not installed, and KV_REQUIRE_REDIS_TOOLS says the tests need it"
    );
    eprintln!("note: {tool} is not installed (Debian: redis-server, redis-tools); skipped");
    false
}

/// The runtime threads a server under test has unless a test asks otherwise.
pub const RUNTIME_THREADS: usize = 2;

/// The runtime `kv serve` builds for `threads` threads.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    kv_server::runtime(threads).unwrap()
}

/// Sends `request` and reads one line of reply (through its `\r\n`).
pub fn line(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).unwrap();
    read_line(stream)
}

/// Sends each request in turn and checks its one-line reply.
pub fn expect_lines<S: AsRef<str>>(stream: &mut TcpStream, cases: &[(&[u8], S)]) {
    for (request, expected) in cases {
        assert_eq!(
            line(stream, request),
            expected.as_ref(),
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

pub fn read_line(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let mut byte = [0u8];
    while !reply.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => reply.push(byte[0]),
            Err(error) => panic!(
                "reading a reply: {error} (so far {:?})",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
    String::from_utf8(reply).unwrap()
}

/// Whether the server closed the connection (EOF or a reset; not a read timeout).
pub fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    }
}
