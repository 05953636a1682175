//! Replication of a kv store on [openraft](https://docs.rs/openraft): the Raft log on
//! `kv-wal`, the state machine on `kv-store`, snapshots from the store's checkpoints.
//!
//! The store crates below know nothing of Raft: this crate uses only their public API.
//!
//! # Why openraft `=0.10.0-alpha.37`
//!
//! The newest published release of the 0.10 line when this crate was written, pinned with `=`
//! because its pre-releases still change the storage API between themselves (in 0.10 the
//! snapshot data type moved from the type configuration to the state machine, `append` takes
//! an `IOFlushed` callback, `truncate`/`purge` became `truncate_after`/`purge`). It was kept
//! over 0.9 because everything this crate needs works on it, shown rather than assumed:
//! openraft's own storage suite (`openraft::testing::log::Suite::test_all`, 44 checks)
//! passes over this crate's storage in a temporary directory (`tests/suite.rs`), and a
//! three-node cluster in one process replicates, snapshots, purges and brings a restarted
//! node back from a snapshot sent in chunks over HTTP (`tests/network.rs`). 0.10 also gives what item 6 of the
//! replication issue needs and 0.9 lacks or spells differently: `ensure_linearizable` with a
//! read policy, `wait_for_recovery`, the full-snapshot transfer with a snapshot type of the
//! state machine's own (no `Cursor<Vec<u8>>` buffer). Moving to a later alpha means reading
//! its upgrade guide and running the suite again.
//!
//! # Layout of a node's directory
//!
//! - `DIR/raft/`: the Raft log, a kv-wal log of its own ([`LogStore`]).
//! - `DIR/sm/`: the state machine ([`StateMachine`]): `CURRENT` names the live store
//!   (`store-<n>/`, a kv-store directory) and the current snapshot (`snapshot-<n>/`, a store
//!   checkpoint, with its metadata). Other `store-*`, `snapshot-*`, `building-*` and
//!   `incoming-*` directories and a `CURRENT.tmp` are what a crash left, removed at open;
//!   other names are left alone. Opening takes an exclusive lock on `DIR/sm/` first, and a
//!   missing `CURRENT` beside anything but what a first open leaves is an error, never a
//!   reason to delete.
//!
//! # The Raft log ([`LogStore`])
//!
//! One kv-wal record per change: each entry (encoded with postcard: compact, and a serde
//! format kept stable across its 1.x releases), the vote, the committed log id, and a marker
//! for each `truncate_after` and `purge`. Opening replays them in order, so a reopened log is
//! exactly the state its durable records describe; kv-wal cuts a torn tail and refuses damage
//! anywhere else, and a record this crate did not write is an error, never skipped.
//!
//! - **Group commit.** `append` writes the entries handed over together with one write
//!   system call and queues the callback; a flusher thread takes every callback queued, runs
//!   one fdatasync and only then calls them. Entries queued by several `append`s while a
//!   sync runs share the next one.
//! - `save_vote`, `save_committed`, `truncate_after` and `purge` sync before they return.
//! - `purge` writes its marker with the current vote and committed log id as one atomic
//!   unit, then deletes only the segments before the one holding the first entry it keeps.
//! - Entries are also kept in memory (reads are served from there) until purged: the log
//!   holds what a snapshot does not, and openraft purges behind each snapshot.
//!
//! # The state machine ([`StateMachine`])
//!
//! Applying an entry is one [`kv_store::WriteBatch`]: the entry's [`Write`]s plus, under
//! [`META_KEY`], its log id and the membership, so a restart neither re-applies nor skips an
//! entry. The meta values live in a reserved key range ([`RESERVED_PREFIX`]) rather than in
//! a new kv-store feature: it needs no change to the store, and the one batch makes the
//! data and the meta values atomic with the store's existing guarantees. The price is that
//! whoever lists keys must skip [`is_reserved`] keys and subtract one from `len()`, and
//! that requests writing such keys are refused ([`Request::validate`]; the state machine
//! also skips them, the same way on every replica).
//!
//! Applying an entry never fails for what the entry holds: that would stop openraft on every
//! replica, and again at each restart. `Request::validate` refuses, before proposing, keys
//! and values over the store's default limits ([`MAX_KEY_SIZE`], [`MAX_VALUE_SIZE`]) and
//! requests over one largest write ([`MAX_REQUEST_SIZE`]: its entry fits one Raft log
//! record, [`MAX_LOG_RECORD_SIZE`], and one append message); an entry the store refuses all the same (`KeyTooLarge`,
//! `ValueTooLarge`: decided by the entry and the store's options alone) has its writes
//! skipped and still moves the applied log id, identically on every replica.
//!
//! The store's options must not let replicas differ: [`StateMachine::open`] refuses memory
//! or key limits (`Reject` fails by each replica's memory; `Lru`/`Lfu` evict different keys,
//! the meta key among them) and `RecoveryMode::Salvage` (so does [`LogStore::open_with`]);
//! an installed snapshot's copy is opened `Strict`. **For the serving layer:** the store's
//! TTL expiry and its sweeper still run on each node's own clock. Deadlines are absolute
//! and decided by the leader, so every replica stores the same one, but whether a key reads
//! as expired, and when the sweeper drops it, depends on the local clock of the node asked:
//! a stale (`READONLY`) read on a node whose clock is behind can return a key the leader
//! already treats as gone.
//!
//! The store keeps its own durability setting (a batch window by default): an entry the
//! store loses in a power cut is still in the synced Raft log, and openraft applies it again
//! from there (the committed log id is saved). This holds for entries openraft purged too,
//! only because building a snapshot (`KvStore::checkpoint`) syncs the live store's log
//! before it returns, and openraft purges only up to a snapshot built: a store change that
//! dropped that sync would break it (`tests/snapshot_sync.rs` checks it).
//!
//! A snapshot is a checkpoint of the store taken while no entry is applied, so that it holds
//! exactly the entries up to its log id. It is sent as files ([`SnapshotData`]: each file's
//! path and length, read in chunks) through openraft's full-snapshot transfer, received into
//! the follower's directory with [`SnapshotInbox::receive`] and a [`SnapshotWriter`], and
//! installed by copying it into a new store and then rewriting `CURRENT`: a crash at any
//! step leaves the old state or the new one.
//!
//! # The network ([`Network`], [`router`])
//!
//! openraft's `RaftNetworkV2` over HTTP/1.1: [reqwest](https://docs.rs/reqwest) sends,
//! [axum](https://docs.rs/axum) receives, bodies are postcard. Chosen over gRPC (tonic)
//! because openraft's messages are serde types already (no schema, no `protoc` step) and
//! both crates are the tokio ecosystem's own, widely used and kept, with per-request
//! timeouts, body limits and connection pools built in. One client per target (openraft
//! runs one replication task per follower), so a slow node holds up only its own task;
//! each request is bounded by openraft's `hard_ttl` (an `AppendEntries` by at least 1 s plus
//! its size at [`APPEND_BYTES_PER_SECOND`]), connecting by [`CONNECT_TIMEOUT`]; an
//! unreachable node is retried after a backoff of 50 ms doubling to 1 s; bodies over
//! [`MAX_MESSAGE_BYTES`] are neither sent nor accepted (`AppendEntries` carries at most
//! [`MAX_PAYLOAD_ENTRIES`] entries and [`MAX_APPEND_ENTRIES_BYTES`] of them, or one entry of
//! at most [`MAX_ENTRY_BYTES`]); every request carries the cluster secret
//! ([`NodeOptions::cluster_secret`]) and its target's id, both checked before the body is
//! read, and each route has its own body limit; snapshots go file by
//! file in chunks of [`SNAPSHOT_CHUNK_BYTES`], into the receiver's [`SnapshotInbox`] (one
//! transfer at a time per receiver; a new one drops an unfinished one and its files).
//!
//! # A node ([`Node`])
//!
//! [`Node::start`] claims the directory for its id ([`NODE_ID_FILE`], written durably at
//! the first start; another id is refused with [`Error::NodeId`]), opens the log and the
//! state machine, starts Raft (heartbeat 100 ms, elections after 500-1000 ms) and serves
//! the network's routes on its Raft address. Members are [`NodeAddr`]s: the Raft address
//! and the client (Redis-protocol) address, so any node can name the leader to a client.
//!
//! # Known costs
//!
//! - Votes, committed ids, truncations and purges each wait for an fdatasync (on tokio's
//!   blocking pool, as do building and installing snapshots), taken with the log's lock
//!   released: reads (openraft's replication tasks) never wait for a disk, only writes do.
//!   An `append` waits for no fdatasync of its own (the flusher's covers it), except when
//!   its entries fill the active segment: it then rotates the segment on the runtime
//!   thread that called it (kv-wal syncs the old segment, preallocates the new one and
//!   syncs the directory), holding the writers' lock, not the readers'. Saving the committed log id is one more fdatasync per
//!   commit; openraft would work without it (at the price of `wait_for_recovery` before
//!   serving reads after a restart).
//! - Building a snapshot holds back applying entries while the checkpoint is written (the
//!   applying task waits on a lock, on its runtime thread).
//! - Entries of the unpurged log are held in memory twice at most (the log's copy and what
//!   openraft holds in flight).
#![forbid(unsafe_code)]

mod error;
mod files;
mod log_record;
mod log_store;
mod network;
mod node;
mod responder;
mod service;
mod snapshot;
mod state_machine;
mod types;
mod wire;

pub use error::{Error, Result};
pub use log_store::{LogReader, LogStore, DEFAULT_SEGMENT_SIZE, MAX_LOG_RECORD_SIZE, RAFT_LOG_DIR};
pub use network::{Connection, Network, CONNECT_TIMEOUT};
pub use node::{
    claim_node_id, stored_node_id, Node, NodeOptions, NODE_ID_FILE, SNAPSHOT_LOG_BYTES,
};
pub use openraft;
pub use responder::Settling;
pub use service::{router, Raft};
pub use snapshot::{SnapshotData, SnapshotWriter};
pub use state_machine::{
    Snapshot, SnapshotBuilder, SnapshotInbox, StateMachine, StoreReader, META_KEY,
    STATE_MACHINE_DIR,
};
pub use types::{
    is_reserved, Entry, LogId, NodeAddr, Request, Response, SnapshotMeta, StoredMembership,
    TypeConfig, Vote, Write, MAX_KEY_SIZE, MAX_REQUEST_SIZE, MAX_VALUE_SIZE, RESERVED_PREFIX,
};
pub use wire::{
    APPEND_BASE_TIMEOUT, APPEND_BYTES_PER_SECOND, MAX_APPEND_ENTRIES_BYTES, MAX_ENTRY_BYTES,
    MAX_MESSAGE_BYTES, MAX_PAYLOAD_ENTRIES, MAX_SNAPSHOT_CHUNK_MESSAGE_BYTES,
    MAX_SNAPSHOT_CONTROL_BYTES, MAX_VOTE_BYTES, SNAPSHOT_CHUNK_BYTES,
};
