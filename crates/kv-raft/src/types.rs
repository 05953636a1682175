//! The type configuration openraft is instantiated with, and the requests a log entry holds.

use serde::{Deserialize, Serialize};

use crate::error::Error;

openraft::declare_raft_types!(
    /// kv's Raft types: node ids are `u64`, nodes carry their addresses ([`NodeAddr`]), an
    /// entry's data is a [`Request`], its result a [`Response`].
    pub TypeConfig:
        D = Request,
        R = Response,
        Node = NodeAddr,
);

/// Where a member of the cluster is reached: its Raft address (the network between
/// nodes) and its client address (the Redis protocol), kept in the membership so that
/// any node can tell a client where the leader is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAddr {
    /// `HOST:PORT` of the node's Raft service.
    pub raft: String,
    /// `HOST:PORT` of the node's Redis-protocol server.
    pub client: String,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft {} client {}", self.raft, self.client)
    }
}

/// A log id of this configuration.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A vote of this configuration.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A log entry of this configuration.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// The membership as stored with the log id of the entry that set it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

/// Keys starting with this are the crate's own (the state machine's applied log id and
/// membership): no request may write them, and reads through a replicated store must skip
/// them. A first byte of `0xFF` sorts them after nearly every key a client uses.
pub const RESERVED_PREFIX: &[u8] = b"\xffkv-raft/";

/// Whether `key` is one of the crate's own keys ([`RESERVED_PREFIX`]).
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// One write of a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Set `key` to `value`, until `deadline_ms` (absolute unix milliseconds, decided once
    /// by the leader when it proposes the entry, so that every replica agrees) if given.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// When the key expires, in unix milliseconds.
        deadline_ms: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl Write {
    /// The key this write changes.
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// What one log entry asks of the state machine: its writes are applied as one atomic store
/// batch (with the entry's log id), so a `MULTI`/`EXEC` or a read-modify-write whose result
/// the leader computed is one entry and one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The writes, applied in order, all or none.
    pub writes: Vec<Write>,
}

impl Request {
    /// A request of one put without expiry.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Request {
            writes: vec![Write::Put {
                key: key.into(),
                value: value.into(),
                deadline_ms: None,
            }],
        }
    }

    /// A request of one delete.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Request {
            writes: vec![Write::Delete { key: key.into() }],
        }
    }

    /// Refuses a request that writes one of the crate's own keys: checked before proposing,
    /// since applying must never fail (the state machine skips such writes, deterministically,
    /// should one reach it).
    ///
    /// # Errors
    ///
    /// [`Error::ReservedKey`].
    pub fn validate(&self) -> Result<(), Error> {
        match self.writes.iter().find(|w| is_reserved(w.key())) {
            Some(w) => Err(Error::ReservedKey(w.key().to_vec())),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({} writes)", self.writes.len())
    }
}

/// What applying an entry answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The index of the entry, now applied.
    pub index: u64,
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response(applied {})", self.index)
    }
}
