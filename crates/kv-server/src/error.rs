//! The crate's error type.

use std::net::SocketAddr;

/// What can go wrong serving the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A request broke the protocol (answered `-ERR Protocol error: ...`, and the
    /// connection closes, as in Redis).
    #[error("Protocol error: {0}")]
    Protocol(&'static str),

    /// A socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The store failed (closing it at shutdown, for example).
    #[error(transparent)]
    Store(#[from] kv_store::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
