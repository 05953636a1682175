//! The crate's error.

use std::path::PathBuf;

/// What can go wrong in the Raft storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Raft log (kv-wal) failed.
    #[error("the Raft log failed")]
    Log(#[from] kv_wal::Error),
    /// The state machine's store failed.
    #[error("the state machine's store failed")]
    Store(#[from] kv_store::Error),
    /// A file operation on the state machine's directory or a snapshot failed.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A record of the Raft log or the state machine could not be decoded: damage, or a
    /// directory written by something else.
    #[error("{what} could not be decoded: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The codec's error.
        source: postcard::Error,
    },
    /// The directory holds something this crate did not write, or a snapshot does not match
    /// its metadata.
    #[error("{0}")]
    Corrupt(String),
    /// openraft refused its settings, or failed to start or to stop (nothing on disk is
    /// damaged by it).
    #[error("{0}")]
    Raft(String),
    /// The directory belongs to another node.
    #[error("{} belongs to node {stored}, not to node {given}: start it with --node-id {stored}, or give node {given} a directory of its own", dir.display())]
    NodeId {
        /// The node's directory.
        dir: PathBuf,
        /// The id stored in it.
        stored: u64,
        /// The id asked for.
        given: u64,
    },
    /// A member's address is a wildcard (`0.0.0.0`, `::`) or port 0: it names no node the
    /// others can reach, and every node would take it as its own (split brain across hosts).
    #[error("node {id}'s {which} address {addr} names no reachable host: start the node with {flag} on an address the other nodes reach (not 0.0.0.0, :: or port 0)")]
    UnreachableAddress {
        /// The member.
        id: u64,
        /// Which of its addresses: `Raft` or `client`.
        which: &'static str,
        /// The address.
        addr: String,
        /// The `kv serve` flag that sets it.
        flag: &'static str,
    },
    /// A request writes one of the crate's own keys ([`crate::RESERVED_PREFIX`]).
    #[error("the key {0:?} is reserved for replication's own use")]
    ReservedKey(Vec<u8>),
    /// Another handle, in this process or another, has the state machine's directory open;
    /// nothing was read or changed.
    #[error("{} is open in another process or handle; close it first", .0.display())]
    Locked(PathBuf),
    /// The Raft log was closed (its [`crate::LogStore`] dropped): a reader outlived it.
    #[error("the Raft log is closed")]
    Closed,
    /// An option replicas cannot agree on or that could open damage silently: memory or
    /// key limits (with any eviction), or the salvage recovery mode. Nothing was opened.
    #[error("the option {setting} cannot be used for a replicated store: {reason}")]
    InvalidOption {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A request's key is longer than the store accepts ([`crate::MAX_KEY_SIZE`]).
    #[error("a key of {len} bytes is over the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A request's value is longer than the store accepts ([`crate::MAX_VALUE_SIZE`]).
    #[error("a value of {len} bytes is over the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A request, encoded, is more than one Raft log record holds
    /// ([`crate::MAX_REQUEST_SIZE`]): split it.
    #[error("a request of {len} bytes encoded is over the limit of {max} bytes; split it")]
    RequestTooLarge {
        /// The encoded request's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::other(e)
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Encodes `value` for a log record or the state machine's meta key.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own types into a Vec cannot fail.
    postcard::to_stdvec(value).expect("postcard encodes into a Vec")
}

/// Decodes what [`encode`] wrote.
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|source| Error::Decode { what, source })
}

/// Runs `work` (file I/O and fsyncs) on tokio's blocking pool and waits for it.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(std::io::Error::other(e)),
    }
}
