//! What nodes send each other over HTTP: the routes, the bodies (postcard), and the limits
//! both sides enforce.

use serde::{Deserialize, Serialize};

use crate::types::{SnapshotMeta, Vote};

/// `POST`: an `AppendEntriesRequest`.
pub(crate) const APPEND: &str = "/raft/append";
/// `POST`: a `VoteRequest`.
pub(crate) const VOTE: &str = "/raft/vote";
/// `POST`: [`SnapshotBegin`], answered with the transfer's number.
pub(crate) const SNAPSHOT_BEGIN: &str = "/raft/snapshot/begin";
/// `POST`: [`SnapshotChunk`].
pub(crate) const SNAPSHOT_CHUNK: &str = "/raft/snapshot/chunk";
/// `POST`: [`SnapshotFinish`], answered with a `SnapshotResponse`.
pub(crate) const SNAPSHOT_FINISH: &str = "/raft/snapshot/finish";

/// The largest entry a node proposes (its encoded request): the log's own value limit, so
/// that every value a single node accepts is accepted by a cluster too.
pub const MAX_ENTRY_BYTES: usize = kv_wal::DEFAULT_MAX_VALUE_SIZE;

/// Entries sent in one `AppendEntries` at most (openraft's `max_payload_entries`): with
/// [`MAX_ENTRY_BYTES`] this bounds one message.
pub const MAX_PAYLOAD_ENTRIES: u64 = 8;

/// The largest body either side sends or accepts: a full `AppendEntries` of the largest
/// entries, plus room for their framing. A larger one is refused by the receiver (413)
/// and never sent by the sender.
pub const MAX_MESSAGE_BYTES: usize = MAX_PAYLOAD_ENTRIES as usize * MAX_ENTRY_BYTES + (1 << 20);

/// The bytes of a snapshot's file sent in one chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// The largest body of a vote: a vote request is a few dozen bytes; the rest is slack.
pub const MAX_VOTE_BYTES: usize = 64 << 10;

/// The largest body of a snapshot chunk: [`SNAPSHOT_CHUNK_BYTES`] of data plus its framing
/// (the transfer number, the file's path and the offset).
pub const MAX_SNAPSHOT_CHUNK_MESSAGE_BYTES: usize = SNAPSHOT_CHUNK_BYTES + (64 << 10);

/// The largest body of a snapshot's begin (its directories) or finish (its metadata, which
/// holds the membership).
pub const MAX_SNAPSHOT_CONTROL_BYTES: usize = 1 << 20;

/// The header that carries the cluster secret on every request. The receiver checks it
/// before reading the body, so a peer without the secret cannot make a node buffer or
/// decode anything.
pub(crate) const SECRET_HEADER: &str = "x-kv-cluster-secret";

/// The header that carries the id of the node a request is meant for: a node refuses a
/// request for another id (a stale or wrong address in the membership would otherwise let
/// one node answer for another).
pub(crate) const TARGET_HEADER: &str = "x-kv-target-node";

/// Starts sending a snapshot: the directories to create (the files come as chunks).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotBegin {
    pub(crate) dirs: Vec<String>,
}

/// One chunk of one file of a snapshot being sent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotChunk {
    pub(crate) transfer: u64,
    pub(crate) path: String,
    pub(crate) offset: u64,
    pub(crate) bytes: Vec<u8>,
}

/// Ends sending a snapshot: install it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotFinish {
    pub(crate) transfer: u64,
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
}

/// Every answer: the value, or the receiver's error as text (the sender treats it as the
/// receiver being unreachable for now, and backs off).
pub(crate) type Answer<T> = Result<T, String>;
