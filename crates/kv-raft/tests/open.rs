//! Opening the state machine's directory: never deletes what no durable record said to
//! delete, and never while another handle has it open.

mod common;

use std::path::Path;

use common::log_id;
use futures_util::stream;
use kv_raft::{Entry, Error, Request, StateMachine, STATE_MACHINE_DIR};
use kv_store::Options;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder};

fn put(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Request::put(
            format!("k{index}").into_bytes(),
            b"v".to_vec(),
        )),
    }
}

async fn apply(sm: &mut StateMachine, range: std::ops::RangeInclusive<u64>) {
    sm.apply(stream::iter(range.map(|i| Ok((put(i), None)))))
        .await
        .unwrap();
}

/// Names in `dir/sm/` and the sizes of the files under each, sorted.
fn tree(dir: &Path) -> Vec<(String, u64)> {
    fn walk(path: &Path, rel: String, out: &mut Vec<(String, u64)>) {
        let meta = std::fs::metadata(path).unwrap();
        out.push((rel.clone(), if meta.is_dir() { 0 } else { meta.len() }));
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                walk(&entry.path(), format!("{rel}/{name}"), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join(STATE_MACHINE_DIR), String::new(), &mut out);
    out.sort();
    out
}

/// The error of an open that must fail (a state machine's `Debug` is too long to print).
fn open_err(dir: &Path) -> Error {
    match StateMachine::open(dir, Options::default()) {
        Ok(_) => panic!("the open succeeded"),
        Err(e) => e,
    }
}

/// Before: a missing `CURRENT` read as a new directory, and opening deleted every store and
/// snapshot but `store-0`.
#[tokio::test]
async fn a_lost_current_is_an_error_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut sm = StateMachine::open(dir.path(), Options::default()).unwrap();
        apply(&mut sm, 1..=20).await;
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    }
    std::fs::remove_file(dir.path().join(STATE_MACHINE_DIR).join("CURRENT")).unwrap();
    let before = tree(dir.path());
    assert!(before.iter().any(|(n, _)| n.starts_with("/snapshot-")));
    let err = open_err(dir.path());
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert_eq!(tree(dir.path()), before, "opening changed the directory");
}

/// What a first open or a reception leaves before the first `CURRENT` is written still
/// opens as new.
#[tokio::test]
async fn a_first_open_cut_short_opens_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let sm_dir = dir.path().join(STATE_MACHINE_DIR);
    for name in ["store-0", "incoming-3", "building-2"] {
        std::fs::create_dir_all(sm_dir.join(name)).unwrap();
    }
    std::fs::write(sm_dir.join("CURRENT.tmp"), b"half").unwrap();
    let mut sm = StateMachine::open(dir.path(), Options::default()).unwrap();
    apply(&mut sm, 1..=1).await;
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 1)));
}
/// Before: nothing locked `DIR/sm`: a second open removed what it took for garbage (a
/// snapshot being received, here) and only then failed on the live store's own lock.
#[tokio::test]
async fn a_second_open_is_refused_before_it_touches_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(dir.path(), Options::default()).unwrap();
    apply(&mut sm, 1..=5).await;
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut writer = sm.inbox().receive().unwrap();
    let data = &snapshot.snapshot;
    for d in data.dirs() {
        writer.create_dir(d).unwrap();
    }
    let mut buf = vec![0; 1 << 16];
    for (n, (path, len)) in data.files().enumerate() {
        let read = data.read_at(n, 0, &mut buf).unwrap();
        assert_eq!(read as u64, len);
        writer.write(path, 0, &buf[..read]).unwrap();
    }
    let before = tree(dir.path());
    for _ in 0..3 {
        let err = open_err(dir.path());
        assert!(matches!(err, Error::Locked(_)), "{err:?}");
    }
    // Many openers at once, all refused, none touching anything.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..5 {
                    assert!(matches!(open_err(dir.path()), Error::Locked(_)));
                }
            });
        }
    });
    assert_eq!(
        tree(dir.path()),
        before,
        "a refused open changed the directory"
    );
    let received = writer.finish().unwrap();
    sm.install_snapshot(&snapshot.meta, received).await.unwrap();
    drop(sm);
    // Released with the state machine.
    let mut sm = StateMachine::open(dir.path(), Options::default()).unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 5)));
}

/// Before: a store `CURRENT` names but that is missing was created anew, empty, and the
/// state machine opened with nothing applied.
#[tokio::test]
async fn a_store_or_snapshot_current_names_but_missing_is_an_error() {
    for missing in ["store-0", "snapshot-1"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut sm = StateMachine::open(dir.path(), Options::default()).unwrap();
            apply(&mut sm, 1..=5).await;
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        }
        let sm_dir = dir.path().join(STATE_MACHINE_DIR);
        std::fs::rename(sm_dir.join(missing), dir.path().join("moved")).unwrap();
        let before = tree(dir.path());
        let err = open_err(dir.path());
        assert!(matches!(err, Error::Corrupt(_)), "{missing}: {err:?}");
        assert_eq!(
            tree(dir.path()),
            before,
            "{missing}: opening changed the directory"
        );
    }
}
