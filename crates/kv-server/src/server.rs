//! The TCP server: accepting, connections, pipelining, shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kv_store::{KvStore, WriteOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::codec::{encode, Decoder, Limits};
use crate::command;
use crate::error::{Error, Result};
use crate::prefetch;
use crate::reply::Reply;
use crate::session::{Session, Shared};
use crate::writer::{self, Job};

/// A [`Server`]'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Where to listen (port 0: any free port; [`Server::local_addr`] tells which).
    pub bind: SocketAddr,
    /// The password `AUTH` must give before any other command runs (none: no `AUTH`).
    pub requirepass: Option<String>,
    /// Connections served at once; one more is answered
    /// `-ERR max number of clients reached` and closed.
    pub maxclients: usize,
    /// Closes a connection idle this long (none: never); a connection whose replies
    /// wait for the client to read them is idle too.
    pub timeout: Option<Duration>,
    /// Closes a connection whose client takes none of its replies' bytes for this long,
    /// so a client that never reads cannot hold its slot for ever.
    pub write_timeout: Duration,
    /// Closes a connection whose unsent replies reach this many bytes, as Redis's
    /// `client-output-buffer-limit` hard limit does. The server holds at most one chunk
    /// of replies (64 KiB) plus one reply unsent per connection, and reads no more
    /// requests until the client takes them: so this bounds one reply's size (`KEYS *`,
    /// a large `MGET`), and [`ServerOptions::write_timeout`] the client that stops reading.
    pub output_limit: usize,
    /// The largest request accepted.
    pub limits: Limits,
    /// A replicated server's bound on how long a request waits for Raft: a write for a
    /// majority to take its entry, a linearizable read for a majority to confirm the
    /// leader. Past it the client is answered `-CLUSTERDOWN` (a write proposed "may or may
    /// not have been applied") instead of waiting as long as a majority is down. The
    /// single-node server does not use it.
    pub commit_timeout: Duration,
}

impl Default for ServerOptions {
    /// `127.0.0.1:6379`, no password, 10,000 clients, no idle timeout, a 60 s write
    /// timeout, a 5 s commit timeout, a 256 MiB output limit (so a reply holding three of the largest values,
    /// an `MGET` of them, still goes out), bulks up to the log's value limit (64 MiB).
    fn default() -> ServerOptions {
        ServerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 6379)),
            requirepass: None,
            maxclients: 10_000,
            timeout: None,
            write_timeout: Duration::from_secs(60),
            output_limit: 256 * 1024 * 1024,
            commit_timeout: Duration::from_secs(5),
            limits: Limits {
                // A larger bulk could never be stored: refuse it before reading it.
                max_bulk: kv_wal::DEFAULT_MAX_VALUE_SIZE,
                ..Limits::default()
            },
        }
    }
}

/// A Redis-protocol server over a [`KvStore`]. The store knows nothing of it.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Where connections queue pipelines that write (`writer.rs`), and its thread.
    writer: Sender<Job>,
    writer_thread: std::thread::JoinHandle<()>,
}

/// The options of a store that a server puts on the network: the store's defaults (the
/// hash index), but with 128 lock shards per core instead of 16 (a power of two between
/// 256 and 4,096, where the store's default lies between 16 and 1,024). For the hash index
/// only: every scan of the ordered index visits each shard.
///
/// A server applies each pipeline's writes as one batch, under the locks of every shard
/// they touch, while its other runtime threads look keys up: with sixteen shards a core, a
/// block of 16 `INCR`s held half of a 2-core machine's shards, and the reads that met them
/// slept and woke. Measured with `kv serve` (two runtime threads, 50 clients,
/// redis-benchmark `-P 16`, four alternating rounds): `INCR` 452,000-514,000/s with 32
/// shards against 505,000-571,000 with 256 (medians 469,000 and 530,000), `SET` medians
/// 481,000 and 514,000, `GET` and `MSET` level. A single writer's puts (W2) went from
/// 0.91 M to 0.84 M/s in the same test, which is why the store's own default stays lower.
/// On one runtime thread (`kv serve`'s default on 2 cores) the reads meet only the writer
/// thread's blocks (under `sync`); the count was not measured again for it.
///
/// ```
/// let options = kv_server::store_options().durability(kv_store::Durability::Sync);
/// # let dir = tempfile::tempdir().unwrap();
/// let store = kv_store::KvStore::open_with(dir.path(), options).unwrap();
/// # store.close().unwrap();
/// ```
pub fn store_options() -> kv_store::Options {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    kv_store::Options::default().shards((cores * 128).next_power_of_two().clamp(256, 4096))
}

/// The runtime a server runs best on with `threads` threads for its connections (`kv
/// serve` builds its own with this): tokio's current-thread scheduler for one, its
/// multi-thread scheduler for more; I/O and timers enabled. On one thread the
/// multi-thread scheduler still keeps its work-stealing bookkeeping: two clock reads and
/// a `powf` for each batch of tasks it runs, and a task's every wake goes through atomics
/// meant for other threads. Measured with `kv serve` on 2 cores against redis-benchmark
/// (50 clients, 1 s batch window, three alternating rounds, server CPU a request): `GET -P
/// 1` 5.23-5.36 µs against 5.36-5.50 with the multi-thread scheduler of one worker,
/// `INCR -P 1` 6.50-7.03 against 6.80-7.40.
///
/// ```
/// let runtime = kv_server::runtime(1).unwrap();
/// assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
/// ```
///
/// # Errors
///
/// Those of building the runtime (its I/O driver).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Listens on `addr`, for either server.
///
/// # Errors
///
/// [`Error::Bind`] if the address cannot be bound.
pub(crate) async fn listen(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

impl Server {
    /// Listens on `options.bind` for requests to `store`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound.
    pub async fn bind(store: KvStore, options: ServerOptions) -> Result<Server> {
        let listener = listen(options.bind).await?;
        let port = listener.local_addr()?.port();
        let (writer, writer_thread) = writer::start(store.clone())?;
        Ok(Server {
            listener,
            writer,
            writer_thread,
            shared: Arc::new(Shared::new(store, options, port, 0)),
        })
    }

    /// The address it listens on (the real port when asked for port 0).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets every connection
    /// finish the requests it has read, and closes the store.
    ///
    /// Every complete request a connection has read is run (a half-received one is
    /// not), and answered if its client takes the replies: one that takes no byte for
    /// 1 s (or the write timeout, if shorter) gets no more, but its requests still run.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store fails to close (accept errors are retried, a
    /// connection's errors close that connection only).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server {
            listener,
            writer,
            writer_thread,
            shared,
        } = self;
        accept_until(
            listener,
            &shared,
            shutdown,
            |stream, addr, slot, stopped| serve(stream, addr, slot, stopped, writer.clone()),
        )
        .await;
        // Every connection is gone: the writer ends once this last sender is dropped.
        drop(writer);
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        shared.store.clone().close_async().await?;
        Ok(())
    }
}

/// Accepts connections until `shutdown` completes, each counted in the order of accept so
/// the first `maxclients` are the ones served (`serve` runs each, holding its slot; one more
/// is told `-ERR max number of clients reached`); then stops accepting, tells every
/// connection through its `stopped` receiver, and returns once every one has ended.
pub(crate) async fn accept_until<F, Fut>(
    listener: TcpListener,
    shared: &Arc<Shared>,
    shutdown: impl Future<Output = ()>,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, ClientSlot, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, addr)) = accepted else {
                    // Out of descriptors, a connection reset before accept: brief, and
                    // no reason to stop serving the others.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                shared.connections_received.fetch_add(1, Ordering::Relaxed);
                let clients = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
                let slot = ClientSlot(Arc::clone(shared));
                if clients > shared.options.maxclients {
                    drop(slot);
                    connections.spawn(refuse(stream));
                } else {
                    connections.spawn(serve(stream, addr, slot, stopped.clone()));
                }
            }
            // Reaps finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// Holds a client slot while a connection lives.
pub(crate) struct ClientSlot(Arc<Shared>);

impl ClientSlot {
    /// What the server's connections share.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tells a connection past `maxclients` why it is closed (if it takes the line soon).
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        REFUSAL_WRITE_TIMEOUT,
        stream.write_all(b"-ERR max number of clients reached\r\n"),
    )
    .await;
}

/// How long a refused connection may take to accept its error line.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long, once the server stops, a client may take no bytes of its replies before
/// they are dropped (the requests it sent still run).
const SHUTDOWN_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    slot: ClientSlot,
    mut stopped: watch::Receiver<bool>,
    writer: Sender<Job>,
) {
    let shared = Arc::clone(slot.shared());
    let _slot = slot;
    let _ = stream.set_nodelay(true);
    let timeout = shared.options.timeout;
    // A pending reply counts as idle too: the shorter of the two limits applies.
    let write_timeout = timeout.map_or(shared.options.write_timeout, |idle| {
        idle.min(shared.options.write_timeout)
    });
    let output_limit = shared.options.output_limit;
    // Set once the client stalls at shutdown: the requests it sent still run, their
    // replies are dropped.
    let mut deaf = false;
    let mut decoder = Decoder::new(shared.options.limits);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut session = Some(Session::new(shared.clone(), Some(addr)));
    // Requests read but not yet answered, and the protocol error that ends them, if any.
    let mut pending = VecDeque::new();
    let mut broken = None;
    // Whether the input may hold more requests than were decoded.
    let mut more_input = false;
    let gather = gathers_replies();
    // The server's stop, waited for beside every read: one wait for the connection's life,
    // rather than one made and dropped for each read.
    let mut stop_signal = stopped.clone();
    let stop = async move {
        let _ = stop_signal.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        if pending.is_empty() && broken.is_none() {
            // Before AUTH, one request at a time: the next one's limits depend on whether
            // this one authenticates.
            let authenticated = session.as_ref().is_some_and(Session::is_authenticated);
            decoder.set_authenticated(authenticated);
            more_input = false;
            loop {
                match decoder.decode(&mut input) {
                    Ok(Some(request)) => {
                        pending.push_back(request);
                        if !authenticated {
                            more_input = true;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        broken = Some(error);
                        break;
                    }
                }
            }
            // The keys of the requests just read, looked up together once: their lookups
            // as the commands run then mostly find them in the cache.
            prefetch::prefetch(&shared.store, &pending);
        }
        let Some(mut current) = session.take() else {
            return;
        };
        // What can be answered here is answered first: reads, and when the store can
        // write without waiting (no limits, no fsync awaited) the writes too (the store
        // itself refuses on this thread any write that would wait). The answering stops,
        // leaving the rest unrun, at a write that could wait (for the writer: reads before
        // a pipeline's first write are answered here, not on the writer, where they would
        // hold up every connection's writes) or a command that may stall. A pipeline that
        // starts with a write that must wait goes to the writer without a look.
        //
        // Writes that return before their fsync are answered here while nothing can
        // make them wait, as the store's async writes are: a trip to the writer costs
        // more than the writes, and the runtime's threads share the work the one
        // writer would do alone. Measured with 50 clients under `Batch` on a shared
        // 2-core VM: SET -P 1 went from about 41k to 50-80k/s; at -P 16, with every
        // pipeline in place rather than only short ones, SET 190-300k/s against
        // 140-220k and INCR 150-220k against 75-320k (the lone writer suffered most
        // when the machine was busy).
        if shared.store.writes_in_place(WriteOptions::default())
            || !pending
                .front()
                .and_then(|r| command::lookup(&r[0]))
                .is_some_and(command::Spec::writes)
        {
            current.answer_in_place(&mut pending, &mut output, OUTPUT_CHUNK);
        }
        // What is left, looked up once: a write that could wait, a command that may
        // stall, or replies past a chunk with requests after them.
        let (has_write, mut stalls) = kinds(&pending);
        // Only an authenticated session runs them: before AUTH each gets `-NOAUTH` at once.
        stalls &= current.is_authenticated();
        if output.len() >= OUTPUT_CHUNK {
            // A chunk of replies to send first.
        } else if stalls {
            // Off the runtime's threads, which every connection shares (on 2 cores there
            // is one), and off the writer, which every connection's writes share: a `KEYS`
            // of a million keys, or an `INFO` waiting for the log's lock across a commit's
            // fsync, then holds up only this connection. The pipeline's writes, if any,
            // commit there too, through the store's own group commit.
            let (mut requests, mut out) =
                (std::mem::take(&mut pending), std::mem::take(&mut output));
            let answered = off_the_runtime(&shared, move || {
                current.answer(&mut requests, &mut out, OUTPUT_CHUNK);
                (current, requests, out)
            })
            .await;
            let Some((back, requests_back, out_back)) = answered else {
                return;
            };
            (current, pending, output) = (back, requests_back, out_back);
        } else if has_write {
            // Writes may wait for an fsync: never on a runtime thread. The writer answers
            // the pipeline (or a chunk of its replies), with other connections'.
            let (done, answered) = tokio::sync::oneshot::channel();
            let job = Job {
                session: current,
                requests: std::mem::take(&mut pending),
                output: std::mem::take(&mut output),
                chunk: OUTPUT_CHUNK,
                done,
            };
            if writer.send(job).is_err() {
                return;
            }
            let Ok((back, requests_back, out_back)) = answered.await else {
                return;
            };
            (current, pending, output) = (back, requests_back, out_back);
        } else {
            current.answer(&mut pending, &mut output, OUTPUT_CHUNK);
        }
        if let (Some(error), true) = (&broken, pending.is_empty()) {
            encode(
                &Reply::error(format!("ERR {error}")),
                current.protocol,
                &mut output,
            );
        }
        if output.len() > output_limit {
            // Redis's hard output limit: the connection closes, the rest of its
            // pipeline unrun.
            return;
        }
        if !output.is_empty() {
            if gather && !deaf {
                requeue().await;
            }
            if !deaf && !send(&mut stream, &output, write_timeout, &mut stopped).await {
                if !*stopped.borrow() {
                    return;
                }
                deaf = true;
            }
            output.clear();
        }
        if current.closing || (broken.is_some() && pending.is_empty()) {
            return;
        }
        session = Some(current);
        if !pending.is_empty() || more_input {
            // More replies to make (or requests already read to decode): only once the
            // client has taken these, so a client that does not read holds one chunk of
            // replies at most, not its whole pipeline's. At shutdown too: every request
            // read is run.
            continue;
        }
        if *stopped.borrow() {
            // Every complete request read has been run and answered.
            return;
        }
        let read = async {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, stream.read_buf(&mut input))
                    .await
                    .unwrap_or(Ok(0)),
                None => stream.read_buf(&mut input).await,
            }
        };
        tokio::select! {
            biased;
            read = read => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            () = &mut stop => return,
        }
    }
}

/// Runs `work`, which may take long ([`command::Spec::may_stall`]), on tokio's blocking
/// pool, holding one of the server's permits for such work (`Shared::stalling`); `None` if
/// it panicked or the server is gone.
pub(crate) async fn off_the_runtime<T: Send + 'static>(
    shared: &Shared,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let _permit = shared.stalling.acquire().await.ok()?;
    tokio::task::spawn_blocking(work).await.ok()
}

/// Whether any of `requests` writes, and whether any may take long with no write of its
/// own ([`command::Spec::may_stall`]): one look at the command table a request.
fn kinds(requests: &VecDeque<Vec<Bytes>>) -> (bool, bool) {
    requests
        .iter()
        .filter_map(|request| command::lookup(&request[0]))
        .fold((false, false), |(writes, stalls), spec| {
            (writes || spec.writes(), stalls || spec.may_stall())
        })
}

/// Whether a connection, its replies made, lets the runtime serve the other connections
/// ready now before it writes them: on a runtime of one thread.
///
/// Written at once, each connection's replies wake the client's thread once more: a
/// wake-up (an interrupt to another core) per write, 30% of the server's CPU in a profile
/// of `INCR -P 16` with the client on the same machine. Written once the other ready
/// connections are served, the replies leave one after another, as Redis's event loop
/// writes its replies before it sleeps, and a client reading many connections finds
/// several ready at each wake. Measured on 2 cores, one runtime thread, 50 clients, 1 s
/// batch window: `SET -P 16` 700-717k requests/s and 1.40-1.44 µs of server CPU each,
/// against 522-530k and 1.97-1.99 µs; `INCR -P 16` 808-832k against 537-539k; `-P 1` and a
/// lone client the same within the noise. On a runtime of two threads it cost `-P 1`
/// a tenth to a fifth (126-133k `SET`s/s against 147k): the thread that yields parks and
/// the other is woken instead.
fn gathers_replies() -> bool {
    tokio::runtime::Handle::current().metrics().num_workers() == 1
}

/// Lets the tasks queued on this thread now run before the calling one goes on: it wakes
/// itself, which puts it at the back of the thread's run queue.
///
/// Not `tokio::task::yield_now`, which resumes its task only once the runtime has also
/// polled for new events: an `epoll_wait` more for every pass over the ready connections.
/// Measured with `GET -P 1`, 50 clients: 0.73 `epoll_wait`s a request, against Redis's
/// 0.45. The runtime still polls for events after every 61 tasks, and whenever its queue
/// runs out.
fn requeue() -> impl Future<Output = ()> {
    let mut requeued = false;
    std::future::poll_fn(move |cx| {
        if requeued {
            return std::task::Poll::Ready(());
        }
        requeued = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
}

/// Writes `output`, unless the client takes none of it for `stall` (or, once `stopped`,
/// for [`SHUTDOWN_WRITE_TIMEOUT`]) or the connection fails: then `false`.
async fn send(
    stream: &mut TcpStream,
    output: &[u8],
    stall: Duration,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    // Most replies fit in the socket's buffer: written at once, with no timer set.
    let mut sent = match stream.try_write(output) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(_) => return false,
    };
    while sent < output.len() {
        let stopping = *stopped.borrow();
        let stall = if stopping {
            stall.min(SHUTDOWN_WRITE_TIMEOUT)
        } else {
            stall
        };
        tokio::select! {
            biased;
            written = tokio::time::timeout(stall, stream.write(&output[sent..])) => match written {
                Ok(Ok(n)) if n > 0 => sent += n,
                _ => return false,
            },
            // The stop shortens the stall allowed: start the write again with it (a
            // cancelled write has written nothing).
            _ = stopped.wait_for(|stop| *stop), if !stopping => {}
        }
    }
    true
}

/// Replies are written once they reach this size (or the pipeline is answered).
const OUTPUT_CHUNK: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::gathers_replies;

    #[test]
    fn replies_are_gathered_on_a_runtime_of_one_thread_only() {
        let on = |runtime: tokio::runtime::Runtime| runtime.block_on(async { gathers_replies() });
        let multi = |threads| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .build()
                .unwrap()
        };
        assert!(on(multi(1)));
        assert!(on(tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()));
        assert!(!on(multi(2)));
        assert!(!on(multi(4)));
    }
}
