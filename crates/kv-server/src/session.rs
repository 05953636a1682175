//! One connection's state, and the connection and server commands.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use kv_store::{Durability, KvStore, Transaction, WriteOptions};

use crate::admission::{admit, Admission};
use crate::block::{self, Role};
use crate::codec::{encode, Protocol};
use crate::command::{self, is, Command, CommandError, Spec, COMMANDS};
use crate::execute::{execute, store_error};
use crate::glob::glob_match;
use crate::keyspace::{Keyspace, Queued};
use crate::reply::Reply;
use crate::server::ServerOptions;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: KvStore,
    pub(crate) options: ServerOptions,
    pub(crate) clients: AtomicUsize,
    pub(crate) next_id: AtomicU64,
    pub(crate) connections_received: AtomicU64,
    pub(crate) commands_processed: AtomicU64,
    pub(crate) started: Instant,
    pub(crate) port: u16,
    /// What `CLIENT LIST` shows of each connection, by id. Changed when a connection
    /// opens, closes, or renames itself or changes protocol: never per command.
    pub(crate) registry: Mutex<BTreeMap<u64, ClientEntry>>,
    /// Whether a `BGREWRITEAOF` compaction is running, and whether the last one failed.
    pub(crate) rewriting: AtomicBool,
    pub(crate) rewrite_failed: AtomicBool,
    /// Permits to answer a pipeline holding a command that may stall
    /// ([`Spec::may_stall`](crate::command::Spec::may_stall)) on tokio's blocking pool: at
    /// most [`STALLING_AT_ONCE`] at a time, so many clients sending `KEYS *` together take
    /// that many threads, and that many copies of the keys, not one each.
    pub(crate) stalling: tokio::sync::Semaphore,
}

/// Whether `INFO`'s `sections` ask for the section `name` (lower case): all of them when
/// none is named, or for `all`, `everything` or `default`.
pub(crate) fn info_wants(sections: &[Bytes], name: &str) -> bool {
    sections.is_empty()
        || sections
            .iter()
            .any(|s| is(s, name) || is(s, "all") || is(s, "everything") || is(s, "default"))
}

/// Pipelines holding a command that may stall answered at once (the others wait their turn).
const STALLING_AT_ONCE: usize = 2;

/// A connection, as `CLIENT LIST` shows it.
#[derive(Debug, Clone)]
pub(crate) struct ClientEntry {
    addr: Option<SocketAddr>,
    name: Option<Bytes>,
    since: Instant,
    protocol: Protocol,
}

/// The version `HELLO` and `INFO` report: clients gate features on it, and the commands
/// here behave as Redis 7's do.
const REDIS_VERSION: &str = "7.2.0";

/// One connection's state (protocol, authentication, name, a `MULTI` block, watches),
/// answering its requests in turn. The [`Server`](crate::Server) keeps one per
/// connection; [`Session::local`] makes one over a store without any network, for a shell
/// or a test.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// use kv_server::{Reply, Session};
/// let dir = tempfile::tempdir().unwrap();
/// let mut session = Session::local(kv_store::KvStore::open(dir.path())?);
/// let request = |words: &[&str]| -> Vec<bytes::Bytes> {
///     words.iter().map(|w| bytes::Bytes::copy_from_slice(w.as_bytes())).collect()
/// };
/// assert_eq!(session.handle(&request(&["INCR", "n"])), Reply::Integer(1));
/// assert_eq!(
///     session.handle(&request(&["INCR"])),
///     Reply::error("ERR wrong number of arguments for 'incr' command")
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
    id: u64,
    pub(crate) protocol: Protocol,
    authenticated: bool,
    name: Option<Bytes>,
    /// The commands of an open `MULTI` block; an error is that of a command whose
    /// arguments were refused (`SET k v BADOPT`), which `EXEC` answers in its place.
    queued: Option<Vec<Result<Command, CommandError>>>,
    /// Whether a command of the block was refused as unknown or of the wrong arity
    /// (`EXEC` then aborts).
    queue_failed: bool,
    /// The watches (`WATCH`), kept in a transaction, and the keys watched.
    watching: Option<(Transaction, Vec<Bytes>)>,
    /// Set by `QUIT`: close once the reply is sent.
    pub(crate) closing: bool,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, addr: Option<SocketAddr>) -> Session {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        shared.registry().insert(
            id,
            ClientEntry {
                addr,
                name: None,
                since: Instant::now(),
                protocol: Protocol::Resp2,
            },
        );
        let authenticated = shared.options.requirepass.is_none();
        Session {
            shared,
            id,
            protocol: Protocol::Resp2,
            authenticated,
            name: None,
            queued: None,
            queue_failed: false,
            watching: None,
            closing: false,
        }
    }

    /// A session over `store`, outside any server (no password).
    pub fn local(store: KvStore) -> Session {
        Session::new(
            Arc::new(Shared::new(store, ServerOptions::default(), 0, 1)),
            None,
        )
    }

    /// The protocol version replies are to be encoded for (`HELLO` changes it).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the connection may run commands (`AUTH` succeeded, or no password is set).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the client asked to close (`QUIT`): once its reply is sent.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Answers one request (its name first; not empty).
    pub fn handle(&mut self, args: &[Bytes]) -> Reply {
        self.count_command();
        self.handle_uncounted(args)
    }

    /// [`handle`](Self::handle), for a caller that counted the request in
    /// `total_commands_processed` itself (a replicated node's connection counts each once).
    pub(crate) fn handle_uncounted(&mut self, args: &[Bytes]) -> Reply {
        match self.prepare_uncounted(args) {
            Ok((command, _)) => self.run_on_store(&command),
            Err(reply) => reply,
        }
    }

    /// Counts a request in `INFO`'s `total_commands_processed`.
    pub(crate) fn count_command(&self) {
        self.shared
            .commands_processed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Answers `requests` in turn, as [`handle`](Self::handle) would one at a time, into
    /// `output` (encoded), until the replies reach `chunk` bytes, the requests run out, or
    /// one closes the connection. A run of data commands from a write on is answered as
    /// one atomic block whose writes share one commit (see `block.rs`).
    pub(crate) fn answer(
        &mut self,
        requests: &mut VecDeque<Vec<Bytes>>,
        output: &mut BytesMut,
        chunk: usize,
    ) {
        while let Some(stage) = self.answer_until_block(requests, output, chunk) {
            let replies = run_blocks(&self.shared.store, &[&stage.block]).remove(0);
            self.finish(stage, replies, requests, output);
        }
    }

    /// Answers requests in turn, as [`answer`](Self::answer) does, up to the next block,
    /// which it takes out of `requests` and returns, for the caller to run (with other
    /// connections' blocks: see `writer.rs`) and then to [`finish`](Self::finish). `None`
    /// once the replies reach `chunk` bytes, the requests run out, or one closes the
    /// connection.
    pub(crate) fn answer_until_block(
        &mut self,
        requests: &mut VecDeque<Vec<Bytes>>,
        output: &mut BytesMut,
        chunk: usize,
    ) -> Option<Stage> {
        self.answer_until(requests, output, chunk, false)
    }

    /// [`answer_until_block`](Self::answer_until_block); `in_place`: on a runtime thread,
    /// where nothing may wait: a write that is not a block's (`FLUSHDB`, `EXEC`) is given
    /// back, unrun, and ends the answering.
    fn answer_until(
        &mut self,
        requests: &mut VecDeque<Vec<Bytes>>,
        output: &mut BytesMut,
        chunk: usize,
        in_place: bool,
    ) -> Option<Stage> {
        while output.len() < chunk {
            let request = requests.pop_front()?;
            let (command, spec) = match self.prepare(&request) {
                Ok(prepared) => prepared,
                Err(reply) => {
                    encode(&reply, self.protocol, output);
                    continue;
                }
            };
            let role = block::role(&command);
            // On a runtime thread a write that is no block, or any write when the store
            // cannot write without waiting (limits, sync), is left, unrun, for the writer;
            // a command that may stall, for a thread that may wait.
            if in_place
                && (spec.may_stall()
                    || spec.writes()
                        && (role != Some(Role::Writes)
                            || !self.shared.store.writes_in_place(WriteOptions::default())))
            {
                self.give_back(vec![request], requests);
                return None;
            }
            if role != Some(Role::Writes) {
                let reply = self.run_on_store(&command);
                encode(&reply, self.protocol, output);
                if self.closing {
                    requests.clear();
                    return None;
                }
                continue;
            }
            // A block: this write, and the data commands after it. The next request is
            // prepared before the block runs: only running a connection command (AUTH,
            // MULTI, HELLO) changes how a request is prepared, and none is in a block.
            // Sized once for the requests waiting: growing them a push at a time reallocates
            // on whichever runtime thread runs the connection now, often not the one whose
            // malloc arena holds them, and the two threads then contend on its lock.
            let room = requests.len().min(block::MAX_COMMANDS - 1) + 1;
            let mut block = Vec::with_capacity(room);
            block.push(command);
            // The length of the block up to its last write.
            let mut writes = 1;
            let mut size = request_size(&request);
            let mut raw = Vec::with_capacity(room);
            raw.push(request);
            let mut after = None;
            while block.len() < block::MAX_COMMANDS && size < block::MAX_BYTES {
                let Some(next) = requests.pop_front() else {
                    break;
                };
                size += request_size(&next);
                let prepared = self.prepare(&next);
                raw.push(next);
                match prepared {
                    Ok((command, spec)) => match block::role(&command) {
                        Some(role) => {
                            if role == Role::Writes {
                                writes = block.len() + 1;
                            }
                            block.push(command);
                        }
                        // On a runtime thread, a write that ends the block (SAVE, FLUSHDB,
                        // EXEC: any may wait), or a command that may stall, is left, unrun,
                        // for a thread that may wait.
                        None if in_place && (spec.writes() || spec.may_stall()) => {
                            let next = raw.pop().expect("the request just taken");
                            size -= request_size(&next);
                            self.give_back(vec![next], requests);
                            break;
                        }
                        None => {
                            after = Some(Ok(command));
                            break;
                        }
                    },
                    Err(reply) => {
                        after = Some(Err(reply));
                        break;
                    }
                }
            }
            // Reads after the last write need not wait for the block's commit, nor hold
            // their keys for it: they are answered after it, on their own.
            let reads_after = block.split_off(writes);
            return Some(Stage {
                block,
                reads_after,
                after,
                raw,
                size,
            });
        }
        None
    }

    /// Answers what it can of `requests` as [`answer`](Self::answer) does, on a runtime
    /// thread: each block only if it can be written without waiting
    /// ([`KvStore::try_update_keys`]). Stops at the first thing that could wait, leaving
    /// it, unrun, at the front of `requests`, for a thread that may wait to answer.
    pub(crate) fn answer_in_place(
        &mut self,
        requests: &mut VecDeque<Vec<Bytes>>,
        output: &mut BytesMut,
        chunk: usize,
    ) {
        while let Some(stage) = self.answer_until(requests, output, chunk, true) {
            match try_run_block(&self.shared.store, &stage.block) {
                Some(replies) => self.finish(stage, replies, requests, output),
                None => {
                    self.give_back(stage.raw, requests);
                    return;
                }
            }
        }
    }

    /// Puts requests taken out, unrun, back at the front of `requests`, in their order,
    /// and uncounts them (they are counted again when they run).
    fn give_back(&mut self, raw: Vec<Vec<Bytes>>, requests: &mut VecDeque<Vec<Bytes>>) {
        self.shared
            .commands_processed
            .fetch_sub(raw.len() as u64, Ordering::Relaxed);
        for request in raw.into_iter().rev() {
            requests.push_front(request);
        }
    }

    /// Answers a block taken by [`answer_until_block`](Self::answer_until_block) with the
    /// replies its run gave, then the requests it had read after it.
    pub(crate) fn finish(
        &mut self,
        stage: Stage,
        replies: Vec<Reply>,
        requests: &mut VecDeque<Vec<Bytes>>,
        output: &mut BytesMut,
    ) {
        for reply in replies {
            encode(&reply, self.protocol, output);
        }
        for command in stage.reads_after {
            let reply = self.run_on_store(&command);
            encode(&reply, self.protocol, output);
        }
        match stage.after {
            Some(Ok(command)) => {
                let reply = self.run_on_store(&command);
                encode(&reply, self.protocol, output);
                if self.closing {
                    requests.clear();
                }
            }
            Some(Err(reply)) => encode(&reply, self.protocol, output),
            None => {}
        }
    }

    /// Runs a prepared command against the store.
    fn run_on_store(&mut self, command: &Command) -> Reply {
        let mut store = self.shared.store.clone();
        self.run(&mut store, command)
    }

    /// `BGREWRITEAOF`: the store's compaction, on a thread of its own, answered at once as
    /// Redis answers it. (Run in the command's turn, it would hold up the writer thread,
    /// and with it every connection's writes, for the whole compaction.) `INFO
    /// persistence` says whether one is running and whether the last one failed; closing
    /// the store stops one that is running.
    fn rewrite_in_background(&self) -> Reply {
        if self.shared.rewriting.swap(true, Ordering::AcqRel) {
            return Reply::error("ERR Background append only file rewriting already in progress");
        }
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("kv-bgrewriteaof".into())
            .spawn(move || {
                // Cleared however the compaction ends, a panic included: a flag left set
                // would answer every later BGREWRITEAOF "already in progress".
                let rewriting = Rewriting(&shared);
                let failed = shared.store.compact().is_err();
                shared.rewrite_failed.store(failed, Ordering::Release);
                drop(rewriting);
            });
        match started {
            Ok(_) => Reply::Status("Background append only file rewriting started".into()),
            Err(error) => {
                self.shared.rewriting.store(false, Ordering::Release);
                Reply::error(format!("ERR could not start the rewrite: {error}"))
            }
        }
    }

    /// Everything [`handle`](Self::handle) does before running a command: counts it,
    /// parses it, checks authentication, and queues it inside `MULTI`. `Err`: the reply
    /// of a request answered without running (an error, `QUEUED`).
    fn prepare(&mut self, args: &[Bytes]) -> Result<(Command, &'static Spec), Reply> {
        self.count_command();
        self.prepare_uncounted(args)
    }

    /// [`prepare`](Self::prepare) without counting the request (see `admission.rs`).
    fn prepare_uncounted(&mut self, args: &[Bytes]) -> Result<(Command, &'static Spec), Reply> {
        match admit(args, self.authenticated, self.queued.is_some()) {
            Admission::Run(command, spec) => Ok((command, spec)),
            Admission::Queue(command) => {
                if let Some(queued) = &mut self.queued {
                    queued.push(command);
                }
                Err(Reply::Simple("QUEUED"))
            }
            Admission::Refuse { reply, aborts } => {
                self.queue_failed |= aborts;
                Err(reply)
            }
        }
    }

    /// Runs a command against `keyspace` (the store, or `EXEC`'s block view).
    fn run(&mut self, keyspace: &mut dyn Keyspace, command: &Command) -> Reply {
        execute(keyspace, command).unwrap_or_else(|| self.run_outside_keyspace(command))
    }

    /// Runs a command that `execute` does not answer: a connection or server command.
    fn run_outside_keyspace(&mut self, command: &Command) -> Reply {
        match command {
            Command::Ping(None) => Reply::Simple("PONG"),
            Command::Ping(Some(message)) | Command::Echo(message) => Reply::Bulk(message.clone()),
            Command::Hello {
                protocol,
                auth,
                name,
            } => self.hello(*protocol, auth.as_ref(), name.as_ref()),
            Command::Auth { user, password } => self.auth(user.as_deref(), password),
            Command::Select(0) => Reply::OK,
            Command::Select(_) => Reply::error("ERR DB index is out of range"),
            Command::Quit => {
                self.closing = true;
                Reply::OK
            }
            Command::Reset => {
                self.protocol = Protocol::Resp2;
                self.authenticated = self.shared.options.requirepass.is_none();
                self.name = None;
                self.queued = None;
                self.queue_failed = false;
                self.watching = None;
                self.publish();
                Reply::Simple("RESET")
            }
            Command::ClientSetName(name) => {
                self.name = (!name.is_empty()).then(|| name.clone());
                self.publish();
                Reply::OK
            }
            Command::ClientList => Reply::bulk(self.shared.client_list()),
            Command::ClientGetName => Reply::bulk_or_nil(self.name.clone()),
            Command::ClientId => Reply::Integer(self.id as i64),
            Command::ClientSetInfo => Reply::OK,
            Command::CommandAll => Reply::Array(COMMANDS.iter().map(command_info).collect()),
            Command::CommandCount => Reply::Integer(COMMANDS.len() as i64),
            // No documentation yet: redis-cli then uses its own hints.
            Command::CommandDocs(names) => command_docs(names),
            Command::CommandInfo(names) => Reply::Array(
                names
                    .iter()
                    .map(|name| command::lookup(name).map_or(Reply::Nil, command_info))
                    .collect(),
            ),
            Command::ConfigGet(patterns) => self.config_get(patterns),
            Command::Info(sections) => {
                Reply::bulk(self.shared.info(&self.shared.store, &[], sections))
            }
            Command::Time => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Reply::Array(vec![
                    Reply::bulk(now.as_secs().to_string()),
                    Reply::bulk(now.subsec_micros().to_string()),
                ])
            }
            Command::Multi => {
                self.queued = Some(Vec::new());
                self.queue_failed = false;
                Reply::OK
            }
            Command::Exec => self.exec(),
            Command::Discard => match self.queued.take() {
                Some(_) => {
                    self.watching = None;
                    Reply::OK
                }
                None => Reply::error("ERR DISCARD without MULTI"),
            },
            Command::Watch(keys) => {
                let (tx, watched) = self
                    .watching
                    .get_or_insert_with(|| (self.shared.store.begin_transaction(), Vec::new()));
                for key in keys {
                    tx.watch(key.clone());
                    watched.push(key.clone());
                }
                Reply::OK
            }
            Command::Unwatch => {
                self.watching = None;
                Reply::OK
            }
            Command::RewriteLog => self.rewrite_in_background(),
            Command::Save => match self.shared.store.sync() {
                Ok(()) => Reply::OK,
                Err(error) => store_error(&error),
            },
            // Data commands were answered by `execute`.
            _ => Reply::error("ERR command not available here"),
        }
    }

    /// Shows this connection's name and protocol in `CLIENT LIST`.
    fn publish(&self) {
        if let Some(entry) = self.shared.registry().get_mut(&self.id) {
            entry.name = self.name.clone();
            entry.protocol = self.protocol;
        }
    }

    fn hello(
        &mut self,
        protocol: Option<Protocol>,
        auth: Option<&(Bytes, Bytes)>,
        name: Option<&Bytes>,
    ) -> Reply {
        if let Some((user, password)) = auth {
            let reply = self.auth(Some(user), password);
            if reply.is_error() {
                return reply;
            }
        }
        if !self.authenticated {
            return Reply::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time",
            );
        }
        // Checked once authenticated, and before anything changes, as Redis does.
        if let Some(Err(error)) = name.map(|name| command::check_client_name(name)) {
            return error.into();
        }
        if let Some(protocol) = protocol {
            self.protocol = protocol;
        }
        if let Some(name) = name {
            self.name = (!name.is_empty()).then(|| name.clone());
        }
        self.publish();
        let proto = match self.protocol {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        };
        Reply::Map(vec![
            (Reply::bulk("server"), Reply::bulk("redis")),
            (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
            (Reply::bulk("proto"), Reply::Integer(proto)),
            (Reply::bulk("id"), Reply::Integer(self.id as i64)),
            (Reply::bulk("mode"), Reply::bulk("standalone")),
            (Reply::bulk("role"), Reply::bulk("master")),
            (Reply::bulk("modules"), Reply::Array(Vec::new())),
        ])
    }

    fn auth(&mut self, user: Option<&[u8]>, password: &[u8]) -> Reply {
        let Some(expected) = &self.shared.options.requirepass else {
            // Without a password the default user is Redis 7's `nopass`: any password
            // authenticates it. Only the one-argument form, which names no user, is
            // taken for a configuration mistake.
            return match user {
                None => Reply::error(
                    "ERR AUTH <password> called without any password configured for the \
                     default user. Are you sure your configuration is correct?",
                ),
                Some(b"default") => {
                    self.authenticated = true;
                    Reply::OK
                }
                Some(_) => {
                    Reply::error("WRONGPASS invalid username-password pair or user is disabled.")
                }
            };
        };
        let user_ok = user.is_none_or(|u| u == b"default");
        // Both compared in full, whatever the user: the time says nothing of the password.
        if constant_time_eq(expected.as_bytes(), password) & user_ok {
            self.authenticated = true;
            Reply::OK
        } else {
            Reply::error("WRONGPASS invalid username-password pair or user is disabled.")
        }
    }

    /// `EXEC`: runs the block against a view of the store and commits its writes as one
    /// atomic batch. A changed watched key answers nil; a change to a key the block only
    /// read (between its reads and the commit) runs the block again, as if it had run
    /// after that write (see [`run_queued`](Self::run_queued) for what runs again).
    fn exec(&mut self) -> Reply {
        let Some(queued) = self.queued.take() else {
            return Reply::error("ERR EXEC without MULTI");
        };
        let (watches, watched) = self
            .watching
            .take()
            .unwrap_or_else(|| (self.shared.store.begin_transaction(), Vec::new()));
        if std::mem::take(&mut self.queue_failed) {
            return Reply::error("EXECABORT Transaction discarded because of previous errors.");
        }
        let mut kept = vec![None; queued.len()];
        loop {
            let mut view = Queued::new(self.shared.store.clone(), watches.clone());
            let replies = self.run_queued(&mut view, &queued, &mut kept);
            match view.commit() {
                Ok(Ok(())) => return Reply::Array(replies),
                Ok(Err(conflict)) if watched.contains(&conflict.key) => return Reply::NilArray,
                Ok(Err(_)) => continue,
                Err(error) => return store_error(&error),
            }
        }
    }

    /// Answers a block's queued commands in `view`. The data commands run in every pass;
    /// a command that does not touch the keyspace runs in the first pass only, and later
    /// passes answer it as it was answered then (`kept`): its effect (a rewrite started, a
    /// name set) is not the block's to repeat because a key it read changed.
    fn run_queued(
        &mut self,
        view: &mut Queued<'_>,
        queued: &[Result<Command, CommandError>],
        kept: &mut [Option<Reply>],
    ) -> Vec<Reply> {
        queued
            .iter()
            .zip(kept)
            .map(|(command, kept)| match (command, kept) {
                (Err(error), _) => error.clone().into(),
                (Ok(_), Some(reply)) => reply.clone(),
                (Ok(command), kept) => execute(view, command).unwrap_or_else(|| {
                    let reply = self.run_outside_keyspace(command);
                    *kept = Some(reply.clone());
                    reply
                }),
            })
            .collect()
    }

    fn config_get(&self, patterns: &[Bytes]) -> Reply {
        let options = &self.shared.options;
        let appendfsync = match self.shared.store.durability() {
            Durability::Sync => "always",
            Durability::Batch(_) => "everysec",
            Durability::None => "no",
        };
        let settings: [(&str, String); 9] = [
            ("save", String::new()),
            ("appendonly", "yes".into()),
            ("appendfsync", appendfsync.into()),
            ("maxmemory", "0".into()),
            ("databases", "1".into()),
            ("maxclients", options.maxclients.to_string()),
            (
                "timeout",
                options.timeout.map_or(0, |t| t.as_secs()).to_string(),
            ),
            ("port", self.shared.port.to_string()),
            ("proto-max-bulk-len", options.limits.max_bulk.to_string()),
        ];
        let mut pairs = Vec::new();
        for (name, value) in settings {
            if patterns
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
            {
                pairs.push((Reply::bulk(name), Reply::bulk(value)));
            }
        }
        Reply::Map(pairs)
    }
}

/// A block taken out of a connection's requests, with what it read after it.
#[derive(Debug)]
pub(crate) struct Stage {
    /// Data commands, a write first and last.
    pub(crate) block: Vec<Command>,
    /// Reads that followed the block's last write, answered after it.
    reads_after: Vec<Command>,
    /// The request that ended the block, prepared (`Err`: its reply), answered after it.
    after: Option<Result<Command, Reply>>,
    /// Every request taken out for the stage, to give back if it cannot run here.
    raw: Vec<Vec<Bytes>>,
    /// Its requests' arguments' bytes.
    pub(crate) size: usize,
}

/// Runs one block as [`run_blocks`] does, if it can be written without waiting (see
/// [`KvStore::try_update_keys`]); `None`, having written nothing, otherwise (or if the
/// store refused it: the caller runs it again where it may wait, and fall back).
fn try_run_block(store: &KvStore, block: &[Command]) -> Option<Vec<Reply>> {
    let keys = block::held_keys(block);
    let ran = store.try_update_keys(&keys, |held| {
        let mut view = Queued::held(store.clone(), held, keys.len());
        let replies = run_in(&mut view, block);
        (view.into_writes(), replies)
    });
    ran?.ok()
}

/// Answers each command of a block, in `view`.
fn run_in(view: &mut Queued<'_>, block: &[Command]) -> Vec<Reply> {
    block
        .iter()
        .map(|command| {
            execute(view, command).unwrap_or_else(|| Reply::error("ERR command not available here"))
        })
        .collect()
}

/// Marks a background rewrite as over when dropped.
struct Rewriting<'a>(&'a Shared);

impl Drop for Rewriting<'_> {
    fn drop(&mut self) {
        self.0.rewriting.store(false, Ordering::Release);
    }
}

/// Runs blocks (data commands, a write first; one connection's each, in the order given)
/// as one atomic step with one commit, and answers each command. If the commit fails,
/// runs each block again with a commit of its own, and the commands of a block that
/// fails again one at a time, which answers each as it would have been answered alone: a
/// store that refused the batch (a value over the limit, a full disk) wrote none of it,
/// and one that failed refuses every write from then on, so nothing is written twice.
pub(crate) fn run_blocks(store: &KvStore, blocks: &[&[Command]]) -> Vec<Vec<Reply>> {
    let alone = |command: &Command| {
        execute(&mut store.clone(), command)
            .unwrap_or_else(|| Reply::error("ERR command not available here"))
    };
    if let [[command]] = blocks {
        // One command: as it runs alone, with no view over it.
        return vec![vec![alone(command)]];
    }
    let keys = block::held_keys(blocks.iter().flat_map(|block| block.iter()));
    let ran = store.update_keys(&keys, |held| {
        let mut view = Queued::held(store.clone(), held, keys.len());
        let replies = blocks
            .iter()
            .map(|block| run_in(&mut view, block))
            .collect();
        (view.into_writes(), replies)
    });
    ran.unwrap_or_else(|_| match blocks {
        // One block failed: its commands one at a time.
        [block] => vec![block.iter().map(alone).collect()],
        // Several connections' blocks: each again with a commit of its own, so that one
        // connection's bad block (a value over the limit) costs the others one commit,
        // not one each of their commands.
        _ => blocks
            .iter()
            .map(|block| run_blocks(store, &[*block]).remove(0))
            .collect(),
    })
}

/// `COMMAND DOCS [name ...]`: each command's summary and group from the docs table (all
/// of them without names; an unknown name is left out, as in Redis), with a container's
/// subcommands under `subcommands`. Enough for clients' hints; Redis's `since`,
/// `complexity` and structured `arguments` are not kept here.
fn command_docs(names: &[Bytes]) -> Reply {
    let entry = |doc: &crate::docs::Doc, subcommands: Vec<(Reply, Reply)>| {
        let mut fields = vec![
            (Reply::bulk("summary"), Reply::bulk(doc.summary)),
            (Reply::bulk("group"), Reply::bulk(doc.group)),
        ];
        if !subcommands.is_empty() {
            fields.push((Reply::bulk("subcommands"), Reply::Map(subcommands)));
        }
        Reply::Map(fields)
    };
    let wanted = |name: &str| {
        names.is_empty()
            || names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut docs = Vec::new();
    for container in crate::docs::DOCS.iter().filter(|d| !d.name.contains('|')) {
        if !wanted(container.name) {
            continue;
        }
        let prefix = format!("{}|", container.name);
        let subcommands = crate::docs::DOCS
            .iter()
            .filter(|d| d.name.starts_with(&prefix))
            .map(|d| (Reply::bulk(d.name), entry(d, Vec::new())))
            .collect();
        docs.push((Reply::bulk(container.name), entry(container, subcommands)));
    }
    Reply::Map(docs)
}

/// The store's durability as `INFO` names it: `--durability`'s word.
fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Sync => "sync",
        Durability::Batch(_) => "batch",
        Durability::None => "none",
    }
}

/// The longest an acknowledged write waits for its fsync, in whole ms rounded up, under
/// `Batch` (a window under a millisecond shows as 1, never as the 0 of the other modes).
fn batch_window_ms(durability: Durability) -> u128 {
    match durability {
        Durability::Batch(window) => window.as_micros().div_ceil(1000).max(1),
        Durability::Sync | Durability::None => 0,
    }
}

/// A request's size, for a block's limit: its arguments' bytes.
fn request_size(request: &[Bytes]) -> usize {
    request.iter().map(Bytes::len).sum()
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.registry().remove(&self.id);
    }
}

impl Shared {
    /// `INFO`'s text for `sections`, with `store`'s figures; `hidden` keys are left out of
    /// the keyspace's count (a replicated node's own: its store is the state machine's
    /// current one, replaced whenever a snapshot is installed).
    pub(crate) fn info(&self, store: &KvStore, hidden: &[&[u8]], sections: &[Bytes]) -> String {
        // Read once, and only for a section that prints them: the figures take the log's
        // lock, and count the live keys one by one once any has a deadline.
        let figures = std::cell::OnceCell::new();
        let stats = || figures.get_or_init(|| store.stats());
        let mut out = String::new();
        // Each section's lines are made only if it is asked for.
        let mut section = |name: &str, lines: &dyn Fn() -> Vec<String>| {
            if info_wants(sections, &name.to_ascii_lowercase()) {
                if !out.is_empty() {
                    out.push_str("\r\n");
                }
                out.push_str(&format!("# {name}\r\n"));
                for line in lines() {
                    out.push_str(&line);
                    out.push_str("\r\n");
                }
            }
        };
        section("Server", &|| {
            vec![
                format!("redis_version:{REDIS_VERSION}"),
                format!("kv_version:{}", env!("CARGO_PKG_VERSION")),
                "redis_mode:standalone".into(),
                format!("process_id:{}", std::process::id()),
                format!("tcp_port:{}", self.port),
                format!("uptime_in_seconds:{}", self.started.elapsed().as_secs()),
            ]
        });
        section("Clients", &|| {
            vec![
                format!("connected_clients:{}", self.clients.load(Ordering::Relaxed)),
                format!("maxclients:{}", self.options.maxclients),
                // No command blocks here; `redis-cli --stat` prints this column.
                "blocked_clients:0".into(),
            ]
        });
        section("Memory", &|| {
            vec![
                format!("used_memory:{}", stats().memory_used_bytes),
                "maxmemory:0".into(),
            ]
        });
        section("Persistence", &|| {
            vec![
                "loading:0".into(),
                "aof_enabled:1".into(),
                format!(
                    "aof_rewrite_in_progress:{}",
                    u8::from(self.rewriting.load(Ordering::Acquire))
                ),
                format!(
                    "aof_last_bgrewrite_status:{}",
                    if self.rewrite_failed.load(Ordering::Acquire) {
                        "err"
                    } else {
                        "ok"
                    }
                ),
                format!("kv_log_bytes:{}", stats().log_bytes),
                format!("kv_durability:{}", durability_name(store.durability())),
                format!("kv_batch_window_ms:{}", batch_window_ms(store.durability())),
            ]
        });
        section("Stats", &|| {
            vec![
                format!(
                    "total_connections_received:{}",
                    self.connections_received.load(Ordering::Relaxed)
                ),
                format!(
                    "total_commands_processed:{}",
                    self.commands_processed.load(Ordering::Relaxed)
                ),
                format!("expired_keys:{}", stats().expirations_total),
                format!("evicted_keys:{}", stats().evictions_total),
            ]
        });
        // Every figure of the store (`kv stats`), as `kv_<name>:<value>`.
        section("Store", &|| {
            stats()
                .figures()
                .into_iter()
                .map(|figure| format!("kv_{}:{}", figure.name, figure.value))
                .collect()
        });
        section("Keyspace", &|| {
            // The store's counts, no walk of the keys: expired keys the sweep has not
            // removed yet are counted, as Redis counts them here (`DBSIZE` does not).
            let (mut keys, mut expires) = store.entry_counts();
            for key in hidden {
                if let Some(deadline) = store.deadline(key) {
                    keys -= 1;
                    expires -= usize::from(deadline.is_some());
                }
            }
            if keys > 0 {
                vec![format!("db0:keys={keys},expires={expires},avg_ttl=0")]
            } else {
                Vec::new()
            }
        });
        out
    }

    /// What the connections of a server on `port` share, `connections` of them counted
    /// already (a local session counts itself).
    pub(crate) fn new(
        store: KvStore,
        options: ServerOptions,
        port: u16,
        connections: usize,
    ) -> Shared {
        Shared {
            store,
            options,
            clients: AtomicUsize::new(connections),
            next_id: AtomicU64::new(0),
            connections_received: AtomicU64::new(connections as u64),
            commands_processed: AtomicU64::new(0),
            started: Instant::now(),
            port,
            registry: Mutex::new(BTreeMap::new()),
            rewriting: AtomicBool::new(false),
            rewrite_failed: AtomicBool::new(false),
            stalling: tokio::sync::Semaphore::new(STALLING_AT_ONCE),
        }
    }

    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ClientEntry>> {
        // The map stays consistent whatever panicked while holding it: each change is one
        // insert, remove or field assignment.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `CLIENT LIST`: one line a connection, Redis's fields that mean something here.
    fn client_list(&self) -> String {
        let mut out = String::new();
        for (id, entry) in self.registry().iter() {
            let addr = entry.addr.map_or_else(String::new, |a| a.to_string());
            let name = entry
                .name
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let resp = match entry.protocol {
                Protocol::Resp2 => 2,
                Protocol::Resp3 => 3,
            };
            out.push_str(&format!(
                "id={id} addr={addr} laddr= fd=-1 name={name} age={} idle=0 flags=N db=0 sub=0 \
                 psub=0 ssub=0 multi=-1 user=default resp={resp}\n",
                entry.since.elapsed().as_secs()
            ));
        }
        out
    }
}

/// `COMMAND INFO`'s entry for a command.
fn command_info(spec: &Spec) -> Reply {
    let (first, last, step) = spec.keys;
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Integer(spec.arity.into()),
        Reply::Array(spec.flags.iter().map(|f| Reply::Simple(f)).collect()),
        Reply::Integer(first.into()),
        Reply::Integer(last.into()),
        Reply::Integer(step.into()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

/// Compares two secrets in time that depends on their lengths only.
fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut difference = u8::from(expected.len() != given.len());
    for (i, &byte) in given.iter().enumerate() {
        // Compared against something whatever the lengths, so no early exit.
        difference |= byte
            ^ expected
                .get(i % expected.len().max(1))
                .copied()
                .unwrap_or(0);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;
    use super::*;

    fn request(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn info_prints_the_sections_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = Session::local(buffered_store(dir.path(), Default::default()));
        session.handle(&request("SET k v"));
        let mut headers = |line: &str| -> Vec<String> {
            let Reply::Bulk(text) = session.handle(&request(line)) else {
                panic!("{line}: not a bulk string");
            };
            String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|l| l.strip_prefix("# ").map(String::from))
                .collect()
        };
        let every = [
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Store",
            "Keyspace",
        ];
        assert_eq!(headers("INFO"), every);
        assert_eq!(headers("INFO everything"), every);
        assert_eq!(headers("INFO keyspace"), ["Keyspace"]);
        assert_eq!(headers("INFO clients MEMORY"), ["Clients", "Memory"]);
        assert!(headers("INFO nosuchsection").is_empty());
    }

    /// A store in `dir` with `options`, writing with `Durability::None`.
    fn buffered_store(dir: &std::path::Path, options: kv_store::Options) -> KvStore {
        KvStore::open_with(dir, options.durability(Durability::None)).unwrap()
    }

    #[test]
    fn one_bad_block_costs_the_others_a_commit_not_one_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = buffered_store(dir.path(), kv_store::Options::default().max_value_size(8));
        let parse = |line: &str| command::parse(&request(line)).unwrap().0;
        let bad = [parse("SET a 12345"), parse("APPEND a 6789")];
        let good: Vec<Command> = (0..10).map(|i| parse(&format!("SET k{i} v"))).collect();
        let groups = || store.stats().commit_groups_total;
        let before = groups();
        let replies = run_blocks(&store, &[&bad[..], &good[..]]);
        assert_eq!(replies[0][0], Reply::OK);
        assert!(replies[0][1].is_error(), "{:?}", replies[0][1]);
        assert_eq!(replies[1], vec![Reply::OK; 10]);
        assert_eq!(store.get("a").as_deref(), Some(&b"12345"[..]));
        assert_eq!(store.get("k9").as_deref(), Some(&b"v"[..]));
        // The good block in one commit; the bad one's SET alone (its APPEND is refused
        // before it reaches the log).
        assert_eq!(groups() - before, 2);
        store.close().unwrap();
    }

    #[test]
    fn in_place_leaves_a_write_that_ends_a_block_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = buffered_store(dir.path(), kv_store::Options::default());
        for ending in ["SAVE", "FLUSHDB", "EXEC"] {
            let mut session = Session::local(store.clone());
            let mut requests: VecDeque<_> = [
                request("SET a 1"),
                request("INCR n"),
                request(ending),
                request("GET a"),
            ]
            .into();
            let mut output = BytesMut::new();
            session.answer_in_place(&mut requests, &mut output, 64 * 1024);
            // The block ran here; what may wait did not, nor anything after it.
            assert!(output.starts_with(b"+OK\r\n:"), "{ending}: {output:?}");
            assert_eq!(requests.len(), 2, "{ending}: {requests:?}");
            assert_eq!(requests[0], request(ending));
        }
        store.close().unwrap();
    }

    #[test]
    fn a_block_run_again_after_a_conflict_repeats_no_command_outside_the_keyspace() {
        let dir = tempfile::tempdir().unwrap();
        let store = buffered_store(dir.path(), kv_store::Options::default());
        store.put("n", "1").unwrap();
        let compactions = || store.stats().compactions_total;
        let before = compactions();
        let mut session = Session::local(store.clone());
        let queued: Vec<_> = ["INCR n", "BGREWRITEAOF", "CLIENT SETNAME x", "GET n"]
            .iter()
            .map(|line| Ok(command::parse(&request(line)).unwrap().0))
            .collect();
        let mut kept = vec![None; queued.len()];
        // Two passes, as after a conflict; the first pass's view is dropped uncommitted.
        let mut pass = || {
            let mut view = Queued::new(store.clone(), store.begin_transaction());
            session.run_queued(&mut view, &queued, &mut kept)
        };
        let first = pass();
        let second = pass();
        assert_eq!(first, second);
        assert_eq!(
            first[1],
            Reply::Status("Background append only file rewriting started".into()),
            "{first:?}"
        );
        assert_eq!(first[0], Reply::Integer(2));
        // Wait for the one rewrite to end before closing.
        let started = std::time::Instant::now();
        while session.shared.rewriting.load(Ordering::Acquire) {
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(compactions() - before, 1, "one rewrite for the two passes");
        store.close().unwrap();
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"secret", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
