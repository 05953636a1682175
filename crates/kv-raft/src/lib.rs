//! Replication on openraft.
#![forbid(unsafe_code)]

mod error;
mod files;
mod log_record;
mod log_store;
mod snapshot;
mod state_machine;
mod types;

pub use error::{Error, Result};
pub use log_store::{LogReader, LogStore, DEFAULT_SEGMENT_SIZE, RAFT_LOG_DIR};
pub use openraft;
pub use snapshot::{SnapshotData, SnapshotWriter};
pub use state_machine::{
    Snapshot, SnapshotBuilder, SnapshotInbox, StateMachine, StoreReader, META_KEY,
    STATE_MACHINE_DIR,
};
pub use types::{
    is_reserved, Entry, LogId, Request, Response, SnapshotMeta, StoredMembership, TypeConfig,
    Vote, Write, RESERVED_PREFIX,
};
