//! A node of a replicated cluster as a real child process: `kv serve --node-id N` on
//! 127.0.0.1, with ports picked free, started, killed with SIGKILL, paused with SIGSTOP and
//! resumed, and asked `INFO replication`. Shared by kv-cli's cluster tests and the
//! fault-injection run (`kv-jepsen`). Every wait is bounded; a node's process is killed when
//! its [`Node`] is dropped, on a panic too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

/// How long a node may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("a bound socket's address")
        .port()
}

/// One node: its identity, directory and addresses, which a restart keeps, and its process
/// while it runs.
#[derive(Debug)]
pub struct Node {
    /// Its node id (`--node-id`).
    pub id: u64,
    /// Its directory (`--dir`).
    pub dir: PathBuf,
    /// Its client (Redis-protocol) address.
    pub client: String,
    /// Its Raft address (`--raft-bind`).
    pub raft: String,
    /// More `kv serve` arguments.
    pub extra: Vec<String>,
    /// Where its standard error is appended, if anywhere.
    pub log: Option<PathBuf>,
    kv: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// Node `id` of the `kv` binary at `kv`, its store in `dir`, on two free ports. Not started.
    pub fn new(kv: &Path, id: u64, dir: PathBuf) -> Node {
        Node {
            id,
            dir,
            client: format!("127.0.0.1:{}", free_port()),
            raft: format!("127.0.0.1:{}", free_port()),
            extra: Vec::new(),
            log: None,
            kv: kv.to_path_buf(),
            child: None,
            paused: false,
        }
    }

    /// `kv serve` for this node's directory and addresses, as node `id` (a test may give
    /// another id than its own).
    pub fn command(&self, id: u64) -> Command {
        let mut command = Command::new(&self.kv);
        command.arg("--dir").arg(&self.dir).args([
            "serve",
            "--bind",
            &self.client,
            "--node-id",
            &id.to_string(),
            "--raft-bind",
            &self.raft,
        ]);
        command.args(&self.extra).env_remove("KV_REQUIREPASS");
        command
    }

    /// Starts it and waits (at most [`READY_TIMEOUT`]) for its ready line.
    ///
    /// # Errors
    ///
    /// When it cannot be spawned or does not say it is ready in time (it is killed then).
    pub fn start(&mut self) -> Result<(), String> {
        let stderr = match &self.log {
            Some(path) => File::options()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            None => Stdio::null(),
        };
        let mut child = self
            .command(self.id)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start node {}: {e}", self.id))?;
        let stdout = child.stdout.take().expect("a piped stdout");
        let (tx, rx) = mpsc::channel();
        // The ready line is read on a thread of its own, so that a node that never prints
        // it cannot hang the caller.
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        self.child = Some(child);
        self.paused = false;
        let expected = format!("ready: listening on {}", self.client);
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.starts_with(&expected) => Ok(()),
            outcome => {
                self.kill();
                Err(format!(
                    "node {} did not get ready in {READY_TIMEOUT:?}: {outcome:?}",
                    self.id
                ))
            }
        }
    }

    /// Whether its process was started and not killed since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether it is stopped by [`Node::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Sends its process SIGKILL, without waiting for it to die ([`Node::kill`] reaps it):
    /// to kill several nodes at the same moment.
    pub fn sigkill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
        }
    }

    /// Kills its process with SIGKILL (a stopped one too) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Stops its process with SIGSTOP: it answers no one, peers and clients alike, until
    /// [`Node::resume`].
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            if kill_process(Pid::from_child(child), Signal::STOP).is_ok() {
                self.paused = true;
            }
        }
    }

    /// Resumes a paused process with SIGCONT.
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            let _ = kill_process(Pid::from_child(child), Signal::CONT);
        }
        self.paused = false;
    }

    /// A connection to its client address, connecting and each reply within `timeout`.
    ///
    /// # Errors
    ///
    /// When it cannot be reached in time.
    pub fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://{}/", self.client))?;
        let connection = client.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        connection.set_write_timeout(Some(timeout))?;
        Ok(connection)
    }

    /// Its `INFO replication` fields (`role`, `applied_index`, ...), each answer within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// When it cannot be reached or does not answer in time.
    pub fn info(&self, timeout: Duration) -> redis::RedisResult<BTreeMap<String, String>> {
        let text: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.connect(timeout)?)?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
