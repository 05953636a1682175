//! The state machine on kv-store: applied entries and their log id survive a reopen and a
//! SIGKILL together; a snapshot streams in chunks to another node and installs there; a crash
//! at each step of an install leaves the old state or the new one.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::log_id;
use futures_util::stream;
use kv_raft::{is_reserved, Entry, Request, SnapshotData, StateMachine, StoreReader, Write};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, Membership, RaftSnapshotBuilder};

const CHILD_ENV: &str = "KV_RAFT_SM_CRASH_CHILD";

fn put_entry(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Request {
            writes: vec![
                Write::Put {
                    key: format!("k{index}").into_bytes().into(),
                    value: index.to_string().into_bytes().into(),
                    deadline_ms: None,
                },
                // A second key in the same entry: both or neither.
                Write::Put {
                    key: format!("pair{index}").into_bytes().into(),
                    value: index.to_string().into_bytes().into(),
                    deadline_ms: None,
                },
            ],
            staged_term: None,
        }),
    }
}

fn membership_entry(index: u64, voters: &[u64]) -> Entry {
    let voters: BTreeSet<u64> = voters.iter().copied().collect();
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(Membership::new_with_defaults(vec![voters], [])),
    }
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
    sm.apply(stream::iter(entries.into_iter().map(|e| Ok((e, None)))))
        .await
        .unwrap();
}

/// A snapshot of `sm` as it is.
async fn snapshot_of(sm: &mut StateMachine) -> kv_raft::Snapshot {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

fn open(dir: &Path) -> StateMachine {
    StateMachine::open(dir, kv_store::Options::default()).unwrap()
}

/// The user's keys and values (the crate's own keys skipped).
fn user_data(reader: &StoreReader) -> Vec<(Vec<u8>, Vec<u8>)> {
    reader
        .store()
        .iter()
        .filter(|(k, _)| !is_reserved(k))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect()
}

fn applied_index(sm: &StateMachine) -> Option<u64> {
    sm.reader().last_applied().map(|id| id.index())
}

#[tokio::test]
async fn applied_entries_and_their_log_id_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    apply(
        &mut sm,
        vec![membership_entry(0, &[1, 2, 3]), put_entry(1), put_entry(2)],
    )
    .await;
    let data = user_data(&sm.reader());
    drop(sm);
    let mut sm = open(dir.path());
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
    assert_eq!(user_data(&sm.reader()), data);
    assert_eq!(data.len(), 4);
    // The reserved key is there, and is the only one a user's listing must skip.
    assert_eq!(sm.reader().store().len(), 5);
}

#[tokio::test]
async fn a_request_writing_a_reserved_key_is_refused_and_never_applied() {
    let bad = Request::put(kv_raft::META_KEY.to_vec(), b"x".to_vec());
    assert!(matches!(
        bad.validate(),
        Err(kv_raft::Error::ReservedKey(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    let entry = Entry {
        log_id: log_id(1, 0),
        payload: EntryPayload::Normal(bad),
    };
    apply(&mut sm, vec![entry]).await;
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(
        applied,
        Some(log_id(1, 0)),
        "the meta key was overwritten by a request"
    );
}

/// Sends `data` file by file in small chunks into `to`'s inbox, as a network layer would.
fn stream_into(data: &SnapshotData, to: &StateMachine) -> SnapshotData {
    let mut writer = to.inbox().receive().unwrap();
    for dir in data.dirs() {
        writer.create_dir(dir).unwrap();
    }
    let mut buf = [0u8; 1000];
    for (n, (path, len)) in data.files().enumerate() {
        let mut at = 0;
        while at < len {
            let read = data.read_at(n, at, &mut buf).unwrap();
            writer.write(path, at, &buf[..read]).unwrap();
            at += read as u64;
        }
        if len == 0 {
            writer.write(path, 0, &[]).unwrap();
        }
    }
    writer.finish().unwrap()
}

/// A snapshot is a checkpoint taken with every apply held back: it is never paced, even
/// when the store's compactions are (here at 512 bytes a second, which would take the
/// snapshot of these 600 keys half a minute).
#[tokio::test]
async fn a_snapshot_is_written_unpaced_whatever_the_store_options() {
    let dir = tempfile::tempdir().unwrap();
    let options = kv_store::Options::default().compaction_rate(Some(512));
    let mut sm = StateMachine::open(dir.path(), options).unwrap();
    apply(&mut sm, (1..=300).map(put_entry).collect()).await;
    let began = std::time::Instant::now();
    let snapshot = snapshot_of(&mut sm).await;
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 300)));
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "the snapshot took {:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn a_snapshot_streams_to_another_node_and_installs_there() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path());
    let mut follower = open(follower_dir.path());
    apply(&mut leader, vec![membership_entry(0, &[1, 2])]).await;
    apply(&mut leader, (1..=300).map(put_entry).collect()).await;
    apply(&mut follower, (1..=3).map(put_entry).collect()).await;

    let snapshot = snapshot_of(&mut leader).await;
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 300)));
    // Applied after the snapshot: not in it.
    apply(&mut leader, vec![put_entry(301)]).await;

    let received = stream_into(&snapshot.snapshot, &follower);
    follower
        .install_snapshot(&snapshot.meta, received)
        .await
        .unwrap();
    // The received copy became the follower's snapshot: nothing else is left behind.
    let left = names(follower_dir.path());
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(applied_index(&follower), Some(300));
    let on_follower = user_data(&follower.reader());
    assert_eq!(on_follower.len(), 600);
    assert!(!on_follower.iter().any(|(k, _)| k == b"k301"));
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);

    // And the follower goes on from there, across a reopen.
    apply(&mut follower, vec![put_entry(301)]).await;
    drop(follower);
    let follower = open(follower_dir.path());
    assert_eq!(applied_index(&follower), Some(301));
    assert_eq!(user_data(&follower.reader()), user_data(&leader.reader()));
}

#[tokio::test]
async fn a_snapshot_transfer_given_up_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let sm = open(dir.path());
    let before = names(dir.path());
    let mut writer = sm.inbox().receive().unwrap();
    writer.write(Path::new("manifest"), 0, b"half").unwrap();
    drop(writer);
    assert_eq!(names(dir.path()), before);
}

/// openraft drops a received snapshot without installing it when it is not newer than what
/// is committed, or when the vote changed. Before: its directory, a full store copy, stayed
/// until the next open.
#[tokio::test]
async fn a_received_snapshot_never_installed_is_removed_with_its_last_handle() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(a.path());
    apply(&mut leader, (1..=20).map(put_entry).collect()).await;
    let snapshot = snapshot_of(&mut leader).await;
    let follower = open(b.path());
    let before = names(b.path());
    let received = stream_into(&snapshot.snapshot, &follower);
    let copy = received.clone();
    assert_ne!(names(b.path()), before);
    drop(received);
    // A clone still holds it.
    assert_ne!(names(b.path()), before);
    assert_eq!(copy.files().count(), snapshot.snapshot.files().count());
    drop(copy);
    assert_eq!(names(b.path()), before);
}

/// Names in `dir/sm/`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(kv_raft::STATE_MACHINE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const STEP_CHILD_ENV: &str = "KV_RAFT_INSTALL_STEP_CHILD";

/// The child: a leader with entries 0..50 and its snapshot; a node with entries 100..105 and
/// a snapshot of its own, which installs the leader's and, once step `args[1]` is done,
/// acknowledges it and waits to be killed (nothing after the step runs: no drop, no close).
#[test]
#[ignore = "the child process of a_crash_at_any_step_of_an_install_leaves_the_old_state_or_the_new"]
fn install_step_child() {
    let Some(args) = kv_testkit::child_args(STEP_CHILD_ENV) else {
        return;
    };
    let root = Path::new(&args[0]);
    let kill_at: u32 = args[1].parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut leader = open(&root.join("leader"));
        apply(&mut leader, (0..50).map(put_entry).collect()).await;
        let snapshot = snapshot_of(&mut leader).await;
        let mut node = open(&root.join("node"));
        apply(&mut node, (100..105).map(put_entry).collect()).await;
        snapshot_of(&mut node).await;
        node.install_with_hook(&snapshot.meta, &snapshot.snapshot, &|step| {
            if step == kill_at {
                // The harness's "test ... " line ends first: an ack must start a line.
                println!();
                kv_testkit::acknowledge(0, u64::from(step));
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })
        .unwrap();
        panic!("step {kill_at} never came");
    });
}

/// SIGKILLed right after each of the five steps of an install: a reopen finds the old state
/// (before `CURRENT` is switched, steps 1 to 3) or the new one (steps 4 and 5), and what the
/// crash left half-made is removed.
#[tokio::test]
async fn a_crash_at_any_step_of_an_install_leaves_the_old_state_or_the_new() {
    let old_data = data_of(&(100..105).map(put_entry).collect::<Vec<_>>());
    let new_data = data_of(&(0..50).map(put_entry).collect::<Vec<_>>());
    for step in 1..=5u32 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let mut child = kv_testkit::spawn_child(
            "install_step_child",
            STEP_CHILD_ENV,
            &[path, &step.to_string()],
        );
        let acks = kv_testkit::kill_after_acks(&mut child, 1, |_| {});
        assert_eq!(acks.last(0), Some(u64::from(step)));
        let node_dir = dir.path().join("node");
        let mut sm = open(&node_dir);
        let (applied, data) = (applied_index(&sm), user_data(&sm.reader()));
        let expected = if step < 4 {
            (Some(104), &old_data)
        } else {
            (Some(49), &new_data)
        };
        assert_eq!((applied, &data), expected, "killed after step {step}");
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id.map(|id| id.index()), expected.0);
        // One store and one snapshot: the rest was removed by the reopen.
        let left = names(&node_dir);
        let stores = left.iter().filter(|n| n.starts_with("store-")).count();
        let snapshots = left.iter().filter(|n| n.starts_with("snapshot-")).count();
        assert_eq!((stores, snapshots, left.len()), (1, 1, 3), "{left:?}");
    }
}

/// The child: applies entries one by one, acknowledging each applied index.
#[test]
#[ignore = "the child process of a_killed_state_machine_neither_reapplies_nor_skips"]
fn crash_child() {
    let Some(args) = kv_testkit::child_args(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sm = open(Path::new(&args[0]));
        for index in 0u64.. {
            apply(&mut sm, vec![put_entry(index)]).await;
            kv_testkit::acknowledge(0, index);
        }
    });
}

#[tokio::test]
async fn a_killed_state_machine_neither_reapplies_nor_skips() {
    for kill_after in [30, 300] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let mut child = kv_testkit::spawn_child("crash_child", CHILD_ENV, &[path]);
        let acks = kv_testkit::kill_after_acks(&mut child, kill_after, |_| {});
        let sm = open(dir.path());
        let applied = applied_index(&sm).expect("entries were applied");
        assert!(
            applied >= acks.last(0).unwrap(),
            "an applied entry was lost"
        );
        // Exactly the entries up to the applied log id, each whole: none beyond it (it would
        // be applied twice), none missing (skipped).
        let data = user_data(&sm.reader());
        let mut expected: Vec<(Vec<u8>, Vec<u8>)> = (0..=applied)
            .flat_map(|i| {
                let v = i.to_string().into_bytes();
                [
                    (format!("k{i}").into_bytes(), v.clone()),
                    (format!("pair{i}").into_bytes(), v),
                ]
            })
            .collect();
        expected.sort();
        assert_eq!(data, expected);
    }
}

const INSTALL_CHILD_ENV: &str = "KV_RAFT_INSTALL_CRASH_CHILD";

/// Entries each round of the install child adds before its next snapshot.
const ROUND: u64 = 300;

/// The data a store holds once `entries` are applied.
fn data_of(entries: &[Entry]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut data: Vec<(Vec<u8>, Vec<u8>)> = entries
        .iter()
        .flat_map(|e| match &e.payload {
            EntryPayload::Normal(r) => r.writes.clone(),
            _ => Vec::new(),
        })
        .map(|w| match w {
            Write::Put { key, value, .. } => (key.to_vec(), value.to_vec()),
            Write::Delete { .. } => unreachable!(),
        })
        .collect();
    data.sort();
    data
}

/// The child: in each round, applies `ROUND` more entries to a source state machine, builds
/// a snapshot of it and installs that on the node (each newer than the last, as openraft
/// installs them), acknowledging each install, until it is killed.
#[test]
#[ignore = "the child process of a_state_machine_killed_while_installing_holds_one_snapshot"]
fn install_crash_child() {
    let Some(args) = kv_testkit::child_args(INSTALL_CHILD_ENV) else {
        return;
    };
    let root = Path::new(&args[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut source = open(&root.join("source"));
        let mut node = open(&root.join("node"));
        for round in 0u64.. {
            apply(
                &mut source,
                (round * ROUND..(round + 1) * ROUND)
                    .map(put_entry)
                    .collect(),
            )
            .await;
            let snapshot = snapshot_of(&mut source).await;
            node.install_snapshot(&snapshot.meta, snapshot.snapshot)
                .await
                .unwrap();
            kv_testkit::acknowledge(0, round);
        }
    });
}

/// Reads the child's acknowledgements until `acks` of them, waits `delay`, kills it.
fn kill_after_delay(child: &mut std::process::Child, acks: usize, delay: Duration) {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut seen = 0;
    while seen < acks {
        let line = lines
            .next()
            .expect("the child acknowledged installs")
            .unwrap();
        if line.starts_with("ack ") {
            seen += 1;
        }
    }
    std::thread::sleep(delay);
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
}

#[tokio::test]
async fn a_state_machine_killed_while_installing_holds_one_snapshot() {
    // Killed at times spread over the next install, so that the kill lands in each of its
    // steps in some run.
    for (kill_after, delay_ms) in [(1, 0), (2, 1), (2, 3), (3, 6), (2, 10), (3, 15), (2, 25)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let mut child = kv_testkit::spawn_child("install_crash_child", INSTALL_CHILD_ENV, &[path]);
        kill_after_delay(&mut child, kill_after, Duration::from_millis(delay_ms));
        let node = open(&dir.path().join("node"));
        let applied = applied_index(&node).expect("an install was acknowledged");
        // A whole snapshot: one of the rounds', at least the last acknowledged.
        assert_eq!(
            (applied + 1) % ROUND,
            0,
            "applied up to {applied}: no snapshot's"
        );
        assert!(
            (applied + 1) / ROUND >= kill_after as u64,
            "an acknowledged install was lost"
        );
        let expected = data_of(&(0..=applied).map(put_entry).collect::<Vec<_>>());
        assert_eq!(
            user_data(&node.reader()),
            expected,
            "after a kill the store holds other data than its snapshot at {applied}"
        );
        let left = names(&dir.path().join("node"));
        assert_eq!(
            left.len(),
            3,
            "what the crash left was not removed: {left:?}"
        );
    }
}
