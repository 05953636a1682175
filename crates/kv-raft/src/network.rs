//! The sending side of the network between nodes: openraft's `RaftNetworkV2` over HTTP/1.1
//! with [reqwest](https://docs.rs/reqwest) (the receiving side is [`crate::service`]).
//!
//! Why HTTP with reqwest and axum rather than gRPC (tonic): openraft's messages are serde
//! types already, so postcard bodies need no schema or `protoc` build step; both crates are
//! the tokio project's own or built on its hyper, widely used and kept; HTTP gives per-request
//! timeouts, body limits and connection pooling without framing of our own.
//!
//! - **One client per target**: openraft runs one replication task per follower, each with
//!   its own [`Connection`] and its own connection pool, so a slow or dead node only holds
//!   up its own task.
//! - **Timeouts**: every request is bounded by openraft's `hard_ttl` for it (derived from
//!   the heartbeat and election timeouts), and connecting by [`CONNECT_TIMEOUT`]; an
//!   `append` is given time for its size as well ([`wire::APPEND_BYTES_PER_SECOND`]).
//! - **Retries with backoff**: a failed request is reported as `Unreachable`, and openraft
//!   retries after [`Connection::backoff`]'s delays (50 ms doubling to 1 s).
//! - **Bounded messages**: an `append` carries at most [`wire::MAX_APPEND_ENTRIES_BYTES`]
//!   of entries (or one larger entry); the rest of openraft's batch goes in the next one
//!   (a partial success). A body over [`MAX_MESSAGE_BYTES`] is neither sent nor read.
//! - **Snapshots** go as chunks of [`SNAPSHOT_CHUNK_BYTES`] read from the snapshot's files,
//!   each one request, never one buffer; a cancelled replication stops between chunks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::RaftNetworkV2;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::snapshot::SnapshotData;
use crate::state_machine::Snapshot;
use crate::types::{Entry, NodeAddr, TypeConfig, Vote};
use crate::wire::{
    self, Answer, SnapshotBegin, SnapshotChunk, SnapshotFinish, MAX_MESSAGE_BYTES,
    SNAPSHOT_CHUNK_BYTES,
};

/// How long connecting to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Makes a [`Connection`] per target node.
#[derive(Clone, Default)]
pub struct Network {
    secret: Option<Arc<str>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("Network")
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Network {
    /// A network whose requests carry `secret` (the cluster secret every node of the
    /// cluster checks), or none.
    pub fn new(secret: Option<&str>) -> Network {
        Network {
            secret: secret.map(Arc::from),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &NodeAddr) -> Connection {
        Connection::new(target, &node.raft, self.secret.clone())
    }
}

/// The connection to one node.
pub struct Connection {
    target: u64,
    base: String,
    secret: Option<Arc<str>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn unreachable(target: u64, what: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::from_string(format!("node {target}: {what}"))
}

impl Connection {
    fn new(target: u64, addr: &str, secret: Option<Arc<str>>) -> Connection {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(2)
            .build()
            .unwrap_or_default();
        Connection {
            target,
            base: format!("http://{addr}"),
            secret,
            client,
        }
    }

    /// Posts `body` to `route` and decodes the answer, within `timeout`.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        route: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        self.call_within(route, body, |_| timeout).await
    }

    /// Posts `body` to `route` and decodes the answer, within `timeout` of the body's
    /// length.
    async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        route: &str,
        body: &Req,
        timeout: impl FnOnce(usize) -> Duration,
    ) -> Result<Resp, Unreachable<TypeConfig>> {
        let bytes = postcard::to_stdvec(body).map_err(|e| unreachable(self.target, e))?;
        let timeout = timeout(bytes.len());
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(unreachable(
                self.target,
                format!(
                    "a message of {} bytes is over the limit of {MAX_MESSAGE_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let mut post = self
            .client
            .post(format!("{}{route}", self.base))
            .timeout(timeout)
            .header(wire::TARGET_HEADER, self.target);
        if let Some(secret) = &self.secret {
            post = post.header(wire::SECRET_HEADER, &**secret);
        }
        let mut response = post
            .body(bytes)
            .send()
            .await
            .map_err(|e| unreachable(self.target, e))?;
        if !response.status().is_success() {
            return Err(unreachable(
                self.target,
                format!("{route} answered {}", response.status()),
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_MESSAGE_BYTES as u64)
        {
            return Err(unreachable(self.target, "an answer over the message limit"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(self.target, e))?
        {
            if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
                return Err(unreachable(self.target, "an answer over the message limit"));
            }
            body.extend_from_slice(&chunk);
        }
        let answer: Answer<Resp> =
            postcard::from_bytes(&body).map_err(|e| unreachable(self.target, e))?;
        answer.map_err(|e| unreachable(self.target, e))
    }

    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        option: &RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, Unreachable<TypeConfig>> {
        let data: &SnapshotData = &snapshot.snapshot;
        let timeout = option.hard_ttl().max(Duration::from_secs(5));
        let begin = SnapshotBegin {
            dirs: data
                .dirs()
                .map(|d| d.to_string_lossy().into_owned())
                .collect(),
        };
        let transfer: u64 = self.call(wire::SNAPSHOT_BEGIN, &begin, timeout).await?;
        let files: Vec<(String, u64)> = data
            .files()
            .map(|(p, len)| (p.to_string_lossy().into_owned(), len))
            .collect();
        for (n, (path, len)) in files.iter().cloned().enumerate() {
            let mut at = 0;
            loop {
                // Read off the runtime's threads: a chunk is a file read.
                let (file_data, offset) = (data.clone(), at);
                let bytes = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0; SNAPSHOT_CHUNK_BYTES];
                    let read = file_data.read_at(n, offset, &mut buf)?;
                    buf.truncate(read);
                    Ok::<_, std::io::Error>(buf)
                })
                .await
                .map_err(|e| unreachable(self.target, e))?
                .map_err(|e| unreachable(self.target, e))?;
                if bytes.is_empty() && at < len {
                    return Err(unreachable(self.target, "a snapshot file ended early"));
                }
                let read = bytes.len() as u64;
                let chunk = SnapshotChunk {
                    transfer,
                    path: path.clone(),
                    offset: at,
                    bytes,
                };
                let () = self.call(wire::SNAPSHOT_CHUNK, &chunk, timeout).await?;
                at += read;
                if at >= len {
                    break;
                }
            }
        }
        let finish = SnapshotFinish {
            transfer,
            vote,
            meta: snapshot.meta,
            files,
        };
        // Installing copies the snapshot into a new store: give it time.
        self.call(wire::SNAPSHOT_FINISH, &finish, timeout * 10)
            .await
    }
}

/// How many of `entries`, from the first, fit [`wire::MAX_APPEND_ENTRIES_BYTES`] encoded:
/// always at least one (an entry is at most [`wire::MAX_ENTRY_BYTES`], which the message
/// limit allows).
fn byte_bounded_prefix(entries: &[Entry]) -> usize {
    let mut total = 0;
    for (n, entry) in entries.iter().enumerate() {
        // Measured without encoding: no copy of a large value.
        total += postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX);
        if n > 0 && total > wire::MAX_APPEND_ENTRIES_BYTES {
            return n;
        }
    }
    entries.len()
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut rpc = rpc;
        let sent = byte_bounded_prefix(&rpc.entries);
        let cut = sent < rpc.entries.len();
        rpc.entries.truncate(sent);
        let last = rpc.entries.last().map(|e| e.log_id);
        let hard_ttl = option.hard_ttl();
        let response: AppendEntriesResponse<TypeConfig> = self
            .call_within(wire::APPEND, &rpc, |len| {
                wire::append_timeout(hard_ttl, len)
            })
            .await?;
        // The follower took only the prefix: openraft sends the rest next.
        Ok(match response {
            AppendEntriesResponse::Success if cut => AppendEntriesResponse::PartialSuccess(last),
            other => other,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call(wire::VOTE, &rpc, option.hard_ttl()).await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = self.send_snapshot(vote, snapshot, &option) => Ok(sent?),
        }
    }

    fn backoff(&self) -> Option<Backoff> {
        // 50 ms, doubling, at most 1 s between tries of an unreachable node.
        Some(Backoff::new(std::iter::successors(
            Some(Duration::from_millis(50)),
            |d| Some((*d * 2).min(Duration::from_secs(1))),
        )))
    }
}

#[cfg(test)]
mod tests {
    use openraft::vote::RaftLeaderIdExt;
    use openraft::EntryPayload;

    use super::*;
    use crate::types::{LogId, Request};

    fn entry(index: u64, value_len: usize) -> Entry {
        Entry {
            log_id: LogId::new(
                <<TypeConfig as openraft::RaftTypeConfig>::LeaderId as RaftLeaderIdExt>::new_committed(1, 1),
                index,
            ),
            payload: EntryPayload::Normal(Request::put("k", vec![7; value_len])),
        }
    }

    #[test]
    fn an_append_carries_entries_up_to_the_byte_bound_and_always_one() {
        let mib = 1 << 20;
        assert_eq!(byte_bounded_prefix(&[]), 0);
        let small: Vec<Entry> = (1..=8).map(|i| entry(i, 100)).collect();
        assert_eq!(byte_bounded_prefix(&small), 8);
        let three: Vec<Entry> = (1..=4).map(|i| entry(i, 3 * mib)).collect();
        assert_eq!(byte_bounded_prefix(&three), 2);
        let huge: Vec<Entry> = (1..=2).map(|i| entry(i, 20 * mib)).collect();
        assert_eq!(byte_bounded_prefix(&huge), 1);
    }

    #[test]
    fn an_append_is_given_time_for_its_size() {
        let ttl = Duration::from_millis(100);
        assert_eq!(wire::append_timeout(ttl, 0), Duration::from_secs(1));
        assert_eq!(
            wire::append_timeout(ttl, 50_000_000),
            Duration::from_secs(2)
        );
        let long = Duration::from_secs(5);
        assert_eq!(wire::append_timeout(long, 10), long);
    }
}
