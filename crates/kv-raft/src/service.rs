//! The receiving side of the network between nodes: an [axum](https://docs.rs/axum) router
//! handing each message to the local Raft (see [`crate::network`] for the sending side).
//!
//! Every request must carry the cluster secret (when the node has one) and the id of the
//! node it is meant for; both headers are checked by a middleware that runs before a
//! handler reads the body, so a stranger makes the node read nothing. Each route has its
//! own body limit (a vote is tiny, a snapshot chunk is one chunk, only `append` may take
//! [`MAX_MESSAGE_BYTES`]), refused before it is read whole. A snapshot
//! arrives as chunks written into the state machine's inbox; one transfer is kept at a
//! time (a leader sends one snapshot at a time to a node: a new one drops an older,
//! unfinished one, whose files go with it).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::snapshot::SnapshotWriter;
use crate::state_machine::{Snapshot, SnapshotInbox};
use crate::types::TypeConfig;
use crate::wire::{
    self, Answer, SnapshotBegin, SnapshotChunk, SnapshotFinish, MAX_MESSAGE_BYTES,
    MAX_SNAPSHOT_CHUNK_MESSAGE_BYTES, MAX_SNAPSHOT_CONTROL_BYTES, MAX_VOTE_BYTES,
};

/// The Raft instance of this crate's storage.
pub type Raft = openraft::Raft<TypeConfig, crate::StateMachine>;

struct Service {
    /// This node's id: requests meant for another are refused.
    id: u64,
    /// The cluster secret every request must carry, if the cluster has one.
    secret: Option<String>,
    raft: Raft,
    inbox: SnapshotInbox,
    /// The snapshot being received, and its number.
    transfer: Mutex<Option<(u64, Arc<Mutex<SnapshotWriter>>)>>,
    next_transfer: AtomicU64,
}

type Shared = State<Arc<Service>>;

/// The routes of the Raft service of node `id`'s `raft`, receiving snapshots into `inbox`,
/// answering only requests that carry `secret` (when given) and name `id` as their target.
pub fn router(id: u64, secret: Option<&str>, raft: Raft, inbox: SnapshotInbox) -> Router {
    let service = Arc::new(Service {
        id,
        secret: secret.map(str::to_owned),
        raft,
        inbox,
        transfer: Mutex::new(None),
        next_transfer: AtomicU64::new(0),
    });
    let limit = DefaultBodyLimit::max;
    Router::new()
        .route(wire::APPEND, post(append).layer(limit(MAX_MESSAGE_BYTES)))
        .route(wire::VOTE, post(vote).layer(limit(MAX_VOTE_BYTES)))
        .route(
            wire::SNAPSHOT_BEGIN,
            post(snapshot_begin).layer(limit(MAX_SNAPSHOT_CONTROL_BYTES)),
        )
        .route(
            wire::SNAPSHOT_CHUNK,
            post(snapshot_chunk).layer(limit(MAX_SNAPSHOT_CHUNK_MESSAGE_BYTES)),
        )
        .route(
            wire::SNAPSHOT_FINISH,
            post(snapshot_finish).layer(limit(MAX_SNAPSHOT_CONTROL_BYTES)),
        )
        // Outside the routes: runs before any handler extracts (reads) the body.
        .layer(from_fn_with_state(Arc::clone(&service), admit))
        .with_state(service)
}

/// Lets through only a request with the cluster's secret, meant for this node.
async fn admit(State(s): Shared, request: Request, next: Next) -> Response {
    if let Some(secret) = &s.secret {
        let given = request.headers().get(wire::SECRET_HEADER);
        if !given.is_some_and(|g| same_secret(g.as_bytes(), secret.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                "a request without this cluster's secret",
            )
                .into_response();
        }
    }
    let target = request
        .headers()
        .get(wire::TARGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if target != Some(s.id) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "a request for node {target:?} reached node {}: the membership holds a wrong address",
                s.id
            ),
        )
            .into_response();
    }
    next.run(request).await
}

/// Compares two secrets in time that does not depend on where they differ, so that
/// timing does not tell a guesser how much of a guess was right.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let mut differ = u8::from(given.len() != secret.len());
    for (i, b) in secret.iter().enumerate() {
        differ |= b ^ given.get(i).copied().unwrap_or(!b);
    }
    differ == 0
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Answer<T> {
    postcard::from_bytes(body).map_err(|e| format!("a message that does not decode: {e}"))
}

fn answer<T: Serialize>(answer: Answer<T>) -> Vec<u8> {
    postcard::to_stdvec(&answer).unwrap_or_else(|e| {
        postcard::to_stdvec(&Answer::<()>::Err(e.to_string())).unwrap_or_default()
    })
}

async fn append(State(s): Shared, body: Bytes) -> Vec<u8> {
    let done = async {
        let rpc = decode(&body)?;
        s.raft.append_entries(rpc).await.map_err(|e| e.to_string())
    };
    answer(done.await)
}

async fn vote(State(s): Shared, body: Bytes) -> Vec<u8> {
    let done = async {
        let rpc = decode(&body)?;
        s.raft.vote(rpc).await.map_err(|e| e.to_string())
    };
    answer(done.await)
}

async fn snapshot_begin(State(s): Shared, body: Bytes) -> Vec<u8> {
    let done = async {
        let begin: SnapshotBegin = decode(&body)?;
        let inbox = s.inbox.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let mut writer = inbox.receive()?;
            for dir in &begin.dirs {
                writer.create_dir(Path::new(dir))?;
            }
            Ok::<_, crate::Error>(writer)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let id = s.next_transfer.fetch_add(1, Ordering::Relaxed) + 1;
        // Replaces (and so removes) an unfinished transfer.
        let old = s
            .transfer
            .lock()
            .replace((id, Arc::new(Mutex::new(writer))));
        if let Some((_, old)) = old {
            drop(tokio::task::spawn_blocking(move || drop(old)));
        }
        Ok(id)
    };
    answer(done.await)
}

fn transfer(s: &Service, id: u64) -> Answer<Arc<Mutex<SnapshotWriter>>> {
    match &*s.transfer.lock() {
        Some((current, writer)) if *current == id => Ok(Arc::clone(writer)),
        _ => Err(format!("no snapshot transfer {id} in progress")),
    }
}

async fn snapshot_chunk(State(s): Shared, body: Bytes) -> Vec<u8> {
    let done = async {
        let chunk: SnapshotChunk = decode(&body)?;
        let writer = transfer(&s, chunk.transfer)?;
        tokio::task::spawn_blocking(move || {
            writer
                .lock()
                .write(Path::new(&chunk.path), chunk.offset, &chunk.bytes)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    };
    answer(done.await)
}

async fn snapshot_finish(State(s): Shared, body: Bytes) -> Vec<u8> {
    let done = async {
        let finish: SnapshotFinish = decode(&body)?;
        // Checked and taken under one hold of the lock: a transfer begun meanwhile is not
        // this one, and must not be installed with this one's metadata.
        let (_, writer) = s
            .transfer
            .lock()
            .take_if(|(id, _)| *id == finish.transfer)
            .ok_or_else(|| format!("no snapshot transfer {} in progress", finish.transfer))?;
        let writer = Arc::try_unwrap(writer)
            .map_err(|_| "a chunk of the transfer is still being written".to_string())?
            .into_inner();
        let files = finish.files;
        let data = tokio::task::spawn_blocking(move || {
            writer.finish_expecting(files.iter().map(|(path, len)| (Path::new(path), *len)))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let snapshot = Snapshot {
            meta: finish.meta,
            snapshot: data,
        };
        s.raft
            .install_full_snapshot(finish.vote, snapshot)
            .await
            .map_err(|e| e.to_string())
    };
    answer(done.await)
}
