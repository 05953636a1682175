//! Power loss, simulated: the store runs on a file system that keeps only what was synced
//! (`VolatileFileSystem`), the power is cut before one of its changing calls, each in turn,
//! and the directory reopened from what the cut left. Writes, batches, TTL puts,
//! read-modify-writes, transactions, compactions and checkpoints run meanwhile; an
//! acknowledged checkpoint must open as the state it was taken in. `Durability::Sync` must
//! keep every acknowledged write;
//! `Batch` may lose the last ones, but what survives is the state after some prefix of the
//! writes (batches whole) that includes everything before the last successful `sync`, or
//! the last acknowledged put of its own `WriteOptions::sync()`. The
//! same holds when the disk had written back part of what was not synced, in order or out of
//! order (a later page kept, an earlier one lost: recovery cuts the log at the hole, as of a
//! point in time, and reports it).
//!
//! What the model does not cover: directory changes that become durable without a sync of
//! the directory, and writes through the log's memory-mapped window (this disk maps nothing,
//! so `Batch` runs on `pwrite`s here).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::contents;
use kv_store::{CorruptionKind, Durability, IndexKind, KvStore, Options, WriteBatch, WriteOptions};
use kv_wal::fs::volatile::VolatileFileSystem;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// The store's directory: made by the store's first open, on the simulated disk only.
fn store_dir(parent: &Path) -> PathBuf {
    parent.join("store")
}

/// A window no test outlives: the background sync never runs, so every run makes the same
/// calls and each cut lands where the reference run counted it.
const BATCH: Durability = Durability::Batch(Duration::from_secs(3600));

fn options(fs: &VolatileFileSystem, durability: Durability) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .durability(durability)
        .segment_size(16 * 1024)
        .auto_compact(None)
        .file_system(Arc::new(fs.clone()))
}

/// What step `i` of the run does.
enum Step {
    Put(Vec<u8>, Vec<u8>),
    PutWithTtl(Vec<u8>, Vec<u8>),
    /// A put that returns once it is on stable storage, whatever the store's durability.
    DurablePut(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// A read-modify-write: the key's value with `+` appended (`+` if it had none).
    Update(Vec<u8>),
    /// A transaction: the first key's value moved to the second key, if it has one.
    Transfer(Vec<u8>, Vec<u8>),
    Compact,
    Sync,
    /// A checkpoint into `checkpoint_dir(parent, i)`.
    Checkpoint,
}

/// Where the checkpoint of step `i` goes.
fn checkpoint_dir(parent: &Path, i: u64) -> PathBuf {
    parent.join(format!("checkpoint-{i}"))
}

fn step(i: u64) -> Step {
    let key = |n: u64| format!("key-{:03}", n % 40).into_bytes();
    // Up to 700 bytes: what a run leaves unsynced spans pages, so that pages written back
    // out of order can leave a hole before valid records.
    let value = |n: u64| format!("value-{n}-{}", "x".repeat((n % 7 * 120) as usize)).into_bytes();
    match i % 23 {
        7 => Step::Delete(key(i * 3)),
        11 => Step::PutWithTtl(key(i), value(i)),
        21 => Step::DurablePut(key(i), value(i)),
        13 => Step::Batch(vec![
            (key(i + 1), Some(value(i))),
            (key(i + 2), None),
            (key(i + 3), Some(value(i + 1))),
        ]),
        5 => Step::Update(key(i)),
        19 => Step::Transfer(key(i), key(i + 5)),
        17 => Step::Sync,
        22 if i % 46 == 22 => Step::Compact,
        3 if i % 69 == 3 => Step::Checkpoint,
        _ => Step::Put(key(i), value(i)),
    }
}

/// Runs step `i` on the store in `parent`; `Err` once the store fails (the power is gone).
fn run(store: &KvStore, parent: &Path, i: u64) -> Result<(), kv_store::Error> {
    match step(i) {
        Step::Put(k, v) => store.put(k, v),
        // A day: nothing expires while the test runs.
        Step::PutWithTtl(k, v) => store.put_with_ttl(k, v, Duration::from_secs(86_400)),
        Step::DurablePut(k, v) => store.put_with(k, v, WriteOptions::sync()),
        Step::Delete(k) => store.delete(k),
        Step::Batch(ops) => {
            let mut batch = WriteBatch::new();
            for (k, v) in ops {
                match v {
                    Some(v) => batch.put(k, v),
                    None => batch.delete(k),
                };
            }
            store.write(batch)
        }
        Step::Update(k) => store
            .update_and_fetch(k, |old| Some([old.unwrap_or_default(), b"+"].concat()))
            .map(drop),
        Step::Transfer(from, to) => store.transaction(|tx| {
            if let Some(value) = tx.get(&from) {
                tx.put(&to, value).delete(&from);
            }
            Ok(())
        }),
        Step::Compact => store.compact().map(drop),
        Step::Sync => store.sync(),
        Step::Checkpoint => store.checkpoint(checkpoint_dir(parent, i)),
    }
}

fn apply(model: &mut Model, i: u64) {
    match step(i) {
        Step::Put(k, v) | Step::PutWithTtl(k, v) | Step::DurablePut(k, v) => {
            model.insert(k, v);
        }
        Step::Delete(k) => {
            model.remove(&k);
        }
        Step::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => model.insert(k, v),
                    None => model.remove(&k),
                };
            }
        }
        Step::Update(k) => {
            let mut value = model.get(&k).cloned().unwrap_or_default();
            value.push(b'+');
            model.insert(k, value);
        }
        Step::Transfer(from, to) => {
            if let Some(value) = model.remove(&from) {
                model.insert(to, value);
            }
        }
        Step::Compact | Step::Sync | Step::Checkpoint => {}
    }
}

const STEPS: u64 = 300;

/// What a power cut leaves of what was not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteBack {
    /// Nothing.
    None,
    /// A random prefix of each file's changes.
    Prefix,
    /// A random set of each file's changed pages: a later one may survive an earlier one.
    Pages,
}

/// The model after each prefix of the run: `states[k]` after steps `0..k`.
fn states() -> Vec<Model> {
    let mut model = Model::new();
    let mut states = vec![model.clone()];
    for i in 0..STEPS {
        apply(&mut model, i);
        states.push(model.clone());
    }
    states
}

/// Runs the whole sequence with the power cut after `cut` changing calls (keeping part of
/// what was not synced, as `written_back` says); returns the disk the cut left, how many
/// steps were acknowledged, and how many came before the last acknowledged sync or
/// checkpoint (every step, under `Sync`). `None` if the run ended before the cut: the shards' hash seeds are
/// random, so how many shards a snapshot writes, and so the count of calls, varies by one
/// or two between runs.
fn run_until_cut(
    parent: &Path,
    durability: Durability,
    cut: u64,
    written_back: WriteBack,
) -> Option<(VolatileFileSystem, u64, u64)> {
    let fs = VolatileFileSystem::with_dir(parent).unwrap();
    fs.cut_power_after(cut);
    match written_back {
        WriteBack::None => {}
        WriteBack::Prefix => fs.keep_unsynced_prefixes(cut),
        WriteBack::Pages => fs.keep_unsynced_pages(cut),
    }
    let mut acknowledged = 0;
    let mut synced = 0;
    if let Ok(store) = KvStore::open_with(store_dir(parent), options(&fs, durability)) {
        for i in 0..STEPS {
            if run(&store, parent, i).is_err() {
                assert!(fs.is_cut(), "step {i} failed with the power on");
                break;
            }
            acknowledged = i + 1;
            // A checkpoint makes everything before it durable in the store too: a Raft
            // state machine purges its log once a checkpoint of the store is taken.
            // So does a put synced on its own: its fsync covers the log up to it.
            if durability == Durability::Sync
                || matches!(
                    step(i),
                    Step::Sync | Step::Checkpoint | Step::DurablePut(..)
                )
            {
                synced = i + 1;
            }
        }
        // Closed, not dropped: a drop may leave the close to the maintenance thread, if it
        // holds the last handle for a moment, and the cut could come after the check below.
        let _ = store.close();
    } else {
        assert!(fs.is_cut(), "the store did not open with the power on");
    }
    fs.is_cut().then(|| (fs.restart(), acknowledged, synced))
}

fn check_every_cut(durability: Durability, written_back: WriteBack) {
    let states = states();
    let total = {
        let dir = tempfile::tempdir().unwrap();
        let fs = VolatileFileSystem::with_dir(dir.path()).unwrap();
        let store = KvStore::open_with(store_dir(dir.path()), options(&fs, durability)).unwrap();
        for i in 0..STEPS {
            run(&store, dir.path(), i).unwrap();
        }
        assert_eq!(contents(&store), states[STEPS as usize]);
        store.close().unwrap();
        fs.changes()
    };
    assert!(
        total > STEPS,
        "{total} changing calls: the run is too small to mean much"
    );
    let mut checked = 0;
    let mut torn = 0;
    let mut holes = 0;
    for cut in 0..total {
        let dir = tempfile::tempdir().unwrap();
        let Some((disk, acknowledged, synced)) =
            run_until_cut(dir.path(), durability, cut, written_back)
        else {
            continue;
        };
        let store = KvStore::open_with(store_dir(dir.path()), options(&disk, durability))
            .unwrap_or_else(|e| panic!("cut at {cut}: reopening failed: {e}"));
        let recovered = contents(&store);
        let report = &store.open_report().recovery;
        torn += u64::from(report.bytes_truncated > 0);
        holes += u64::from(
            report
                .corruptions
                .iter()
                .any(|c| c.kind == CorruptionKind::Hole),
        );
        // A step is atomic: the one the cut interrupted is there whole or not at all.
        let candidates = synced as usize..=(acknowledged as usize + 1).min(STEPS as usize);
        let matched = candidates.clone().find(|&k| states[k] == recovered);
        assert!(
            matched.is_some(),
            "cut at {cut} ({durability:?}): {acknowledged} steps acknowledged, {synced} synced, \
             and what reopened is no state in {candidates:?}"
        );
        // The reopened store works.
        store.put("after", "the cut").unwrap();
        drop(store);
        // A checkpoint that was acknowledged opens as the state it was taken in.
        for i in (0..acknowledged).filter(|&i| matches!(step(i), Step::Checkpoint)) {
            let copy =
                KvStore::open_with(checkpoint_dir(dir.path(), i), options(&disk, durability))
                    .unwrap_or_else(|e| panic!("cut at {cut}: checkpoint {i} does not open: {e}"));
            assert_eq!(
                contents(&copy),
                states[i as usize],
                "cut at {cut}: checkpoint {i}"
            );
        }
        checked += 1;
    }
    // Only the last few cuts may fall past the end of a run.
    assert!(checked + 5 >= total, "{checked} of {total} cuts reached");
    if written_back != WriteBack::None {
        assert!(
            torn > 0,
            "no cut left a torn tail: the test tests less than it says"
        );
    }
    // Under `Sync` at most one write is unsynced at a cut: no valid record can follow a hole.
    if written_back == WriteBack::Pages && durability != Durability::Sync {
        assert!(
            holes > 0,
            "no cut left a hole before kept pages: the test tests less than it says"
        );
    }
}

#[test]
fn sync_durability_keeps_every_acknowledged_write_across_a_power_cut() {
    check_every_cut(Durability::Sync, WriteBack::None);
}

#[test]
fn batch_durability_keeps_a_prefix_that_covers_every_sync() {
    check_every_cut(BATCH, WriteBack::None);
}

/// The disk had written back part of what was not synced, in order: the newest segment ends
/// in a torn record, or in complete records no sync covered.
#[test]
fn a_partly_written_back_tail_reopens_as_a_prefix_too() {
    check_every_cut(Durability::Sync, WriteBack::Prefix);
    check_every_cut(BATCH, WriteBack::Prefix);
}

/// The disk had written back some unsynced pages and not others, out of order: a later page
/// kept, an earlier one lost, so zeros lie before valid records in the never-synced tail.
/// Recovery cuts the log at the hole (a point in time) and reports it.
#[test]
fn pages_written_back_out_of_order_reopen_as_a_prefix_too() {
    check_every_cut(Durability::Sync, WriteBack::Pages);
    check_every_cut(BATCH, WriteBack::Pages);
}
