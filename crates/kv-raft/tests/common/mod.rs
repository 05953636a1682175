//! What the Raft log tests share: building entries, appending with a callback, and reading
//! the whole state of a log back through openraft's API.

#![allow(dead_code)]

use std::io;

use kv_raft::{Entry, LogId, LogStore, Request, TypeConfig, Vote};
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, RaftLogReader};

pub type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(LeaderId::new_committed(term, 1), index)
}

/// The entry at `index` written in `term`: its payload names both, so a read-back entry is
/// checked whole.
pub fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request::put(index.to_string(), term.to_string())),
    }
}

pub fn vote(term: u64) -> Vote {
    Vote::new(term, 1)
}

/// Appends `entries` and waits for the callback: `Ok` once they are durable.
pub async fn append(store: &mut LogStore, entries: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await?;
    rx.await.map_err(io::Error::other)?
}

/// Everything a Raft log holds, as openraft reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// (index, term) of each entry, in order.
    pub entries: Vec<(u64, u64)>,
    pub purged: Option<(u64, u64)>,
    pub vote: Option<u64>,
    pub committed: Option<(u64, u64)>,
}

fn parts(id: &LogId) -> (u64, u64) {
    (id.index(), id.committed_leader_id().term)
}

pub async fn seen(store: &mut LogStore) -> io::Result<Seen> {
    let state = store.get_log_state().await?;
    let mut reader = store.get_log_reader().await;
    let entries = reader.try_get_log_entries(..).await?;
    let mut out = Vec::new();
    for e in &entries {
        let (index, term) = parts(&e.log_id);
        assert_eq!(
            e,
            &entry(term, index),
            "an entry read back differs from the one written"
        );
        out.push((index, term));
    }
    let seen = Seen {
        entries: out,
        purged: state.last_purged_log_id.as_ref().map(parts),
        vote: reader.read_vote().await?.map(|v| v.leader_id().term),
        committed: store.read_committed().await?.as_ref().map(parts),
    };
    let last = seen.entries.last().copied().or(seen.purged);
    assert_eq!(
        state.last_log_id.as_ref().map(parts),
        last,
        "the last log id"
    );
    Ok(seen)
}
