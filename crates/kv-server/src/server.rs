//! The TCP server: accepting, connections, pipelining, shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kv_store::{Durability, KvStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::codec::{encode, Decoder, Limits};
use crate::command;
use crate::error::{Error, Result};
use crate::reply::Reply;
use crate::session::{Session, Shared};

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
    /// Closes a connection idle this long (none: never).
    pub timeout: Option<Duration>,
    /// The largest request accepted.
    pub limits: Limits,
    /// The store's durability, which `CONFIG GET appendfsync` reports.
    pub durability: Durability,
}

impl Default for ServerOptions {
    /// `127.0.0.1:6379`, no password, 10,000 clients, no idle timeout, bulks up to the
    /// log's value limit (64 MiB).
    fn default() -> ServerOptions {
        ServerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 6379)),
            requirepass: None,
            maxclients: 10_000,
            timeout: None,
            limits: Limits {
                // A larger bulk could never be stored: refuse it before reading it.
                max_bulk: kv_wal::DEFAULT_MAX_VALUE_SIZE,
                ..Limits::default()
            },
            durability: Durability::Batch(Duration::from_millis(5)),
        }
    }
}

/// A Redis-protocol server over a [`KvStore`]. The store knows nothing of it.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Listens on `options.bind` for requests to `store`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the address cannot be bound.
    pub async fn bind(store: KvStore, options: ServerOptions) -> Result<Server> {
        let listener = TcpListener::bind(options.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: options.bind,
                source,
            })?;
        let port = listener.local_addr()?.port();
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                store,
                options,
                clients: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                connections_received: AtomicU64::new(0),
                commands_processed: AtomicU64::new(0),
                started: Instant::now(),
                port,
                registry: Default::default(),
            }),
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
    /// # Errors
    ///
    /// [`Error::Store`] if the store fails to close (accept errors are retried, a
    /// connection's errors close that connection only).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let Ok((stream, addr)) = accepted else {
                        // Out of descriptors, a connection reset before accept: brief, and
                        // no reason to stop serving the others.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let shared = self.shared.clone();
                    connections.spawn(serve(stream, addr, shared, stopped.clone()));
                }
                // Reaps finished connections so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        let _ = stop.send(true);
        while connections.join_next().await.is_some() {}
        let store = self.shared.store.clone();
        store.close_async().await?;
        Ok(())
    }
}

/// Holds a client slot while a connection lives.
struct ClientSlot(Arc<Shared>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    shared.connections_received.fetch_add(1, Ordering::Relaxed);
    let clients = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
    let _slot = ClientSlot(shared.clone());
    if clients > shared.options.maxclients {
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let _ = stream.set_nodelay(true);
    let timeout = shared.options.timeout;
    let mut decoder = Decoder::new(shared.options.limits);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut session = Some(Session::new(shared.clone(), Some(addr)));
    // Requests read but not yet answered, and the protocol error that ends them, if any.
    let mut pending = VecDeque::new();
    let mut broken = None;
    // Whether the input may hold more requests than were decoded.
    let mut more_input = false;
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
        }
        let Some(mut current) = session.take() else {
            return;
        };
        if pending
            .iter()
            .any(|r: &Vec<Bytes>| command::lookup(&r[0]).is_some_and(|s| s.writes()))
        {
            // Writes may wait for an fsync: on the blocking pool, never on a runtime
            // thread, once per pipeline (or per chunk of its replies).
            let (mut requests, mut out) =
                (std::mem::take(&mut pending), std::mem::take(&mut output));
            let Ok((back, requests_back, out_back)) = tokio::task::spawn_blocking(move || {
                answer(&mut current, &mut requests, &mut out);
                (current, requests, out)
            })
            .await
            else {
                return;
            };
            (current, pending, output) = (back, requests_back, out_back);
        } else {
            answer(&mut current, &mut pending, &mut output);
        }
        if let (Some(error), true) = (&broken, pending.is_empty()) {
            encode(
                &Reply::error(format!("ERR {error}")),
                current.protocol,
                &mut output,
            );
        }
        if !output.is_empty() {
            tokio::select! {
                // The replies of requests already run go out first, even at shutdown.
                biased;
                written = stream.write_all(&output) => if written.is_err() { return },
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            output.clear();
        }
        if current.closing || (broken.is_some() && pending.is_empty()) || *stopped.borrow() {
            return;
        }
        session = Some(current);
        if !pending.is_empty() || more_input {
            // More replies to make (or requests already read to decode): only once the
            // client has taken these, so a client that does not read holds one chunk of
            // replies at most, not its whole pipeline's.
            continue;
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
            read = read => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// Replies are written once they reach this size (or the pipeline is answered).
const OUTPUT_CHUNK: usize = 64 * 1024;

/// Answers requests in turn until the replies reach [`OUTPUT_CHUNK`], the requests run
/// out, or one closes the connection.
fn answer(session: &mut Session, requests: &mut VecDeque<Vec<Bytes>>, output: &mut BytesMut) {
    while output.len() < OUTPUT_CHUNK {
        let Some(request) = requests.pop_front() else {
            return;
        };
        let reply = session.handle(&request);
        encode(&reply, session.protocol, output);
        if session.closing {
            requests.clear();
            return;
        }
    }
}
