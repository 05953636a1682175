//! What nodes send each other over HTTP: the routes, the bodies (postcard), and the limits
//! both sides enforce.

use serde::{Deserialize, Serialize};

use crate::types::{SnapshotMeta, Vote, MAX_REQUEST_SIZE};

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

/// The largest entry a node proposes, encoded: a request [`Request::validate`] accepts
/// ([`MAX_REQUEST_SIZE`]) and its log id and payload tag.
///
/// [`Request::validate`]: crate::Request::validate
pub const MAX_ENTRY_BYTES: usize = MAX_REQUEST_SIZE + 1024;

// An entry a request fits in fits one record of the Raft log too.
const _: () = assert!(MAX_ENTRY_BYTES <= crate::log_store::MAX_LOG_RECORD_SIZE);

/// Entries sent in one `AppendEntries` at most (openraft's `max_payload_entries`).
pub const MAX_PAYLOAD_ENTRIES: u64 = 8;

/// The entries' bytes one `AppendEntries` carries at most: the sender sends the longest
/// prefix of openraft's batch within it (always at least one entry) and answers openraft
/// with a partial success, so that a batch of large entries goes as several messages.
pub const MAX_APPEND_ENTRIES_BYTES: usize = 8 << 20;

/// The largest body either side sends or accepts for `append`: one largest entry (or
/// [`MAX_APPEND_ENTRIES_BYTES`] of smaller ones), plus room for the rest of the message.
/// A larger one is refused by the receiver (413) and never sent by the sender.
pub const MAX_MESSAGE_BYTES: usize = max(MAX_ENTRY_BYTES, MAX_APPEND_ENTRIES_BYTES) + (1 << 20);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The rate an `append` is given time for (bytes per second) beyond [`APPEND_BASE_TIMEOUT`]:
/// sending, decoding and the follower's fdatasync of a large entry take far longer than
/// openraft's `hard_ttl` (the heartbeat interval), which it does not enforce itself.
pub const APPEND_BYTES_PER_SECOND: u64 = 50_000_000;

/// The time any `append` is given at least.
pub const APPEND_BASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The time an `append` of a `len`-byte body is given: at least openraft's `hard_ttl`, and
/// [`APPEND_BASE_TIMEOUT`] plus `len` at [`APPEND_BYTES_PER_SECOND`].
pub(crate) fn append_timeout(hard_ttl: std::time::Duration, len: usize) -> std::time::Duration {
    let transfer = std::time::Duration::from_millis(len as u64 * 1000 / APPEND_BYTES_PER_SECOND);
    hard_ttl.max(APPEND_BASE_TIMEOUT + transfer)
}

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
    /// Every file sent, with its length: the receiver checks it holds exactly these.
    pub(crate) files: Vec<(String, u64)>,
}

/// Every answer: the value, or the receiver's error as text (the sender treats it as the
/// receiver being unreachable for now, and backs off).
pub(crate) type Answer<T> = Result<T, String>;
