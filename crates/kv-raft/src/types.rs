//! The type configuration openraft is instantiated with, and the requests a log entry holds.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// kv's Raft types: node ids are `u64`, nodes carry their addresses ([`NodeAddr`]), an
/// entry's data is a [`Request`], its result a [`Response`], and a client write's responder
/// runs a step of the proposer's the moment the write is settled
/// ([`Settling`](crate::Settling)). Written out rather than with `declare_raft_types!`,
/// which cannot name a responder of its own; every other type is that macro's default.
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct TypeConfig {}

impl openraft::RaftTypeConfig for TypeConfig {
    type D = Request;
    type R = Response;
    type NodeId = u64;
    type Node = NodeAddr;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<Self::Term, Self::NodeId>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry =
        openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = crate::responder::Settling<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = openraft::impls::TokioRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// Where a member of the cluster is reached: its Raft address (the network between
/// nodes) and its client address (the Redis protocol), kept in the membership so that
/// any node can tell a client where the leader is.
///
/// Its `Debug` is its `Display`: Raft's errors print a member with `Debug`, and a client
/// may read them in a `-CLUSTERDOWN` reply.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeAddr {
    /// `HOST:PORT` of the node's Raft service.
    pub raft: String,
    /// `HOST:PORT` of the node's Redis-protocol server.
    pub client: String,
}

impl std::fmt::Debug for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl NodeAddr {
    /// Refuses the addresses of member `id` when one is a wildcard IP or port 0: the others
    /// would reach no node, or (through `0.0.0.0`, which connects locally) whichever node
    /// runs on their own host. A host name is taken as given.
    ///
    /// # Errors
    ///
    /// [`Error::UnreachableAddress`].
    pub fn check_reachable(&self, id: u64) -> Result<(), Error> {
        let both = [
            ("Raft", &self.raft, "--raft-bind"),
            ("client", &self.client, "--bind"),
        ];
        for (which, addr, flag) in both {
            let Ok(socket) = addr.parse::<std::net::SocketAddr>() else {
                continue;
            };
            if socket.ip().is_unspecified() || socket.port() == 0 {
                return Err(Error::UnreachableAddress {
                    id,
                    which,
                    addr: addr.clone(),
                    flag,
                });
            }
        }
        Ok(())
    }
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

/// The longest key a request may write: the store's default limit
/// ([`kv_store::Options::max_key_size`]), which every replica's store keeps (the state
/// machine refuses any other).
pub const MAX_KEY_SIZE: usize = kv_wal::DEFAULT_MAX_KEY_SIZE;

/// The longest value a request may write: the store's default limit
/// ([`kv_store::Options::max_value_size`]).
pub const MAX_VALUE_SIZE: usize = kv_wal::DEFAULT_MAX_VALUE_SIZE;

/// The most bytes an encoded request may take: one write of the largest key and value the
/// store accepts ([`MAX_KEY_SIZE`], [`MAX_VALUE_SIZE`]) and room to spare, so that every
/// value a single node accepts is accepted by a cluster too. Its entry fits one record of
/// the Raft log ([`crate::MAX_LOG_RECORD_SIZE`]) and one append message
/// ([`crate::MAX_ENTRY_BYTES`]).
pub const MAX_REQUEST_SIZE: usize = MAX_KEY_SIZE + MAX_VALUE_SIZE + 4096;

/// Whether `key` is one of the crate's own keys ([`RESERVED_PREFIX`]).
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// One write of a [`Request`]. Keys and values are [`Bytes`]: handed to the store's batch
/// and cloned into replication messages without copying their bytes, and encoded as serde
/// byte strings (postcard copies them whole, not one element at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Set `key` to `value`, until `deadline_ms` (absolute unix milliseconds, decided once
    /// by the leader when it proposes the entry, so that every replica agrees) if given.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// When the key expires, in unix milliseconds.
        deadline_ms: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl Write {
    /// The key this write changes.
    pub fn key(&self) -> &Bytes {
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
    /// The term of the leadership whose state the writes were computed on (a
    /// read-modify-write staged after a linearizable read). The state machine applies them
    /// only if the entry's log id has that same term: a leader deposed while staging and
    /// elected again may append the entry after another leader's committed entries that
    /// its staging never saw (a lost update). `None`: the writes hold whatever the state,
    /// and are always applied.
    pub staged_term: Option<u64>,
}

impl Request {
    /// A request of one put without expiry.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Request {
            writes: vec![Write::Put {
                key: key.into(),
                value: value.into(),
                deadline_ms: None,
            }],
            staged_term: None,
        }
    }

    /// A request of one delete.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Request {
            writes: vec![Write::Delete { key: key.into() }],
            staged_term: None,
        }
    }

    /// Refuses a request that no replica could apply, or that the Raft log could not hold:
    /// checked before proposing. Applying never fails on a request: the state machine skips
    /// the writes of one that slipped through, deterministically, on every replica (see
    /// [`StateMachine`](crate::StateMachine)), but a refused request costs no log entry.
    ///
    /// Checks, in order: no write names one of the crate's own keys; every key is at most
    /// [`MAX_KEY_SIZE`] and every value at most [`MAX_VALUE_SIZE`] bytes (the store's
    /// default limits); the encoded request is at most [`MAX_REQUEST_SIZE`] bytes, so its
    /// entry fits one record of the Raft log and one append message.
    ///
    /// # Errors
    ///
    /// [`Error::ReservedKey`], [`Error::KeyTooLarge`], [`Error::ValueTooLarge`],
    /// [`Error::RequestTooLarge`].
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(w) = self.writes.iter().find(|w| is_reserved(w.key())) {
            return Err(Error::ReservedKey(w.key().to_vec()));
        }
        for write in &self.writes {
            let len = write.key().len();
            if len > MAX_KEY_SIZE {
                return Err(Error::KeyTooLarge {
                    len,
                    max: MAX_KEY_SIZE,
                });
            }
            if let Write::Put { value, .. } = write {
                if value.len() > MAX_VALUE_SIZE {
                    return Err(Error::ValueTooLarge {
                        len: value.len(),
                        max: MAX_VALUE_SIZE,
                    });
                }
            }
        }
        // Postcard's size without building the bytes: a request of a 64 MiB value is not
        // copied to be measured.
        let len = postcard::experimental::serialized_size(self)
            .expect("postcard measures our own types without fail");
        if len > MAX_REQUEST_SIZE {
            return Err(Error::RequestTooLarge {
                len,
                max: MAX_REQUEST_SIZE,
            });
        }
        Ok(())
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
    /// Whether the entry's writes were applied: `false` when its log id's term is not the
    /// term its request was staged in (see [`Request::staged_term`]); the entry still
    /// counts as applied, without its writes, so the writer must retry.
    pub writes_applied: bool,
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Response(applied {})", self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some_writes() -> Vec<Write> {
        vec![
            Write::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                deadline_ms: Some(7),
            },
            Write::Delete {
                key: Bytes::from_static(b"d"),
            },
        ]
    }

    #[test]
    fn a_staging_term_survives_encoding() {
        for writes in [some_writes(), Vec::new()] {
            let request = Request {
                writes,
                staged_term: Some(u64::MAX - 3),
            };
            let bytes = postcard::to_allocvec(&request).unwrap();
            assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), request);
            assert_eq!(
                postcard::experimental::serialized_size(&request).unwrap(),
                bytes.len()
            );
        }
    }

    #[test]
    fn a_wildcard_or_port_zero_member_address_is_refused() {
        let addr = |raft: &str, client: &str| NodeAddr {
            raft: raft.into(),
            client: client.into(),
        };
        addr("127.0.0.1:17000", "10.0.0.2:7000")
            .check_reachable(1)
            .unwrap();
        addr("db1.example:17000", "").check_reachable(1).unwrap();
        for (bad, which) in [
            (addr("0.0.0.0:17000", "127.0.0.1:7000"), "Raft"),
            (addr("[::]:17000", "127.0.0.1:7000"), "Raft"),
            (addr("127.0.0.1:0", "127.0.0.1:7000"), "Raft"),
            (addr("127.0.0.1:17000", "0.0.0.0:7000"), "client"),
        ] {
            let err = bad.check_reachable(2).unwrap_err();
            assert!(
                matches!(&err, Error::UnreachableAddress { id: 2, which: w, .. } if *w == which),
                "{err}"
            );
        }
    }
}
