//! Requests over the store's or the log's limits: refused before proposing, never able to
//! stop a replica. One that slips through is skipped on apply, the same way everywhere, and
//! the largest request `validate` accepts fits one record of the Raft log.

mod common;

use common::{append, log_id};
use futures_util::stream;
use kv_raft::{
    is_reserved, Entry, Error, LogStore, Request, StateMachine, Write, MAX_KEY_SIZE,
    MAX_REQUEST_SIZE, MAX_VALUE_SIZE,
};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, RaftLogReader};

fn normal(index: u64, request: Request) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(request),
    }
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) -> std::io::Result<()> {
    sm.apply(stream::iter(entries.into_iter().map(|e| Ok((e, None)))))
        .await
}

#[test]
fn validate_refuses_keys_values_and_requests_over_the_limits() {
    let long_key = Request::put(vec![b'k'; MAX_KEY_SIZE + 1], b"v".to_vec());
    assert!(matches!(
        long_key.validate(),
        Err(Error::KeyTooLarge { len, max }) if len == MAX_KEY_SIZE + 1 && max == MAX_KEY_SIZE
    ));
    let long_delete = Request::delete(vec![b'k'; MAX_KEY_SIZE + 1]);
    assert!(matches!(
        long_delete.validate(),
        Err(Error::KeyTooLarge { .. })
    ));
    let long_value = Request::put(b"k".to_vec(), vec![0; MAX_VALUE_SIZE + 1]);
    assert!(matches!(
        long_value.validate(),
        Err(Error::ValueTooLarge { .. })
    ));
    // Each value within the store's limit, together more than a log record holds.
    let value = vec![0; MAX_VALUE_SIZE];
    let many = Request {
        writes: (0..3)
            .map(|i| Write::Put {
                key: vec![i].into(),
                value: value.clone().into(),
                deadline_ms: None,
            })
            .collect(),
        staged_term: None,
    };
    assert!(matches!(
        many.validate(),
        Err(Error::RequestTooLarge { max, .. }) if max == MAX_REQUEST_SIZE
    ));
    let at_limits = Request::put(vec![b'k'; MAX_KEY_SIZE], vec![0; MAX_VALUE_SIZE]);
    at_limits.validate().unwrap();
}

/// Before: the leader's log refused the record of a value the store accepts (its limit was
/// the store's), and a failed append stops the leader.
#[tokio::test]
async fn the_largest_valid_request_fits_one_record_of_the_raft_log() {
    let request = Request::put(vec![b'k'; MAX_KEY_SIZE], vec![7; MAX_VALUE_SIZE]);
    request.validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        append(&mut log, vec![normal(1, request.clone())])
            .await
            .unwrap();
    }
    let mut log = LogStore::open(dir.path()).unwrap();
    let mut reader = log.get_log_reader().await;
    let entries = reader.try_get_log_entries(..).await.unwrap();
    assert_eq!(entries, [normal(1, request)]);
}

/// Before: the store refused the key, `apply` failed (fatal to openraft) and, the applied
/// id unmoved, every restart applied the entry and failed again.
#[tokio::test]
async fn an_entry_the_store_refuses_is_skipped_and_counted_as_applied() {
    let dir = tempfile::tempdir().unwrap();
    let too_long = Request {
        writes: vec![
            Write::Put {
                key: b"fine".to_vec().into(),
                value: b"1".to_vec().into(),
                deadline_ms: None,
            },
            Write::Put {
                key: vec![b'k'; 65 * 1024].into(),
                value: b"v".to_vec().into(),
                deadline_ms: None,
            },
        ],
        staged_term: None,
    };
    {
        let mut sm = StateMachine::open(dir.path(), kv_store::Options::default()).unwrap();
        apply(
            &mut sm,
            vec![
                normal(1, Request::put(b"before".to_vec(), b"0".to_vec())),
                normal(2, too_long),
                normal(3, Request::put(b"after".to_vec(), b"3".to_vec())),
            ],
        )
        .await
        .unwrap();
    }
    let mut sm = StateMachine::open(dir.path(), kv_store::Options::default()).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 3)));
    let store = sm.reader().store();
    let mut keys: Vec<Vec<u8>> = store
        .keys()
        .filter(|k| !is_reserved(k))
        .map(|k| k.to_vec())
        .collect();
    keys.sort();
    // The refused entry is skipped whole: its other write too, as on every replica.
    assert_eq!(keys, [b"after".to_vec(), b"before".to_vec()]);
}
