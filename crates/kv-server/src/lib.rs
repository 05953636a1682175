//! A Redis-protocol server over a [`KvStore`](kv_store::KvStore): every Redis client, `redis-cli` and
//! `redis-benchmark` can reach the store.
//!
//! - [`command`]: the command table (name, arity, flags, key positions) and the parser
//!   of a request's arguments into a typed [`Command`], whose errors are Redis 7's exact
//!   strings. The `kv` shell shares it; [`docs`] holds each command's syntax and summary
//!   (the shell's `HELP`).
//! - [`Reply`]: what a command answers, independent of the protocol version.
//! - [`codec`]: RESP framing, separate from both: a bounded request [`Decoder`]
//!   (multibulk and inline; limits checked before anything is reserved) and [`encode`]
//!   for RESP2 or RESP3.
//! - [`Session`]: one connection's state, answering requests in turn; also usable
//!   without a network ([`Session::local`]).
//! - [`Server`]: TCP, one task per connection, pipelining with replies in order (a run
//!   of data commands from a write on is one atomic block with one commit; one writer
//!   thread runs every connection's blocks that may wait for an fsync together, with one
//!   commit per pass, as Redis's event loop fsyncs once per pass),
//!   `HELLO 3`, `AUTH`, `MULTI`/`EXEC`, `maxclients`, an idle timeout, a write timeout
//!   and an output limit (a client that does not read its replies is closed), and a
//!   graceful shutdown that closes the store.
//!
//! Commands that read then write (`INCR`, `APPEND`, `SET NX/XX/GET`, `GETSET`, `GETDEL`,
//! ...) are one [`KvStore::update_with`](kv_store::KvStore::update_with) each, atomic against every other connection.
//! `EXEC` runs its block against a view of the store read through a
//! [`Transaction`](kv_store::Transaction) and commits the block's writes as one atomic
//! batch (all or nothing, even across a crash); a changed `WATCH`ed key answers nil.
//!
//! ```
//! use kv_server::{Server, ServerOptions};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), kv_server::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = kv_store::KvStore::open(dir.path())?;
//! let options = ServerOptions { bind: "127.0.0.1:0".parse().unwrap(), ..ServerOptions::default() };
//! let server = Server::bind(store, options).await?;
//! let addr = server.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.run_until(async { stopped.await.ok(); }));
//!
//! // Any Redis client works; here, the protocol by hand: a pipeline of two requests.
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! client.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nGET k\r\n").await?;
//! let mut reply = vec![0; 12];
//! client.read_exact(&mut reply).await?;
//! assert_eq!(reply, b"+OK\r\n$1\r\nv\r\n");
//!
//! stop.send(()).unwrap();
//! serving.await.unwrap()?; // Stops accepting, finishes in-flight requests, closes the store.
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod admission;
mod block;
pub mod codec;
pub mod command;
pub mod docs;
mod error;
mod execute;
mod glob;
mod keyspace;
mod long_double;
mod prefetch;
mod replicated;
mod reply;
mod server;
mod session;
mod staged;
mod writer;

/// The `bytes` crate, whose `Bytes` requests and replies are made of.
pub use bytes;
pub use codec::{encode, Decoder, Limits, Protocol};
pub use command::{Command, CommandError};
pub use error::{Error, Result};
pub use long_double::LongDouble;
pub use replicated::ReplicatedServer;
pub use reply::Reply;
pub use server::{runtime, store_options, Server, ServerOptions};
pub use session::Session;
