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
