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
/// ([`kv_store::Options::max_key_size`]). A state machine whose store has a lower limit
/// skips the writes of an entry over it (on every replica alike, when they share options).
pub const MAX_KEY_SIZE: usize = kv_wal::DEFAULT_MAX_KEY_SIZE;

/// The longest value a request may write: the store's default limit
/// ([`kv_store::Options::max_value_size`]).
pub const MAX_VALUE_SIZE: usize = kv_wal::DEFAULT_MAX_VALUE_SIZE;

/// The most bytes an encoded request may take: what one record of the Raft log holds
/// ([`crate::MAX_LOG_RECORD_SIZE`]) less room for the rest of its entry (the log id and the
/// payload's tag, a few dozen bytes encoded).
pub const MAX_REQUEST_SIZE: usize = crate::log_store::MAX_LOG_RECORD_SIZE - 1024;

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
        #[serde(with = "raw_bytes")]
        key: Vec<u8>,
        /// The value.
        #[serde(with = "raw_bytes")]
        value: Vec<u8>,
        /// When the key expires, in unix milliseconds.
        deadline_ms: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        #[serde(with = "raw_bytes")]
        key: Vec<u8>,
    },
}

/// Keys and values as serde byte strings rather than sequences of `u8`: postcard then
/// copies them whole instead of one element at a time (a 64 MiB value took seconds in a
/// debug build). Postcard writes both the same way (a varint length, then the bytes), so
/// entries already in a Raft log decode as before.
mod raw_bytes {
    use serde::{de, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        // A format that writes bytes as a sequence (JSON, for one) reads back.
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element()? {
                bytes.push(b);
            }
            Ok(bytes)
        }
    }
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
///
/// Encoded (see the private `wire` module) so that an entry written before `staged_term`
/// existed still decodes, with `staged_term: None`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
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
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
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
    /// entry fits one record of the Raft log.
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

/// How a [`Request`] is encoded: as before `staged_term`, a struct of one sequence of
/// [`Write`]s, the staging term, when there is one, appended to that sequence as a third
/// variant of `Write`. An entry already in a Raft log (no such variant) decodes with
/// `staged_term: None`; postcard could not default a missing struct field instead.
mod wire {
    use serde::ser::{SerializeSeq, SerializeStruct};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{raw_bytes, Request, Write};

    /// The variant index the staging term takes, after `Write::Put` (0) and
    /// `Write::Delete` (1).
    const STAGED_TERM_VARIANT: u32 = 2;

    struct Items<'a>(&'a Request);

    struct StagedTerm(u64);

    impl Serialize for StagedTerm {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_newtype_variant("Write", STAGED_TERM_VARIANT, "StagedTerm", &self.0)
        }
    }

    impl Serialize for Items<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let request = self.0;
            let len = request.writes.len() + usize::from(request.staged_term.is_some());
            let mut seq = s.serialize_seq(Some(len))?;
            for write in &request.writes {
                seq.serialize_element(write)?;
            }
            if let Some(term) = request.staged_term {
                seq.serialize_element(&StagedTerm(term))?;
            }
            seq.end()
        }
    }

    impl Serialize for Request {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut st = s.serialize_struct("Request", 1)?;
            st.serialize_field("writes", &Items(self))?;
            st.end()
        }
    }

    /// `Write` with the staging term's variant, to decode.
    #[derive(Deserialize)]
    #[serde(rename = "Write")]
    enum Item {
        Put {
            #[serde(deserialize_with = "raw_bytes::deserialize")]
            key: Vec<u8>,
            #[serde(deserialize_with = "raw_bytes::deserialize")]
            value: Vec<u8>,
            deadline_ms: Option<u64>,
        },
        Delete {
            #[serde(deserialize_with = "raw_bytes::deserialize")]
            key: Vec<u8>,
        },
        StagedTerm(u64),
    }

    #[derive(Deserialize)]
    #[serde(rename = "Request")]
    struct Wire {
        writes: Vec<Item>,
    }

    impl<'de> Deserialize<'de> for Request {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Request, D::Error> {
            let wire = Wire::deserialize(d)?;
            let mut request = Request {
                writes: Vec::with_capacity(wire.writes.len()),
                staged_term: None,
            };
            for item in wire.writes {
                match item {
                    Item::Put {
                        key,
                        value,
                        deadline_ms,
                    } => request.writes.push(Write::Put {
                        key,
                        value,
                        deadline_ms,
                    }),
                    Item::Delete { key } => request.writes.push(Write::Delete { key }),
                    Item::StagedTerm(term) => request.staged_term = Some(term),
                }
            }
            Ok(request)
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

    /// `Request` as it was derived before `staged_term`: what entries already in a Raft
    /// log hold.
    #[derive(Serialize)]
    struct OldRequest {
        writes: Vec<Write>,
    }

    fn some_writes() -> Vec<Write> {
        vec![
            Write::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                deadline_ms: Some(7),
            },
            Write::Delete { key: b"d".to_vec() },
        ]
    }

    #[test]
    fn an_entry_encoded_before_the_staging_term_decodes_without_one() {
        let old = postcard::to_allocvec(&OldRequest {
            writes: some_writes(),
        })
        .unwrap();
        let request: Request = postcard::from_bytes(&old).unwrap();
        assert_eq!(
            request,
            Request {
                writes: some_writes(),
                staged_term: None,
            }
        );
        // Without a staging term the encoding is the old one, byte for byte.
        assert_eq!(postcard::to_allocvec(&request).unwrap(), old);
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

    /// What `Write` was before its bytes were serde byte strings.
    #[derive(Serialize)]
    enum OldWrite {
        Put {
            key: Vec<u8>,
            value: Vec<u8>,
            deadline_ms: Option<u64>,
        },
        Delete {
            key: Vec<u8>,
        },
    }

    #[test]
    fn writes_encode_as_they_did_so_existing_logs_still_decode() {
        let value: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        let new = vec![
            Write::Put {
                key: b"k".to_vec(),
                value: value.clone(),
                deadline_ms: Some(7),
            },
            Write::Delete { key: vec![0xff; 3] },
        ];
        let old = vec![
            OldWrite::Put {
                key: b"k".to_vec(),
                value,
                deadline_ms: Some(7),
            },
            OldWrite::Delete { key: vec![0xff; 3] },
        ];
        let bytes = postcard::to_stdvec(&old).unwrap();
        assert_eq!(postcard::to_stdvec(&new).unwrap(), bytes);
        let back: Vec<Write> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, new);
    }
}
