//! One node of a cluster: its identity in its directory, its storage, its Raft, and the
//! Raft service on its own address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::{Config, SnapshotPolicy};

use crate::error::{Error, Result};
use crate::files::replace_file;
use crate::log_store::{LogReader, LogStore};
use crate::network::Network;
use crate::service::{router, Raft};
use crate::state_machine::{StateMachine, StoreReader};
use crate::wire::MAX_PAYLOAD_ENTRIES;

/// The file of a node's directory that holds its id, written at its first start.
pub const NODE_ID_FILE: &str = "node-id";

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's id in the cluster (stored in its directory at the first start).
    pub id: u64,
    /// Where the Raft service listens.
    pub raft_bind: SocketAddr,
    /// The options of the state machine's store.
    pub store: kv_store::Options,
    /// Raft timing, in milliseconds: heartbeat, and the election timeout's range.
    pub heartbeat_ms: u64,
    /// The shortest election timeout.
    pub election_min_ms: u64,
    /// The longest election timeout.
    pub election_max_ms: u64,
    /// The cluster secret: sent with every Raft request, and required of every request
    /// received. `None` accepts anyone who can reach `raft_bind` (for a loopback address).
    pub cluster_secret: Option<String>,
    /// A snapshot is taken once the Raft log holds this many bytes, and at least as many
    /// as the store's live data (checked every second); the log before it is then purged.
    /// Each snapshot copies the whole store, so this bounds what snapshots add to the
    /// bytes written at about as much again as the log, and the log's disk space at about
    /// twice this or the store's size.
    pub snapshot_log_bytes: u64,
}

/// The default [`NodeOptions::snapshot_log_bytes`].
pub const SNAPSHOT_LOG_BYTES: u64 = 256 << 20;

impl NodeOptions {
    /// Defaults for node `id` on `raft_bind`: heartbeats every 100 ms, elections after
    /// 400-800 ms without one (so a failover takes about a second).
    pub fn new(id: u64, raft_bind: SocketAddr) -> NodeOptions {
        NodeOptions {
            id,
            raft_bind,
            store: kv_store::Options::default(),
            heartbeat_ms: 100,
            election_min_ms: 400,
            election_max_ms: 800,
            cluster_secret: None,
            snapshot_log_bytes: SNAPSHOT_LOG_BYTES,
        }
    }
}

/// A running node.
#[derive(Clone)]
pub struct Node {
    id: u64,
    raft: Raft,
    reader: StoreReader,
    raft_addr: SocketAddr,
    server: Arc<tokio::task::JoinHandle<()>>,
    snapshots: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("raft_addr", &self.raft_addr)
            .finish_non_exhaustive()
    }
}

/// Checks the id stored in `dir` against `id`, storing it if there is none.
///
/// # Errors
///
/// [`Error::NodeId`] when `dir` belongs to another node; [`Error::Io`].
pub fn claim_node_id(dir: &Path, id: u64) -> Result<()> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: u64 = text.trim().parse().map_err(|_| {
                Error::Corrupt(format!("{} holds {text:?}, not a node id", path.display()))
            })?;
            if stored == id {
                Ok(())
            } else {
                Err(Error::NodeId {
                    dir: dir.to_path_buf(),
                    stored,
                    given: id,
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::files::create_dir_durably(dir)?;
            replace_file(dir, NODE_ID_FILE, format!("{id}\n").as_bytes())
        }
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The id stored in `dir`, if it is a node's directory.
///
/// # Errors
///
/// [`Error::Io`] when the file exists but cannot be read.
pub fn stored_node_id(dir: &Path) -> Result<Option<u64>> {
    let path: PathBuf = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

impl Node {
    /// Starts node `options.id` on `dir` (claiming the directory for it), its Raft service
    /// listening on `options.raft_bind`. Call from inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::NodeId`] for a directory of another node; the storage's errors;
    /// [`Error::Io`] when the address cannot be bound.
    pub async fn start(dir: &Path, options: NodeOptions) -> Result<Node> {
        claim_node_id(dir, options.id)?;
        let config = Config {
            cluster_name: "kv".into(),
            heartbeat_interval: options.heartbeat_ms,
            election_timeout_min: options.election_min_ms,
            election_timeout_max: options.election_max_ms,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            // By size, not by count (`snapshot_when_log_outgrows`): openraft's default, a
            // snapshot every 5,000 entries, copies the whole store that often, which for a
            // store of a million keys is a gigabyte written per 5,000 small writes.
            snapshot_policy: SnapshotPolicy::Never,
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| Error::Raft(format!("Raft settings: {e}")))?,
        );
        let listener = tokio::net::TcpListener::bind(options.raft_bind)
            .await
            .map_err(|e| Error::io("listen on", options.raft_bind.to_string(), e))?;
        let raft_addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the address of", options.raft_bind.to_string(), e))?;
        let log = LogStore::open(dir)?;
        let log_size = log.reader();
        let sm = StateMachine::open(dir, options.store.clone())?;
        let (reader, inbox) = (sm.reader(), sm.inbox());
        let secret = options.cluster_secret.as_deref();
        let raft = Raft::new(options.id, config, Network::new(secret), log, sm)
            .await
            .map_err(|e| Error::Raft(format!("Raft did not start: {e}")))?;
        let app = router(options.id, secret, raft.clone(), inbox);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let snapshots = tokio::spawn(snapshot_when_log_outgrows(
            raft.clone(),
            log_size,
            reader.clone(),
            options.snapshot_log_bytes,
        ));
        Ok(Node {
            id: options.id,
            raft,
            reader,
            raft_addr,
            server: Arc::new(server),
            snapshots: Arc::new(snapshots),
        })
    }

    /// The node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its Raft.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Reads of its state machine's store.
    pub fn reader(&self) -> &StoreReader {
        &self.reader
    }

    /// Where its Raft service listens.
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_addr
    }

    /// Stops Raft and the service.
    ///
    /// # Errors
    ///
    /// When Raft's tasks failed.
    pub async fn shutdown(&self) -> Result<()> {
        self.server.abort();
        self.snapshots.abort();
        self.raft
            .shutdown()
            .await
            .map_err(|e| Error::Raft(format!("Raft did not stop cleanly: {e}")))
    }
}

/// Asks `raft` for a snapshot whenever its log holds at least `floor` bytes and at least as
/// many as the store's live data (see [`NodeOptions::snapshot_log_bytes`]).
async fn snapshot_when_log_outgrows(raft: Raft, log: LogReader, store: StoreReader, floor: u64) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (applied, before) = {
            // Two indexes read in place: a clone would copy the whole metrics every tick.
            let m = raft.metrics();
            let m = m.borrow_watched();
            (
                m.last_applied.map(|a| a.index()),
                m.snapshot.map(|s| s.index()),
            )
        };
        // Nothing applied since the last snapshot: another would copy the same state. (The
        // log it leaves, the entries openraft keeps and the active segment, can stay past
        // the floor, and an idle node would copy its store once a minute.)
        if applied == before {
            continue;
        }
        // The floor first: the store's figures cost more than the log's size.
        let bytes = log.log_bytes();
        if bytes >= floor && bytes >= store.store().stats().live_bytes {
            // Built and purged by openraft. Waited for, so that a build longer than a tick
            // is not asked for again; a failure (Raft stopping) ends nothing here: the task
            // is aborted with the node.
            let _ = raft.trigger().snapshot().await;
            let _ = raft
                .wait(Some(std::time::Duration::from_secs(60)))
                .metrics(
                    |m| m.snapshot.map(|s| s.index()) > before,
                    "a snapshot newer than the last",
                )
                .await;
        }
    }
}
