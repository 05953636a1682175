//! A replicated node's Redis-protocol server: the same commands, their writes through
//! Raft ([`kv_raft::Node`]). Beside the single-node server (`server.rs`), which it leaves
//! as it is.
//!
//! - **Writes** run on the leader only, staged one at a time (a lock): once this node has
//!   applied every entry committed before (`ensure_linearizable`, with the leader's lease,
//!   or a ReadIndex when it is stale), the command (or a whole `MULTI`/`EXEC` block) runs
//!   against a [`Staged`] view of the store with the writes proposed before it and not yet
//!   applied over it (`replicated/in_flight.rs`); the final state of each key it wrote is
//!   proposed as one entry and the lock let go; the reply goes out once that entry is
//!   committed on a majority's durable logs and applied here. So read-modify-writes and
//!   blocks are atomic and each one entry, the time-dependent decisions are the leader's
//!   (see `staged.rs`), and the writes of many connections replicate and sync together:
//!   measured in release builds on a shared 2-core machine, durable SETs from 50
//!   connections went from 1,080/s, one Raft round each, to 7,100-8,200/s.
//! - **Forwarding**: a follower sends a write, a linearizable read or a whole `MULTI`/`EXEC`
//!   block to the leader over a link of the client's connection (the Redis protocol, to the
//!   leader's client address from the membership; `replicated/forward.rs`) and answers with
//!   the leader's reply. The link is marked (`KVRAFT FORWARDED`) and the leader never
//!   forwards its requests again, so a request cannot circle between two nodes that each
//!   believe the other leads; a node that cannot forward answers
//!   `-READONLY ... the leader is node N at ADDR` or `-CLUSTERDOWN ...` (no leader known).
//!   A request that was proposed here is never forwarded: it may still commit.
//! - **Bounded waits**: a write waits at most [`ServerOptions::commit_timeout`] (for the
//!   write lock, for the leader's confirmation and for a majority to take its entry), and a
//!   linearizable read as long for its ReadIndex; past it the client gets `-CLUSTERDOWN`,
//!   which for a write already proposed says that it may or may not have been applied. Such a
//!   proposal stays in flight until Raft settles it, so later writes are staged over it (and
//!   are lost with it if it is).
//! - **Reads** are linearizable (a ReadIndex first, on the leader; a follower forwards
//!   them); after `READONLY`, a connection reads this node's applied state as it is
//!   (possibly stale), on any node; `READWRITE` ends that.
//! - **Expiry**: a replica never decides by its own clock what an entry does; entries hold
//!   only unconditional puts with absolute deadlines and deletes. Each store's own
//!   background sweeper may remove keys whose deadline has passed, which every read hides
//!   already, so what any replica answers does not depend on it, and a later put of the
//!   key replaces whatever state it left.
//! - `INFO replication` shows the role, the leader, the term, the commit and applied
//!   indexes and the membership (a `membership:` line, and one `member_ID:kind=voter|learner,
//!   client=ADDR,raft=ADDR` line a member); `KVRAFT ID` answers the node's id and addresses,
//!   `KVRAFT INIT id raft client ...` forms the cluster (for `kv cluster init`), and `KVRAFT
//!   LEARNER id raft client`, `KVRAFT VOTER id` and `KVRAFT REMOVE id` change the membership
//!   (for `kv cluster add` and `remove`; each answers the log index of its entry, and a
//!   follower forwards them to the leader as it does writes). `REMOVE` refuses the last
//!   voter. A request on a node of no cluster is answered that it is not initialized, with
//!   the commands that make it a member.
//! - `WATCH` is refused on a replicated node.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use kv_raft::openraft::async_runtime::watch::WatchReceiver;
use kv_raft::openraft::error::ClientWriteError;
use kv_raft::openraft::{ChangeMembers, ReadPolicy, ServerState};
use kv_raft::{Node, NodeAddr, Request, Settling};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::admission::{admit, Admission};
use crate::block::{self, Role};
use crate::codec::{encode, Decoder};
use crate::command::{is, Command};
use crate::error::Result;
use crate::execute::execute;
use crate::reply::Reply;
use crate::server::{accept_until, listen, off_the_runtime, ClientSlot, ServerOptions};
use crate::session::{info_wants, Session, Shared};
use crate::staged::Staged;

mod forward;
mod in_flight;

pub(crate) use in_flight::{InFlight, Overlay};

/// What every connection of a replicated server shares.
struct Replica {
    node: Node,
    /// Held while a write is staged and proposed: the leader stages its writes one at a
    /// time, each over the ones proposed before it ([`InFlight`]).
    writing: tokio::sync::Mutex<()>,
    /// The leader's writes proposed and not yet settled.
    in_flight: Arc<InFlight>,
    /// How long a request waits for Raft ([`ServerOptions::commit_timeout`]).
    commit_timeout: Duration,
    /// The client address this server tells others (`KVRAFT ID`).
    client_addr: String,
}

/// A Redis-protocol server whose writes go through Raft. See the module docs.
pub struct ReplicatedServer {
    listener: TcpListener,
    shared: Arc<Shared>,
    replica: Arc<Replica>,
}

impl std::fmt::Debug for ReplicatedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedServer")
            .field("node", &self.replica.node)
            .finish_non_exhaustive()
    }
}

impl ReplicatedServer {
    /// Listens on `options.bind` for requests to `node`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`](crate::Error::Bind) if the address cannot be bound.
    pub async fn bind(node: Node, options: ServerOptions) -> Result<ReplicatedServer> {
        let listener = listen(options.bind).await?;
        let local = listener.local_addr()?;
        let port = local.port();
        let store = node.reader().store();
        Ok(ReplicatedServer {
            listener,
            shared: Arc::new(Shared::new(store, options.clone(), port, 0)),
            replica: Arc::new(Replica {
                node,
                writing: tokio::sync::Mutex::new(()),
                in_flight: Arc::default(),
                commit_timeout: options.commit_timeout,
                client_addr: local.to_string(),
            }),
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then stops accepting and lets each connection
    /// finish the request it is answering. Raft and the store are the caller's to stop.
    ///
    /// # Errors
    ///
    /// None yet: accept errors are retried, a connection's errors close it only.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let replica = self.replica;
        accept_until(
            self.listener,
            &self.shared,
            shutdown,
            |stream, addr, slot, stopped| serve(stream, addr, slot, Arc::clone(&replica), stopped),
        )
        .await;
        Ok(())
    }
}

async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    slot: ClientSlot,
    replica: Arc<Replica>,
    mut stopped: watch::Receiver<bool>,
) {
    let shared = Arc::clone(slot.shared());
    let _slot = slot;
    let _ = stream.set_nodelay(true);
    let mut decoder = Decoder::new(shared.options.limits);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut conn = Connection {
        session: Session::new(Arc::clone(&shared), Some(addr)),
        shared: Arc::clone(&shared),
        replica,
        readonly: false,
        queued: None,
        queued_raw: Vec::new(),
        queue_failed: false,
        forwarded: false,
        link: None,
    };
    'serving: loop {
        loop {
            decoder.set_authenticated(conn.session.is_authenticated());
            match decoder.decode(&mut input) {
                Ok(Some(request)) => {
                    let reply = conn.handle(&request).await;
                    encode(&reply, conn.session.protocol(), &mut output);
                    if conn.session.is_closing() {
                        let _ = stream.write_all(&output).await;
                        break 'serving;
                    }
                    if output.len() > 64 * 1024 {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    encode(
                        &Reply::error(format!("ERR {error}")),
                        conn.session.protocol(),
                        &mut output,
                    );
                    let _ = stream.write_all(&output).await;
                    break 'serving;
                }
            }
        }
        if !output.is_empty() {
            let written =
                tokio::time::timeout(shared.options.write_timeout, stream.write_all(&output)).await;
            if !matches!(written, Ok(Ok(()))) || output.len() > shared.options.output_limit {
                break;
            }
            output.clear();
        }
        if *stopped.borrow() {
            break;
        }
        let read = async {
            match shared.options.timeout {
                Some(limit) => tokio::time::timeout(limit, stream.read_buf(&mut input))
                    .await
                    .unwrap_or(Ok(0)),
                None => stream.read_buf(&mut input).await,
            }
        };
        tokio::select! {
            read = read => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = stopped.wait_for(|stop| *stop) => break,
        }
    }
}

/// One connection of a replicated server.
struct Connection {
    /// Its connection state and the connection and server commands.
    session: Session,
    /// What the server's connections share (its options).
    shared: Arc<Shared>,
    replica: Arc<Replica>,
    /// `READONLY`: reads see this node's applied state, possibly stale.
    readonly: bool,
    /// An open `MULTI` block, and its data commands' requests as sent (to forward).
    queued: Option<Vec<Queued>>,
    queued_raw: Vec<Vec<Bytes>>,
    queue_failed: bool,
    /// `KVRAFT FORWARDED`: a follower's link to this node; never forwarded again, so a
    /// request cannot go round between nodes that each believe the other leads.
    forwarded: bool,
    /// This connection's link to the leader, for the requests it forwards.
    link: Option<(String, forward::Link)>,
}

/// A request queued inside `MULTI`, answered in its place in `EXEC`'s reply, as Redis does.
enum Queued {
    /// A command that reads or writes keys: all of them run as one step, on the leader.
    Data(Command),
    /// `INFO`: this node's, with its replication section.
    Info(Vec<Bytes>),
    /// A connection or server command (`PING`, `ECHO`, `CLIENT` ...): the session answers
    /// it here, whichever node runs the data commands.
    Session(Vec<Bytes>),
    /// A command refused for its own arguments (an option, an integer): its error, while
    /// the others run.
    Refused(Reply),
    /// `READONLY` (`true`) or `READWRITE`: the connection's mode from the next block on.
    ReadOnly(bool),
}

/// A membership change `KVRAFT` asks of Raft.
enum Change {
    /// `LEARNER`: add a node that replicates without voting.
    Learner(u64, NodeAddr),
    /// `VOTER` and `REMOVE`.
    Members(ChangeMembers<u64, NodeAddr>),
}

/// A member's addresses as `KVRAFT INIT` and `KVRAFT LEARNER` take them.
fn node_addr(raft: &[u8], client: &[u8]) -> NodeAddr {
    NodeAddr {
        raft: String::from_utf8_lossy(raft).into_owned(),
        client: String::from_utf8_lossy(client).into_owned(),
    }
}

/// What Raft answers for an entry proposed.
type ClientWriteResult = kv_raft::openraft::raft::ClientWriteResult<kv_raft::TypeConfig>;

/// A write staged: answered without an entry, refused as a whole, or its entry proposed and
/// its outcome to come (`Err` if Raft dropped it unanswered, stopping).
enum Proposed {
    Answered(Vec<Reply>),
    Failed(Reply),
    InFlight(
        Vec<Reply>,
        tokio::sync::oneshot::Receiver<ClientWriteResult>,
    ),
}

/// How a write ended on this node.
enum Written {
    /// Each command's reply.
    Replies(Vec<Reply>),
    /// The commands' entry as a whole was refused, lost, or its fate is unknown: one reply
    /// for all of them (a block's `EXEC` answers it alone, not inside an array).
    Failed(Reply),
}

/// Why a request was not answered here.
enum Elsewhere {
    /// This node does not lead; node N does: forward the request there.
    Leader(u64),
    /// The answer (an error).
    Reply(Reply),
}

/// The answer to `SAVE` and `BGREWRITEAOF`.
const NO_SAVE: &str = "ERR SAVE and BGREWRITEAOF are not supported on a replicated node: the Raft log is synced at every write";

/// What a follower that cannot forward a linearizable read says.
const LINEARIZABLE: &str =
    "linearizable reads go to the leader (or send READONLY to read this node's possibly stale copy)";

/// Whether a command reads or writes keys: `Some(true)` for a write.
fn data_role(command: &Command) -> Option<bool> {
    match block::role(command) {
        Some(role) => Some(role == Role::Writes),
        None => match command {
            Command::Flush => Some(true),
            Command::Keys(_) | Command::Scan { .. } | Command::DbSize | Command::RandomKey => {
                Some(false)
            }
            _ => None,
        },
    }
}

impl Connection {
    async fn handle(&mut self, args: &[Bytes]) -> Reply {
        // Every request once, as on a single node: whether it is answered here, forwarded,
        // queued in a block or handed to the session.
        self.session.count_command();
        let name = &args[0];
        if is(name, "readonly") || is(name, "readwrite") || is(name, "kvraft") {
            if !self.session.is_authenticated() {
                return Reply::error("NOAUTH Authentication required.");
            }
            let readonly = is(name, "readonly");
            if let Some(queued) = &mut self.queued {
                // Inside a block: queued like any command, so that EXEC answers one reply
                // for each (a client counts them); the cluster's own commands abort it.
                if is(name, "kvraft") {
                    self.queue_failed = true;
                    return Reply::error("ERR Command not allowed inside a transaction");
                }
                queued.push(Queued::ReadOnly(readonly));
                return Reply::Simple("QUEUED");
            }
            if is(name, "kvraft") {
                return self.kvraft(args).await;
            }
            self.readonly = readonly;
            return Reply::OK;
        }
        let authenticated = self.session.is_authenticated();
        let (command, spec) = match admit(args, authenticated, self.queued.is_some()) {
            // Before authentication, what may run (AUTH, HELLO, QUIT) is the session's.
            Admission::Run(..) if !authenticated => return self.session.handle_uncounted(args),
            Admission::Run(command, spec) => (command, spec),
            Admission::Refuse { reply, aborts } => {
                self.queue_failed |= aborts;
                return reply;
            }
            Admission::Queue(command) => {
                let entry = match command {
                    Err(error) => Queued::Refused(error.into()),
                    Ok(Command::Info(sections)) => Queued::Info(sections),
                    Ok(Command::RewriteLog) => Queued::Refused(Reply::error(NO_SAVE)),
                    Ok(command) if data_role(&command).is_some() => {
                        self.queued_raw.push(args.to_vec());
                        Queued::Data(command)
                    }
                    Ok(_) => Queued::Session(args.to_vec()),
                };
                if let Some(queued) = &mut self.queued {
                    queued.push(entry);
                }
                return Reply::Simple("QUEUED");
            }
        };
        if let Command::Reset = command {
            // RESET ends a block and READONLY as well as the session's state.
            self.queued = None;
            self.queued_raw.clear();
            self.queue_failed = false;
            self.readonly = false;
            return self.session.handle_uncounted(args);
        }
        if self.queued.is_some() {
            // What runs inside a block (`admission.rs`): EXEC, DISCARD, QUIT.
            return match command {
                Command::Exec => self.exec().await,
                Command::Discard => {
                    self.queued = None;
                    self.queued_raw.clear();
                    self.queue_failed = false;
                    Reply::OK
                }
                _ => self.session.handle_uncounted(args),
            };
        }
        match command {
            Command::Multi => {
                self.queued = Some(Vec::new());
                self.queued_raw.clear();
                self.queue_failed = false;
                Reply::OK
            }
            Command::Exec => Reply::error("ERR EXEC without MULTI"),
            Command::Discard => Reply::error("ERR DISCARD without MULTI"),
            Command::Watch(_) => Reply::error("ERR WATCH is not supported on a replicated node"),
            Command::Unwatch => Reply::OK,
            Command::Save | Command::RewriteLog => Reply::error(NO_SAVE),
            Command::Info(ref sections) => self.info(sections).await,
            command => match data_role(&command) {
                Some(true) => match self.write(&[command]).await {
                    Ok(Written::Replies(mut replies)) => replies.remove(0),
                    Ok(Written::Failed(reply)) => reply,
                    Err(elsewhere) => {
                        self.forward(elsewhere, vec![args.to_vec()], "send writes there")
                            .await
                    }
                },
                Some(false) => match self.read(&command, spec.may_stall()).await {
                    Ok(reply) => reply,
                    Err(elsewhere) => {
                        self.forward(elsewhere, vec![args.to_vec()], LINEARIZABLE)
                            .await
                    }
                },
                None => self.session.handle_uncounted(args),
            },
        }
    }

    /// `INFO`, with this node's replication section. Its store's figures are read on the
    /// blocking pool, as the single-node server reads them: they wait for the log's lock,
    /// which a commit holds across its fsync, and count the live keys one by one once any
    /// has a deadline.
    async fn info(&self, sections: &[Bytes]) -> Reply {
        // The state machine's store now: a snapshot installed since this server started
        // replaced the one it was given.
        let store = self.replica.node.reader().store();
        let shared = Arc::clone(&self.shared);
        let asked = sections.to_vec();
        let text = off_the_runtime(&self.shared, move || {
            shared.info(&store, &[kv_raft::META_KEY], &asked)
        })
        .await;
        let Some(mut text) = text else {
            return Reply::error("ERR INFO failed: its task panicked");
        };
        if info_wants(sections, "replication") {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str(&self.replication_info());
        }
        Reply::bulk(text)
    }

    /// `EXEC`: the block's data commands run as one step (a write on the leader, through
    /// one entry), and every other request is answered in its place.
    async fn exec(&mut self) -> Reply {
        let queued = self.queued.take().unwrap_or_default();
        let raw_data = std::mem::take(&mut self.queued_raw);
        if std::mem::take(&mut self.queue_failed) {
            return Reply::error("EXECABORT Transaction discarded because of previous errors.");
        }
        // The data commands moved out, each leaving its place (`None`) for its reply.
        let mut data = Vec::new();
        let queued: Vec<Option<Queued>> = queued
            .into_iter()
            .map(|q| match q {
                Queued::Data(command) => {
                    data.push(command);
                    None
                }
                other => Some(other),
            })
            .collect();
        let data_replies = match self.run_data(data, raw_data).await {
            Ok(replies) => replies,
            // The block failed as a whole (a leader's EXECABORT, CLUSTERDOWN ...).
            Err(reply) => return reply,
        };
        let mut data_replies = data_replies.into_iter();
        let mut replies = Vec::with_capacity(queued.len());
        for entry in queued {
            replies.push(match entry {
                None | Some(Queued::Data(_)) => data_replies.next().unwrap_or(Reply::Nil),
                Some(Queued::Info(sections)) => self.info(&sections).await,
                Some(Queued::Session(args)) => self.session.handle_uncounted(&args),
                Some(Queued::Refused(reply)) => reply,
                Some(Queued::ReadOnly(readonly)) => {
                    self.readonly = readonly;
                    Reply::OK
                }
            });
        }
        Reply::Array(replies)
    }

    /// The replies of a block's data commands, run as one step: here, or on the leader
    /// (`raw` are their requests as sent). `Err`: the block's one reply when it failed as a
    /// whole.
    async fn run_data(
        &mut self,
        data: Vec<Command>,
        raw: Vec<Vec<Bytes>>,
    ) -> std::result::Result<Vec<Reply>, Reply> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let block = |raw: Vec<Vec<Bytes>>| {
            let mut block = vec![vec![Bytes::from_static(b"MULTI")]];
            block.extend(raw);
            block.push(vec![Bytes::from_static(b"EXEC")]);
            block
        };
        let forwarded = if data.iter().all(|c| data_role(c) == Some(false)) {
            match self.ensure_current().await {
                Ok(()) => {
                    let mut view =
                        Staged::new(self.replica.node.reader().store(), SystemTime::now());
                    return Ok(data
                        .iter()
                        .map(|c| execute(&mut view, c).unwrap_or(Reply::Nil))
                        .collect());
                }
                Err(elsewhere) => self.forward(elsewhere, block(raw), LINEARIZABLE).await,
            }
        } else {
            match self.write(&data).await {
                Ok(Written::Replies(replies)) => return Ok(replies),
                Ok(Written::Failed(reply)) => return Err(reply),
                Err(elsewhere) => {
                    self.forward(elsewhere, block(raw), "send writes there")
                        .await
                }
            }
        };
        // The leader's EXEC: its array holds the data commands' replies alone.
        match forwarded {
            Reply::Array(replies) if replies.len() == data.len() => Ok(replies),
            other => Err(other),
        }
    }

    /// Unless `READONLY`: a ReadIndex, so that what this node has applied includes every
    /// write acknowledged before this read began.
    async fn ensure_current(&self) -> std::result::Result<(), Elsewhere> {
        if self.readonly {
            return Ok(());
        }
        let timeout = self.replica.commit_timeout;
        let read_index = self
            .replica
            .node
            .raft()
            .ensure_linearizable(ReadPolicy::ReadIndex);
        let Ok(confirmed) = tokio::time::timeout(timeout, read_index).await else {
            return Err(Elsewhere::Reply(Reply::error(format!(
                "CLUSTERDOWN no linearizable read now: no majority confirmed the leader within {timeout:?} (a majority of the voters may be down or cut off); retry, or send READONLY to read this node's possibly stale copy"
            ))));
        };
        match confirmed {
            Ok(_) => Ok(()),
            Err(error) => Err(match error.forward_to_leader() {
                Some(forward) => self.elsewhere(forward.leader_id, LINEARIZABLE),
                None => Elsewhere::Reply(self.down("no linearizable read now", &error)),
            }),
        }
    }

    /// A read, once this node may answer it; on the blocking pool if it `stalls`
    /// ([`Spec::may_stall`](crate::command::Spec::may_stall)), as on the single-node server.
    async fn read(&self, command: &Command, stalls: bool) -> std::result::Result<Reply, Elsewhere> {
        self.ensure_current().await?;
        let mut view = Staged::new(self.replica.node.reader().store(), SystemTime::now());
        if !stalls {
            return Ok(execute(&mut view, command).unwrap_or(Reply::Nil));
        }
        let command = command.clone();
        let reply = off_the_runtime(&self.shared, move || {
            execute(&mut view, &command).unwrap_or(Reply::Nil)
        })
        .await;
        Ok(reply.unwrap_or_else(|| Reply::error("ERR the command's task panicked")))
    }

    /// Where a node that does not lead sends a request: to `leader` if known.
    fn elsewhere(&self, leader: Option<u64>, what: &str) -> Elsewhere {
        match leader {
            Some(id) if !self.forwarded => Elsewhere::Leader(id),
            leader => Elsewhere::Reply(self.not_leader(leader, what)),
        }
    }

    /// Sends `requests` to the leader over this connection's link and answers with the
    /// last one's reply (EXEC's, for a block). When the leader cannot be reached, the
    /// error says so and names it.
    async fn forward(
        &mut self,
        elsewhere: Elsewhere,
        requests: Vec<Vec<Bytes>>,
        what: &str,
    ) -> Reply {
        let leader = match elsewhere {
            Elsewhere::Reply(reply) => return reply,
            Elsewhere::Leader(id) => id,
        };
        let Some(addr) = self.member(leader).map(|n| n.client) else {
            return self.not_leader(Some(leader), what);
        };
        let link = match &mut self.link {
            Some((to, link)) if *to == addr => link,
            _ => {
                // The link authenticates with this node's own `requirepass`: the nodes of a
                // cluster share one.
                let options = &self.shared.options;
                let connected = forward::Link::connect(
                    &addr,
                    options.limits.max_bulk,
                    options.requirepass.as_deref(),
                    options.commit_timeout,
                )
                .await;
                match connected {
                    Ok(link) => &mut self.link.insert((addr.clone(), link)).1,
                    Err(error) => {
                        return Reply::error(format!(
                            "CLUSTERDOWN the leader, node {leader} at {addr}, cannot be reached from here: {error}; if it is down, the others elect a new leader within about a second when a majority of the voters remains: retry"
                        ))
                    }
                }
            }
        };
        match link.ask(&requests).await {
            Ok(reply) => reply,
            Err(error) => {
                self.link = None;
                Reply::error(format!(
                    "CLUSTERDOWN the link to the leader, node {leader} at {addr}, failed: {error}; a write sent may or may not have been applied"
                ))
            }
        }
    }

    /// Runs `commands` (one, or an `EXEC` block) on the leader and proposes what they
    /// wrote as one entry; the replies, once it is applied here. A block that cannot run
    /// is answered with one error.
    async fn write(&self, commands: &[Command]) -> std::result::Result<Written, Elsewhere> {
        let timeout = self.replica.commit_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let (replies, settled) = match self.propose(commands, deadline).await? {
            Proposed::Answered(replies) => return Ok(Written::Replies(replies)),
            Proposed::Failed(reply) => return Ok(Written::Failed(reply)),
            Proposed::InFlight(replies, settled) => (replies, settled),
        };
        // The entry stays in flight, and later writes are staged over it, until Raft
        // settles it, whether or not this client still waits.
        let Ok(settled) = tokio::time::timeout_at(deadline, settled).await else {
            return Ok(Written::Failed(Reply::error(format!(
                "CLUSTERDOWN the write may or may not have been applied: no majority took it within {timeout:?} (a majority of the voters may be down or cut off); it commits if one does before a new leader is elected; check, and retry"
            ))));
        };
        Ok(match settled.ok() {
            Some(Ok(done)) if done.data.writes_applied => Written::Replies(replies),
            // Appended in a later term than it was staged in: nothing was written.
            Some(Ok(_)) => Written::Failed(Reply::error(
                "TRYAGAIN the write was not applied: leadership changed while it was staged; retry",
            )),
            // Refused before it was appended: nothing was written.
            Some(Err(ClientWriteError::ForwardToLeader(forward))) => {
                Written::Failed(self.not_leader(
                    forward.leader_id,
                    "the write was not applied; send writes there",
                ))
            }
            // Appended, then dropped by a new leader's log, or another failure: it may
            // still commit through another leader.
            Some(Err(error)) => Written::Failed(Reply::error(format!(
                "CLUSTERDOWN the write may or may not have been applied: {error}"
            ))),
            None => Written::Failed(Reply::error(
                "CLUSTERDOWN the write may or may not have been applied: the node is stopping",
            )),
        })
    }

    /// Stages `commands` and proposes their entry, under the replica's `writing` lock; its
    /// outcome arrives later, once Raft applied it or gave it up. The lock is held only
    /// while staging and handing the entry to Raft, so the next write is staged (over this
    /// one: [`InFlight`]) while this one replicates, and many commit in one round.
    async fn propose(
        &self,
        commands: &[Command],
        deadline: tokio::time::Instant,
    ) -> std::result::Result<Proposed, Elsewhere> {
        let replica = &self.replica;
        let timeout = replica.commit_timeout;
        // Until the entry is proposed, a timeout can say that nothing was written.
        let not_written = |why: &str| {
            Err(Elsewhere::Reply(Reply::error(format!(
                "CLUSTERDOWN the write was not applied: {why} within {timeout:?} (a majority of the voters may be down or cut off); retry"
            ))))
        };
        let Ok(_writing) = tokio::time::timeout_at(deadline, replica.writing.lock()).await else {
            return not_written("an earlier write still waits for a majority, and this one for it");
        };
        let raft = replica.node.raft();
        // Staging needs this node to have applied every entry committed before it (its
        // own proposed in this term are in flight, or applied), which the leader's lease
        // shows without a round trip (a ReadIndex when the lease is stale). Whether it still
        // leads is not rechecked after the wait: it may have been deposed and elected again
        // meanwhile, another leader's entries committed in between, unseen by this staging.
        // What keeps a staged write safe is that its entry is applied only if appended in
        // the term it was staged in (`staged_term`): the state machine skips it otherwise,
        // and the client is told to retry.
        let current = async {
            match raft.ensure_linearizable(ReadPolicy::LeaseRead).await {
                Ok(read) => Ok(read),
                Err(error) if error.forward_to_leader().is_some() => Err(error),
                Err(_) => raft.ensure_linearizable(ReadPolicy::ReadIndex).await,
            }
        };
        let Ok(current) = tokio::time::timeout_at(deadline, current).await else {
            return not_written("no majority confirmed this node's leadership");
        };
        let staged_term = match current {
            Ok(read) => read.log_id().committed_leader_id().term,
            Err(error) => {
                return Err(match error.forward_to_leader() {
                    Some(forward) => self.elsewhere(forward.leader_id, "send writes there"),
                    None => Elsewhere::Reply(self.down("this node cannot write now", &error)),
                })
            }
        };
        replica.in_flight.begin(staged_term);
        let mut view = Staged::after(
            replica.node.reader().store(),
            &replica.in_flight,
            SystemTime::now(),
        );
        let replies: Vec<Reply> = commands
            .iter()
            .map(|c| execute(&mut view, c).unwrap_or(Reply::Nil))
            .collect();
        let read_in_flight = view.read_in_flight();
        let request = Request {
            writes: view.into_writes(),
            staged_term: Some(staged_term),
        };
        // A write that changed nothing is answered at once, unless its answer rests on
        // writes still in flight (SETNX of a key one sets, say): then it is proposed, empty,
        // and answered once applied after them, or told to retry if they are lost.
        if request.writes.is_empty() && !read_in_flight {
            return Ok(Proposed::Answered(replies));
        }
        if let Err(error) = request.validate() {
            return Ok(Proposed::Failed(Reply::error(format!("ERR {error}"))));
        }
        // Proposed: from here on an error cannot say whether the entry will commit, so the
        // request is never forwarded (it could be applied twice). Recorded in flight before
        // it is handed over, both under the lock: the next staging sees it either way.
        let keys: Vec<Bytes> = request.writes.iter().map(|w| w.key().clone()).collect();
        let number = replica.in_flight.propose(&request.writes);
        // The entry leaves the in-flight set the moment Raft is done with it, inside Raft,
        // or when the responder drops unanswered (see `in_flight.rs`).
        let in_flight = Arc::clone(&replica.in_flight);
        let (responder, outcome) = Settling::new(move || in_flight.settle(number, &keys));
        if let Err(fatal) = raft.client_write_ff(request, Some(responder)).await {
            return Ok(Proposed::Failed(Reply::error(format!(
                "CLUSTERDOWN this node's Raft stopped: {fatal}"
            ))));
        }
        Ok(Proposed::InFlight(replies, outcome))
    }

    fn not_leader(&self, leader: Option<u64>, what: &str) -> Reply {
        match leader {
            Some(id) => {
                let addr = self
                    .member(id)
                    .map_or_else(|| "an unknown address".to_string(), |n| n.client);
                Reply::error(format!(
                    "READONLY this node ({}) is not the leader: the leader is node {id} at {addr}; {what}",
                    self.replica.node.id()
                ))
            }
            None if self.is_initialized() => Reply::error(
                "CLUSTERDOWN no leader is known yet: the cluster is electing one, or a majority of its voters is down or cut off (`kv cluster status ADDR` on each node shows which); retry",
            ),
            None => Reply::error(format!(
                "CLUSTERDOWN this node is not initialized (a member of no cluster yet): form a cluster with `kv cluster init ADDR1 ADDR2 ADDR3`, or add this node to one with `kv cluster add MEMBER-ADDR {}`",
                self.replica.client_addr
            )),
        }
    }

    /// Why this node cannot serve a request now, `error` being Raft's word for it.
    fn down(&self, what: &str, error: &dyn std::fmt::Display) -> Reply {
        if !self.is_initialized() {
            return self.not_leader(None, what);
        }
        Reply::error(format!(
            "CLUSTERDOWN {what}: {error}; retry once a leader is elected (`kv cluster status ADDR` shows whether one is)"
        ))
    }

    /// Whether this node knows of a membership: a cluster was formed with it, or it was
    /// added to one.
    fn is_initialized(&self) -> bool {
        let metrics = self.replica.node.raft().metrics();
        let metrics = metrics.borrow_watched();
        let initialized = metrics.membership_config.nodes().next().is_some();
        initialized
    }

    /// Member `id`'s addresses, if it is a member.
    fn member(&self, id: u64) -> Option<NodeAddr> {
        let metrics = self.replica.node.raft().metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.get_node(&id).cloned()
    }

    fn replication_info(&self) -> String {
        let m = self.replica.node.raft().metrics().borrow_watched().clone();
        let role = match m.state {
            // Raft starts every node as a learner; one that knows of no cluster yet is
            // none of its members.
            _ if m.membership_config.nodes().next().is_none() => "uninitialized",
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Learner => "learner",
            ServerState::Candidate => "candidate",
            ServerState::Shutdown => "shutdown",
        };
        let members: BTreeMap<u64, &NodeAddr> = m
            .membership_config
            .nodes()
            .map(|(id, node)| (*id, node))
            .collect();
        let voters: Vec<u64> = m.membership_config.voter_ids().collect();
        let leader_addr = m
            .current_leader
            .and_then(|id| members.get(&id))
            .map_or(String::new(), |n| n.client.clone());
        let index = |l: Option<&kv_raft::LogId>| l.map_or(0, |l| l.index());
        let mut lines = vec![
            "# Replication".to_string(),
            format!("role:{role}"),
            format!("node_id:{}", m.id),
            format!(
                "leader_id:{}",
                m.current_leader.map_or(String::new(), |l| l.to_string())
            ),
            format!("leader_addr:{leader_addr}"),
            format!("term:{}", m.current_term),
            format!("commit_index:{}", index(m.local_committed.as_ref())),
            format!("applied_index:{}", index(m.last_applied.as_ref())),
            format!("last_log_index:{}", m.last_log_index.unwrap_or(0)),
        ];
        let list: Vec<String> = members
            .iter()
            .map(|(id, n)| {
                let kind = if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                };
                format!("{id}:{kind}:{}:{}", n.client, n.raft)
            })
            .collect();
        lines.push(format!("membership:{}", list.join(",")));
        // The same, one line a member, in INFO's `name:field=value,...` style (as Redis's
        // `slave0:ip=...,port=...`): addresses hold colons, which `membership` also splits on.
        for (id, n) in &members {
            let kind = if voters.contains(id) {
                "voter"
            } else {
                "learner"
            };
            lines.push(format!(
                "member_{id}:kind={kind},client={},raft={}",
                n.client, n.raft
            ));
        }
        let mut out = lines.join("\r\n");
        out.push_str("\r\n");
        out
    }

    /// `KVRAFT ID`, `KVRAFT INIT id raft client [...]`, and the membership changes
    /// `KVRAFT LEARNER id raft client`, `KVRAFT VOTER id`, `KVRAFT REMOVE id` (for `kv
    /// cluster add` and `remove`), which a follower forwards to the leader as it does writes.
    async fn kvraft(&mut self, request: &[Bytes]) -> Reply {
        let args = &request[1..];
        let node = self.replica.node.clone();
        let id_arg = |arg: &Bytes| String::from_utf8_lossy(arg).parse::<u64>().ok();
        let timeout = self.replica.commit_timeout;
        let change = match args.first() {
            Some(sub) if is(sub, "forwarded") && args.len() == 1 => {
                self.forwarded = true;
                return Reply::OK;
            }
            Some(sub) if is(sub, "id") && args.len() == 1 => {
                return Reply::Array(vec![
                    Reply::Integer(node.id() as i64),
                    Reply::bulk(node.raft_addr().to_string()),
                    Reply::bulk(self.replica.client_addr.clone()),
                ])
            }
            Some(sub)
                if is(sub, "init") && args.len() > 1 && (args.len() - 1).is_multiple_of(3) =>
            {
                let mut members = BTreeMap::new();
                for triple in args[1..].chunks(3) {
                    let Some(id) = id_arg(&triple[0]) else {
                        return Reply::error("ERR KVRAFT INIT takes triples of node id, Raft address, client address");
                    };
                    let addr = node_addr(&triple[1], &triple[2]);
                    if let Err(error) = addr.check_reachable(id) {
                        return Reply::error(format!("ERR KVRAFT INIT refused: {error}"));
                    }
                    members.insert(id, addr);
                }
                return match node.raft().initialize(members).await {
                    Ok(()) => Reply::OK,
                    Err(error) => Reply::error(format!(
                        "ERR KVRAFT INIT refused, nothing changed: {error}; a cluster is initialized once (`kv cluster status ADDR` shows its membership)"
                    )),
                };
            }
            Some(sub) if is(sub, "learner") && args.len() == 4 => {
                let Some(id) = id_arg(&args[1]) else {
                    return Reply::error("ERR KVRAFT LEARNER takes a node id, its Raft address and its client address");
                };
                let addr = node_addr(&args[2], &args[3]);
                if let Err(error) = addr.check_reachable(id) {
                    return Reply::error(format!("ERR KVRAFT LEARNER refused: {error}"));
                }
                if self.is_voter(id) {
                    return Reply::error(format!("ERR node {id} is a voter of this cluster already"));
                }
                Change::Learner(id, addr)
            }
            Some(sub) if is(sub, "voter") && args.len() == 2 => {
                let Some(id) = id_arg(&args[1]) else {
                    return Reply::error("ERR KVRAFT VOTER takes a node id");
                };
                Change::Members(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            }
            Some(sub) if is(sub, "remove") && args.len() == 2 => {
                let Some(id) = id_arg(&args[1]) else {
                    return Reply::error("ERR KVRAFT REMOVE takes a node id");
                };
                let m = node.raft().metrics().borrow_watched().clone();
                let config = &m.membership_config;
                let voters: BTreeSet<u64> = config.voter_ids().collect();
                let change = if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Reply::error(format!(
                            "ERR node {id} is the cluster's last voter: without it no node could commit anything; add another node first (`kv cluster add`)"
                        ));
                    }
                    // Not kept as a learner: gone from the membership.
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else if config.get_node(&id).is_some() {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                } else {
                    let members: Vec<String> = config.nodes().map(|(id, _)| id.to_string()).collect();
                    return Reply::error(format!(
                        "ERR node {id} is not a member of this cluster (its members: {}); `kv cluster status ADDR` lists them",
                        members.join(", ")
                    ));
                };
                Change::Members(change)
            }
            _ => {
                return Reply::error(
                    "ERR usage: KVRAFT ID | KVRAFT INIT id raft-addr client-addr [...] | KVRAFT LEARNER id raft-addr client-addr | KVRAFT VOTER id | KVRAFT REMOVE id",
                )
            }
        };
        // A membership change waits for a majority as a write does, no longer.
        let raft = node.raft();
        let decided = match change {
            // Not blocking: a learner that needs a large snapshot may take longer than any
            // link's timeout; `kv cluster add` watches it catch up instead.
            Change::Learner(id, addr) => {
                tokio::time::timeout(timeout, raft.add_learner(id, addr, false)).await
            }
            Change::Members(change) => {
                tokio::time::timeout(timeout, raft.change_membership(change, false)).await
            }
        };
        let Ok(result) = decided else {
            return Reply::error(format!(
                "CLUSTERDOWN the membership change may or may not have been applied: no majority took it within {timeout:?} (a majority of the voters may be down or cut off); `kv cluster status ADDR` shows the membership, retry once a majority is up"
            ));
        };
        const WHAT: &str = "send membership changes there";
        match result {
            Ok(done) => Reply::Integer(i64::try_from(done.log_id.index()).unwrap_or(i64::MAX)),
            Err(error) => match error.forward_to_leader().map(|f| f.leader_id) {
                // Not proposed here: safe to send to the leader.
                Some(leader) => {
                    let elsewhere = self.elsewhere(leader, WHAT);
                    self.forward(elsewhere, vec![request.to_vec()], WHAT).await
                }
                None => Reply::error(format!(
                    "ERR the membership change failed: {error}; `kv cluster status ADDR` shows the membership now"
                )),
            },
        }
    }

    /// Whether node `id` is a voter in the membership this node knows.
    fn is_voter(&self, id: u64) -> bool {
        let metrics = self.replica.node.raft().metrics();
        let metrics = metrics.borrow_watched();
        let voter = metrics.membership_config.voter_ids().any(|v| v == id);
        voter
    }
}
