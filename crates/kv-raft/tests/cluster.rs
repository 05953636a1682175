//! Three openraft nodes in one process on this crate's storage, joined by an in-memory
//! network that streams snapshots in chunks through the receiver's inbox: writes replicate
//! and apply everywhere; a node stopped while the leader snapshots and purges its log comes
//! back from its directory and catches up from a snapshot.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_raft::NodeAddr;
use kv_raft::{
    is_reserved, LogStore, Request, SnapshotData, SnapshotInbox, StateMachine, StoreReader,
    TypeConfig,
};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{Config, RaftNetworkV2};
use parking_lot::Mutex;

type Raft = openraft::Raft<TypeConfig, StateMachine>;
type Snapshot = kv_raft::Snapshot;

/// The nodes that are up, by id.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, (Raft, SnapshotInbox)>>>,
}

struct Connection {
    target: u64,
    router: Router,
}

impl Connection {
    fn node(&self) -> Result<(Raft, SnapshotInbox), Unreachable<TypeConfig>> {
        self.router
            .nodes
            .lock()
            .get(&self.target)
            .cloned()
            .ok_or_else(|| Unreachable::from_string(format!("node {} is down", self.target)))
    }
}

fn unreachable(e: impl ToString) -> Unreachable<TypeConfig> {
    Unreachable::from_string(e.to_string())
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &NodeAddr) -> Connection {
        Connection {
            target,
            router: self.clone(),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (raft, _) = self.node()?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| unreachable(e).into())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (raft, _) = self.node()?;
        raft.vote(rpc).await.map_err(|e| unreachable(e).into())
    }

    async fn full_snapshot(
        &mut self,
        vote: kv_raft::Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let (raft, inbox) = self.node()?;
        // As a network layer would: each file in chunks into the receiver's inbox.
        let data = &snapshot.snapshot;
        let mut writer = inbox.receive().map_err(unreachable)?;
        for dir in data.dirs() {
            writer.create_dir(dir).map_err(unreachable)?;
        }
        let mut buf = vec![0u8; 64 << 10];
        for (n, (path, len)) in data.files().enumerate() {
            let mut at = 0;
            writer.write(path, 0, &[]).map_err(unreachable)?;
            while at < len {
                let read = data.read_at(n, at, &mut buf).map_err(unreachable)?;
                writer.write(path, at, &buf[..read]).map_err(unreachable)?;
                at += read as u64;
            }
        }
        let received = writer.finish().map_err(unreachable)?;
        let snapshot = Snapshot {
            meta: snapshot.meta,
            snapshot: received,
        };
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| unreachable(e).into())
    }
}

async fn start(router: &Router, id: u64, dir: &Path) -> (Raft, StoreReader) {
    let config = Config {
        // Generous: the test machine is shared and debug builds are slow.
        heartbeat_interval: 100,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    let log = LogStore::open(dir).unwrap();
    let sm = StateMachine::open(dir, kv_store::Options::default()).unwrap();
    let (reader, inbox) = (sm.reader(), sm.inbox());
    let raft = Raft::new(
        id,
        Arc::new(config.validate().unwrap()),
        router.clone(),
        log,
        sm,
    )
    .await
    .unwrap();
    router.nodes.lock().insert(id, (raft.clone(), inbox));
    (raft, reader)
}

fn user_data(reader: &StoreReader) -> BTreeMap<Vec<u8>, Vec<u8>> {
    reader
        .store()
        .iter()
        .filter(|(k, _)| !is_reserved(k))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Writes through whichever node leads now, retrying while leadership moves.
async fn write(nodes: &BTreeMap<u64, (Raft, StoreReader)>, request: Request) -> u64 {
    for _ in 0..100 {
        let leader = nodes
            .values()
            .find_map(|(r, _)| r.metrics().borrow_watched().current_leader);
        if let Some((raft, _)) = leader.and_then(|id| nodes.get(&id)) {
            if let Ok(done) = raft.client_write(request.clone()).await {
                return done.log_id().index();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader took the write");
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_and_a_restarted_node_catches_up_from_a_snapshot() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        nodes.insert(id, start(&router, id, dirs[id as usize - 1].path()).await);
    }
    let members: BTreeMap<u64, NodeAddr> = (1..=3).map(|id| (id, NodeAddr::default())).collect();
    nodes[&1].0.initialize(members).await.unwrap();
    let m = nodes[&1]
        .0
        .wait(WAIT)
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .unwrap();
    let leader = m.current_leader.unwrap();

    let mut last = 0;
    for i in 0..50 {
        last = write(&nodes, Request::put(format!("k{i}"), format!("v{i}"))).await;
    }
    for (raft, _) in nodes.values() {
        raft.wait(WAIT)
            .applied_index_at_least(Some(last), "applied everywhere")
            .await
            .unwrap();
    }

    // Stop a follower; the leader goes on, snapshots and purges what the follower lacks.
    let leader = nodes[&leader]
        .0
        .metrics()
        .borrow_watched()
        .current_leader
        .unwrap_or(leader);
    let down = (1..=3).find(|id| *id != leader).unwrap();
    let (stopped, _) = nodes.remove(&down).unwrap();
    router.nodes.lock().remove(&down);
    stopped.shutdown().await.unwrap();
    drop(stopped);
    for i in 50..120 {
        write(&nodes, Request::put(format!("k{i}"), format!("v{i}"))).await;
    }
    // On every node that is up, so that whichever leads when the follower returns lacks
    // the entries it needs.
    let mut upto = u64::MAX;
    for (raft, _) in nodes.values() {
        raft.trigger().snapshot().await.unwrap();
        let m = raft
            .wait(WAIT)
            .metrics(|m| m.snapshot.is_some(), "a snapshot")
            .await
            .unwrap();
        let at = m.snapshot.unwrap().index();
        raft.trigger().purge_log(at).await.unwrap();
        raft.wait(WAIT)
            .metrics(
                |m| m.purged.as_ref().is_some_and(|p| p.index() >= at),
                "purged",
            )
            .await
            .unwrap();
        upto = upto.min(at);
    }

    // It comes back from its own directory and can only catch up from the snapshot.
    nodes.insert(
        down,
        start(&router, down, dirs[down as usize - 1].path()).await,
    );
    let last = write(&nodes, Request::put("after", "restart")).await;
    let (back, back_reader) = &nodes[&down];
    back.wait(WAIT)
        .applied_index_at_least(Some(last), "caught up")
        .await
        .unwrap();
    nodes[&leader]
        .0
        .wait(WAIT)
        .applied_index_at_least(Some(last), "applied")
        .await
        .unwrap();
    let leader_data = user_data(&nodes[&leader].1);
    assert_eq!(leader_data.len(), 121);
    assert_eq!(user_data(back_reader), leader_data);
    let m = back.metrics().borrow_watched().clone();
    assert!(
        m.snapshot.is_some_and(|s| s.index() >= upto),
        "the follower installed no snapshot"
    );

    for (raft, _) in nodes.values() {
        raft.shutdown().await.unwrap();
    }
}
