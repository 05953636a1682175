//! The Raft log against a model: random appends, truncations, purges, votes and committed
//! ids, reopens, and power cuts on kv-wal's in-memory disk. A reopened log must hold exactly
//! the state after some prefix of the records written, no shorter than what was
//! acknowledged (an `Ok` from the call, and from the append's callback).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{append, entry, log_id, seen, vote, Seen};
use kv_raft::LogStore;
use kv_wal::fs::volatile::VolatileFileSystem;
use kv_wal::WalConfig;
use openraft::storage::RaftLogStorage;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(u64),
    NewTerm,
    Truncate(u64),
    Purge(u64),
    /// A purge at or past the last log id, the log empty or not: what openraft does at
    /// startup with `purge(last_applied)` after a snapshot was installed.
    PurgeBeyond(u64),
    /// `truncate_after(None)`: every entry goes (only when nothing was purged).
    TruncateAll,
    Commit(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..5).prop_map(Op::Append),
        1 => Just(Op::NewTerm),
        2 => (0u64..6).prop_map(Op::Truncate),
        2 => (0u64..8).prop_map(Op::Purge),
        1 => (0u64..3).prop_map(Op::PurgeBeyond),
        1 => Just(Op::TruncateAll),
        1 => (0u64..6).prop_map(Op::Commit),
        1 => Just(Op::Reopen),
    ]
}

/// What a power cut keeps of what was written but not synced.
#[derive(Debug, Clone)]
enum Keep {
    /// Nothing.
    Synced,
    /// A random prefix of each file's unsynced bytes.
    Prefixes(u64),
    /// A random set of each file's unsynced pages, out of order.
    Pages(u64),
}

fn keep() -> impl Strategy<Value = Keep> {
    prop_oneof![
        Just(Keep::Synced),
        any::<u64>().prop_map(Keep::Prefixes),
        any::<u64>().prop_map(Keep::Pages),
    ]
}

fn open(fs: &VolatileFileSystem, dir: &Path) -> std::io::Result<LogStore> {
    // Small segments: purges delete whole segments often.
    let config = WalConfig::new(dir)
        .max_segment_size(512)
        .file_system(Arc::new(fs.clone()));
    Ok(LogStore::open_with(config)?)
}

/// Runs `ops`, cutting the power after `cut` changing calls if given; returns whether the
/// reopened log matched.
async fn run(ops: Vec<Op>, cut: Option<(u64, Keep)>) -> Result<(), TestCaseError> {
    let dir = Path::new("/raft");
    let mut fs = VolatileFileSystem::with_dir(dir).unwrap();
    let mut slot = Some(open(&fs, dir).unwrap());
    if let Some((after, keep)) = cut {
        match keep {
            Keep::Synced => {}
            Keep::Prefixes(seed) => fs.keep_unsynced_prefixes(seed),
            Keep::Pages(seed) => fs.keep_unsynced_pages(seed),
        }
        fs.cut_power_after(after);
    }
    // The model: every state the records written so far describe, one per record.
    let mut history = vec![Seen::default()];
    let mut acked = 0;
    let mut term = 1;
    for op in ops {
        let store = slot.as_mut().unwrap();
        let mut now = history.last().unwrap().clone();
        let result = match op {
            Op::Append(n) => {
                let first = now
                    .entries
                    .last()
                    .or(now.purged.as_ref())
                    .map_or(0, |e| e.0 + 1);
                let entries: Vec<_> = (first..first + n).map(|i| entry(term, i)).collect();
                for i in first..first + n {
                    now.entries.push((i, term));
                    history.push(now.clone());
                }
                append(store, entries).await
            }
            Op::NewTerm => {
                term += 1;
                now.vote = Some(term);
                history.push(now);
                store.save_vote(&vote(term)).await
            }
            Op::Truncate(back) => {
                let Some(&(last, _)) = now.entries.last() else {
                    continue;
                };
                let Some(&(first, _)) = now.entries.first() else {
                    continue;
                };
                let keep = last.saturating_sub(back);
                if keep < first {
                    continue;
                }
                let at = now.entries.iter().find(|e| e.0 == keep).copied().unwrap();
                now.entries.retain(|e| e.0 <= keep);
                history.push(now);
                store.truncate_after(Some(log_id(at.1, at.0))).await
            }
            Op::Purge(k) => {
                let Some(&(first, _)) = now.entries.first() else {
                    continue;
                };
                let Some(at) = now.entries.iter().find(|e| e.0 == first + k).copied() else {
                    continue;
                };
                now.entries.retain(|e| e.0 > at.0);
                now.purged = Some(at);
                history.push(now);
                store.purge(log_id(at.1, at.0)).await
            }
            Op::PurgeBeyond(k) => {
                let at = match (now.entries.last(), now.purged) {
                    (Some(&(last, last_term)), _) if k == 0 => (last, last_term),
                    (Some(&(last, _)), _) => (last + k, term),
                    (None, Some((purged, _))) => (purged + 1 + k, term),
                    (None, None) => (k, term),
                };
                now.entries.clear();
                now.purged = Some(at);
                history.push(now);
                store.purge(log_id(at.1, at.0)).await
            }
            Op::TruncateAll => {
                if now.purged.is_some() {
                    continue;
                }
                now.entries.clear();
                history.push(now);
                store.truncate_after(None).await
            }
            Op::Commit(k) => {
                let Some(&(first, _)) = now.entries.first() else {
                    continue;
                };
                let Some(at) = now.entries.iter().find(|e| e.0 == first + k).copied() else {
                    continue;
                };
                now.committed = Some(at);
                history.push(now);
                store.save_committed(Some(log_id(at.1, at.0))).await
            }
            Op::Reopen => {
                slot = None;
                match open(&fs, dir) {
                    Ok(mut s) => {
                        prop_assert_eq!(&seen(&mut s).await.unwrap(), history.last().unwrap());
                        slot = Some(s);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if result.is_err() {
            prop_assert!(
                fs.is_cut(),
                "only a power cut fails a call here: {result:?}"
            );
            break;
        }
        acked = history.len() - 1;
        let store = slot.as_mut().unwrap();
        prop_assert_eq!(&seen(store).await.unwrap(), history.last().unwrap());
    }
    drop(slot);
    fs = fs.restart();
    let mut store = open(&fs, dir).unwrap();
    let found = seen(&mut store).await.unwrap();
    prop_assert!(
        history[acked..].contains(&found),
        "after the restart the log holds {found:?}, which is no state from the last \
         acknowledged one ({:?}) on",
        history[acked]
    );
    Ok(())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Without power cuts: every call's effect is seen at once and after every reopen.
    #[test]
    fn log_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        block_on(run(ops, None))?;
    }

    /// With a power cut somewhere: the reopened log is a state between the last acknowledged
    /// one and the last written one.
    #[test]
    fn a_power_cut_keeps_every_acknowledged_change(
        ops in proptest::collection::vec(op(), 1..40),
        after in 0u64..120,
        keep in keep(),
    ) {
        block_on(run(ops, Some((after, keep))))?;
    }
}
