//! The command line: global options, subcommands, and the help text that documents the
//! shell's protocol and every output format.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const HELP: &str = "\
THE SHELL
  With no command (or `kv shell`), kv reads commands one a line: interactively on a
  terminal (line editing, history in ~/.kv_history), otherwise from standard input, and
  answers each line at once (flushed line by line). The commands, their errors and their
  replies are those of `kv serve` (one command table): Redis's GET SET DEL EXISTS INCR
  MGET MSET EXPIRE TTL KEYS SCAN MULTI/EXEC INFO HELLO ... (HELP lists them all).
  `kv --connect HOST:PORT` runs the same shell against a running server (a `kv serve`,
  or Redis); --pass PASS (or REDISCLI_AUTH) authenticates.
  Replies are printed as redis-cli prints them on a terminal, on a pipe too (what
  `redis-cli --no-raw` prints):
    OK                       a status          (error) ERR ...   an error
    (integer) 2              an integer        (nil)             no value
    \"a\\x00b\"                 a string, quoted  (empty array)     nothing
    1) \"a\"                   an array, numbered; nested arrays indented
    1# \"k\" => \"v\"  1~ \"m\"    a map, a set (RESP3, after HELLO 3)
    (double) 1.5  (true)     RESP3's double and boolean (from another server)
  INFO and CLIENT LIST print their text raw, as in redis-cli; --raw prints every reply as
  `redis-cli --raw` does (strings as their bytes, nothing for nil, elements one a line,
  errors without `(error)`). An error reply keeps the shell going.
  Shell words: HELP lists the commands, HELP <command> shows one's syntax and summary;
  PUT is SET, COMPACT compacts the log and answers once done (BGREWRITEAOF, which
  answers at once and compacts in the background; COMPACT is BGREWRITEAOF with
  --connect), SYNC is
  SAVE (answers once every write is on disk), STATS is INFO store (every figure of the
  store); QUIT answers OK and leaves, EXIT leaves; blank lines and lines starting with #
  get no answer. Ctrl-C while a reply prints cuts it short ((interrupted)) and the shell
  goes on; a second Ctrl-C before the first was taken (a long command that prints
  nothing yet) ends kv with exit code 130, and so does one while the store opens; at
  the prompt Ctrl-C drops the line typed and Ctrl-D leaves. The shell exits 0 at the
  end of its input, even after error replies; 3 when it cannot open the store or reach
  the server, or the connection breaks.

QUOTING
  The shell splits a line as redis-cli does. Words are separated by blanks. In double
  quotes: \\xHH (two hex digits) is that byte, \\n \\r \\t \\b \\a the control characters,
  and a backslash before any other character is that character (\\\" \\\\). In single
  quotes everything is literal but \\', a quote. A quote may open inside a word (ab\"c d\"
  is `abc d`), but a closing quote must end the word. An unbalanced quote makes the line
  `Invalid argument(s)` and the shell goes on. Outside quotes a backslash is an
  ordinary byte. Strings are printed in double quotes with the escapes \\\\ \\\" \\n \\r \\t
  \\a \\b and \\xHH for every other byte that is not printable ASCII (UTF-8 included), so
  every printed string reads back as the same bytes.

KEYS AND VALUES ON THE COMMAND LINE
  get, put, del and scan's --prefix/--from/--to take keys as kv prints them, so a word
  that `kv scan` printed can be passed back (put's value is taken as typed, or as hex):
    kv get 'bin\\x00key'   a bare word, its escapes decoded: \\xHH \\n \\r \\t \\0 \\a \\b
                          \\\" \\' and \\\\ (any other backslash is a usage error)
    kv get '\"a b\"'        a word in double quotes, as kv prints it, is unquoted
    kv get --hex 00ff     --hex: the keys (and put's value) as hex digits, two a byte
  So a backslash is written \\\\, and a key that starts and ends with a quote \\\"...\\\".

OUTPUT FORMATS
  kv get KEY     the value as a word (--raw: the bytes alone, no newline); (nil) and
                 exit code 1 when the key is absent. A word is printed bare when it is
                 printable UTF-8 without blanks, quotes or backslashes that does not start
                 with #, ( or ERR; otherwise in double quotes with the escapes \\\" \\\\ \\n
                 \\r \\t and \\xHH (NUL is \\x00). Every printed word reads back as the
                 same bytes, in the shell too.
  kv del KEY     OK, or (nil) and exit code 1 when the key was absent (nothing written).
  kv scan        one `key value` line per entry, in key order, each a word as above.
  kv export      one JSON object a line, in key order: {\"key\":..,\"value\":..}
                 with JSON strings for UTF-8 keys and values, \"key_b64\"/\"value_b64\"
                 (standard base64) for others, and \"expires_at_ms\" (unix milliseconds)
                 on entries with a deadline. `kv import` reads the same lines.
  kv stats       figures one a line (--json: one JSON object).
  kv verify      what was read and checked, then `OK` or `DAMAGED: <what and where>`.
  kv repair      each skipped or cut range (`skipped ...`), then `salvaged N entries ...`.
  kv bench       a table (--json: one JSON object a line, see `kv bench --help`).
  A command that writes and whose open cuts a torn tail says so on standard error
  (`kv: note: ... cut off the end of ...`); a reading command notes what it left out.
  import, export and compact, and an open that takes over a second, show progress on
  standard error when it is a terminal (never in a pipe or a file).

READING A STORE IN USE
  get, scan, export, stats and verify take no lock and change no byte: they read the store
  as it is at that moment through a private read-only view (so they also work on a
  read-only mount), even while another process (a shell, `kv serve`) has it open, writes
  and compacts it. A record still being written at the end of the log is the end of what
  was written so far: it is left out, with a note on standard error (verify checks again).
  An open that a concurrent compaction disturbs (a file removed under it) is tried again,
  up to 10 times, then fails with a message that says so. Commands that write (put, del,
  import, compact, repair, the shell, serve) need the store to themselves: another process
  holding it is an error. One-shot writes (put, del, import, compact, repair) answer only
  after the store is closed, which syncs it, so only the shell and serve take --durability
  (and --batch-window).

EXIT CODES
  0  success
  1  the key is absent (kv get, kv del)
  2  usage error: unknown command, bad arguments, a bad escape in a key, a line that
     kv import cannot read (the lines before it are imported, as it says), a --dir of
     a cluster node for a command that opens a store, a store's --dir for serve --node-id
  3  runtime error: no store at DIR, the store is open in another process (for a command
     that writes), I/O errors, a store that cannot be opened
  4  kv verify found damage (kv get and the other readers fail with 3 on a damaged store)
  130  the shell ended by Ctrl-C: a second one before the first was taken, or one while
       the store opened";

/// kv: an embedded, durable key-value store, from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "kv",
    version,
    after_help = "`kv --help` documents the shell, the output formats and the exit codes.",
    after_long_help = HELP
)]
pub struct Cli {
    /// The store's directory (its log lives in DIR/wal/) [default: ./kv-data]. Not for
    /// `kv bench`, which works in a scratch directory of its own.
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// The shell's options (with no command): `kv --durability sync` is `kv shell
    /// --durability sync`, and `kv --durability M serve` is `kv serve --durability M`.
    #[command(flatten)]
    pub shell: ShellArgs,

    /// What to do; with none, the shell.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The options of the shell (`kv` alone, or `kv shell`).
#[derive(Debug, Clone, Args)]
pub struct ShellArgs {
    /// When writes are acknowledged.
    #[command(flatten)]
    pub durability: DurabilityArgs,
    /// Run the shell against the Redis-protocol server at HOST:PORT (a `kv serve`, or
    /// Redis itself) instead of the store in --dir.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// The password for --connect (also REDISCLI_AUTH, as redis-cli).
    #[arg(
        long,
        value_name = "PASS",
        env = "REDISCLI_AUTH",
        hide_env_values = true
    )]
    pub pass: Option<String>,
    /// Print replies as `redis-cli --raw` does: strings as their bytes, integers bare,
    /// nothing for nil, elements one a line.
    #[arg(long)]
    pub raw: bool,
}

/// When writes are acknowledged: the options of the shell and of `kv serve`, which either
/// may take before its name too (`kv --durability sync serve`).
#[derive(Debug, Clone, Default, Args)]
pub struct DurabilityArgs {
    /// When writes are acknowledged: `sync` after fdatasync; `batch` once the OS has the
    /// record, synced within --batch-window (5 ms); `none` once the OS has it, synced when
    /// the OS likes. Every mode survives a crash of kv itself. [default: batch] Only the
    /// shell and `kv serve` take it (other subcommands that write are synced before they
    /// answer), and not with --connect (the server has its own).
    #[arg(long, value_enum, value_name = "DURABILITY")]
    pub durability: Option<DurabilityArg>,
    /// With --durability batch: the longest an acknowledged write waits for its fdatasync,
    /// in milliseconds (1 to 3,600,000) [default: 5]. 1000 makes Redis's `appendfsync
    /// everysec` promise; a longer window costs less CPU a write, and loses more writes to
    /// a power failure (never to a crash of kv alone).
    #[arg(long, value_name = "MS", value_parser = batch_window_ms)]
    pub batch_window: Option<Duration>,
}

impl DurabilityArgs {
    /// Whether either option was given.
    pub fn given(&self) -> bool {
        self.durability.is_some() || self.batch_window.is_some()
    }

    /// The store's durability from these options given before the subcommand's name and
    /// `after` it: each option may be given in one place only.
    pub fn mode(&self, after: &DurabilityArgs) -> Result<kv_store::Durability, String> {
        let durability = match (self.durability, after.durability) {
            (Some(_), Some(_)) => return Err("--durability given twice".into()),
            (before, after) => before.or(after).unwrap_or_default(),
        };
        let window = match (self.batch_window, after.batch_window) {
            (Some(_), Some(_)) => return Err("--batch-window given twice".into()),
            (before, after) => before.or(after),
        };
        durability.mode(window)
    }
}

/// The longest `--batch-window`, in ms: the store's own bound on a batch window.
const MAX_BATCH_WINDOW_MS: u64 = kv_store::MAX_BATCH_WINDOW.as_millis() as u64;

/// Parses `--batch-window`: whole milliseconds, more than zero, at most the store's bound.
fn batch_window_ms(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(ms @ 1..=MAX_BATCH_WINDOW_MS) => Ok(Duration::from_millis(ms)),
        Ok(0) => Err("a window of 0 ms syncs every write: that is --durability sync".into()),
        _ => Err(format!(
            "a window in whole milliseconds, from 1 to {MAX_BATCH_WINDOW_MS}"
        )),
    }
}

/// The `--durability` choices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Each write returns after fdatasync.
    Sync,
    /// Each write returns once the OS has it; a background fdatasync within --batch-window
    /// (5 ms by default).
    #[default]
    Batch,
    /// Each write returns once the OS has it; no fdatasync but SYNC and close.
    None,
}

impl DurabilityArg {
    /// The store's durability mode; `window` is `--batch-window`'s, for `Batch` only (the
    /// store's default window, 5 ms, without it).
    pub fn mode(self, window: Option<Duration>) -> Result<kv_store::Durability, String> {
        match (self, window) {
            (DurabilityArg::Batch, Some(window)) => Ok(kv_store::Durability::Batch(window)),
            (DurabilityArg::Batch, None) => Ok(kv_store::Durability::default()),
            (DurabilityArg::Sync, None) => Ok(kv_store::Durability::Sync),
            (DurabilityArg::None, None) => Ok(kv_store::Durability::None),
            (other, Some(_)) => Err(format!(
                "--batch-window is for --durability batch only, not {}",
                other
                    .to_possible_value()
                    .map_or_else(String::new, |v| v.get_name().to_owned())
            )),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read commands one a line (interactive on a terminal); see `kv --help`.
    Shell(ShellArgs),
    /// Print the value of KEY; (nil) and exit code 1 when absent.
    Get {
        /// The key, with escapes (see KEYS AND VALUES in `kv --help`).
        #[arg(allow_hyphen_values = true)]
        key: OsString,
        /// The key is hex digits.
        #[arg(long)]
        hex: bool,
        /// Print the value's bytes alone, unquoted, with no newline.
        #[arg(long)]
        raw: bool,
    },
    /// Set KEY to VALUE; prints OK once it is on disk.
    Put {
        /// The key, with escapes (see KEYS AND VALUES in `kv --help`).
        #[arg(allow_hyphen_values = true)]
        key: OsString,
        /// The value, as typed (no escapes; with --hex, hex digits).
        #[arg(allow_hyphen_values = true)]
        value: OsString,
        /// The key and the value are hex digits.
        #[arg(long)]
        hex: bool,
        /// Expire the entry this many seconds from now.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
    },
    /// Remove KEY; prints OK once it is on disk, or (nil) and exit code 1 when it was absent.
    Del {
        /// The key, with escapes (see KEYS AND VALUES in `kv --help`).
        #[arg(allow_hyphen_values = true)]
        key: OsString,
        /// The key is hex digits.
        #[arg(long)]
        hex: bool,
    },
    /// Print `key value` lines in key order.
    Scan(ScanArgs),
    /// Print every live entry as JSON lines (see `kv --help`).
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the entries of JSON lines as `kv export` prints them, in atomic batches.
    Import {
        /// The file to read; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// Entries per atomic batch.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        batch: u64,
    },
    /// Print the store's figures.
    Stats {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the log down to the live data (a snapshot) and print what it took.
    Compact,
    /// Read and check the whole log without changing a byte; exit code 4 on any damage,
    /// a torn tail included (but not the record another process is writing).
    Verify,
    /// Copy every entry that can still be read into a new store at NEWDIR, skipping damage,
    /// and report what was skipped. The damaged store is not changed.
    Repair {
        /// Where to write the salvaged store: a directory that is missing or empty.
        #[arg(long, value_name = "NEWDIR")]
        to: PathBuf,
    },
    /// Run the workloads of the spec beside the machine's limits.
    Bench(BenchArgs),
    /// Serve the store over the Redis protocol (RESP2/RESP3): any Redis client, redis-cli
    /// and redis-benchmark work against it. Prints `ready: listening on ADDR` once it
    /// accepts connections; SIGTERM or SIGINT stop it cleanly (exit 0).
    Serve(ServeArgs),
    /// Form and inspect a cluster of `kv serve --node-id` nodes (replication on Raft).
    Cluster(ClusterArgs),
}

/// `kv cluster`: a subcommand, and how to reach the nodes.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
    /// The nodes' --requirepass, sent with AUTH (also KV_REQUIREPASS).
    #[arg(
        long,
        global = true,
        value_name = "PASS",
        env = "KV_REQUIREPASS",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

/// `kv cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Asks each node (client addresses, HOST:PORT) for its id and Raft address and forms
    /// the cluster of them all, as voters. Run once: a second run is refused.
    Init {
        /// The client address of every node.
        #[arg(required = true, num_args = 1.., value_name = "ADDR")]
        addrs: Vec<String>,
    },
    /// Prints a node's `INFO replication`: its role, the leader, the term, the commit and
    /// applied indexes, the membership (`member_ID:kind=voter|learner,client=..,raft=..`).
    Status {
        /// The client address of any node.
        addr: String,
        /// One JSON object: id, role, initialized, leader_id, leader_addr, term,
        /// commit_index, applied_index, last_log_index, and members (id, kind, client, raft).
        #[arg(long)]
        json: bool,
    },
    /// Adds the node at NEW (a `kv serve --node-id` with an empty directory, client address)
    /// to the cluster of MEMBER: as a learner, then, once it has caught up with the log, as
    /// a voter. Run again after a failure, it resumes.
    Add {
        /// The client address of any member (a follower forwards the change to the leader).
        #[arg(value_name = "MEMBER")]
        member: String,
        /// The client address of the new node.
        #[arg(value_name = "NEW")]
        new: String,
    },
    /// Removes node NODE-ID from the cluster of MEMBER (the leader too: it hands leadership
    /// over). The last voter cannot be removed.
    Remove {
        /// The client address of any member.
        #[arg(value_name = "MEMBER")]
        member: String,
        /// The id of the node to remove.
        #[arg(value_name = "NODE-ID")]
        node_id: u64,
    },
}

/// Where the store is when `--dir` is not given.
pub const DEFAULT_DIR: &str = "./kv-data";

impl Command {
    /// The subcommand's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Shell(_) => "shell",
            Command::Get { .. } => "get",
            Command::Put { .. } => "put",
            Command::Del { .. } => "del",
            Command::Scan(_) => "scan",
            Command::Export { .. } => "export",
            Command::Import { .. } => "import",
            Command::Stats { .. } => "stats",
            Command::Compact => "compact",
            Command::Verify => "verify",
            Command::Repair { .. } => "repair",
            Command::Bench(_) => "bench",
            Command::Serve(_) => "serve",
            Command::Cluster(_) => "cluster",
        }
    }
}

/// `kv serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// When writes are acknowledged.
    #[command(flatten)]
    pub durability: DurabilityArgs,
    /// The address to listen on, IP:PORT or HOST:PORT (port 0: any free port, shown in the
    /// ready line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6379", value_parser = socket_addr)]
    pub bind: std::net::SocketAddr,
    /// The password clients must give with AUTH (also KV_REQUIREPASS).
    #[arg(
        long,
        value_name = "PASS",
        env = "KV_REQUIREPASS",
        hide_env_values = true
    )]
    pub requirepass: Option<String>,
    /// Connections served at once; past it, `-ERR max number of clients reached`.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub maxclients: u64,
    /// Close a connection idle this many seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub timeout: u64,
    /// Close a connection whose unsent replies reach this many bytes: a client that does
    /// not read its replies (Redis's client-output-buffer-limit).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub output_limit: u64,
    /// Close a connection whose client takes none of its replies' bytes for this many
    /// seconds (or for --timeout's, if that is shorter).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout: u64,
    /// Serve as node N of a replicated cluster (Raft): the id is stored in the directory at
    /// the first start, and a later start with another id is refused. Without it, `kv
    /// serve` is the single-node server.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub node_id: Option<u64>,
    /// Where a node's Raft service listens [default: the --bind address's IP, its port +
    /// 10000].
    #[arg(long, value_name = "ADDR", requires = "node_id", value_parser = socket_addr)]
    pub raft_bind: Option<std::net::SocketAddr>,
    /// The secret every node of the cluster sends with, and requires of, each Raft request
    /// (also KV_CLUSTER_SECRET) [default: the --requirepass password]. A Raft address that
    /// is not loopback needs one (unless --protected-mode no).
    #[arg(
        long,
        value_name = "SECRET",
        env = "KV_CLUSTER_SECRET",
        hide_env_values = true,
        requires = "node_id"
    )]
    pub cluster_secret: Option<String>,
    /// How long a node's write waits for a majority of the voters to take it (and a
    /// linearizable read for a majority to confirm the leader) before the client is answered
    /// `-CLUSTERDOWN` (for a write: it may or may not have been applied).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), requires = "node_id")]
    pub commit_timeout: u64,
    /// A node takes a snapshot of its store, and purges its Raft log up to it, once the log
    /// holds this many bytes and at least as many as the store's live data.
    #[arg(long, value_name = "BYTES", default_value_t = kv_raft::SNAPSHOT_LOG_BYTES, value_parser = clap::value_parser!(u64).range(1..), requires = "node_id")]
    pub snapshot_log_bytes: u64,
    /// `no` allows a non-loopback --bind without --requirepass, as Redis's protected mode.
    #[arg(long, value_name = "yes|no", default_value = "yes", value_parser = ["yes", "no"])]
    pub protected_mode: String,
    /// Threads that read, parse and answer connections (writes that wait for an fsync are
    /// committed on one writer thread besides) [default: half the cores, at least one; with
    /// --node-id, one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
}

/// `kv scan` options. The range is [--from, --to), intersected with --prefix; each is a key
/// with escapes (see KEYS AND VALUES in `kv --help`).
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Only keys starting with this.
    #[arg(long, allow_hyphen_values = true)]
    pub prefix: Option<OsString>,
    /// Only keys at or after this.
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<OsString>,
    /// Only keys before this (exclusive).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<OsString>,
    /// --prefix, --from and --to are hex digits.
    #[arg(long)]
    pub hex: bool,
    /// At most this many entries.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `kv bench` options.
#[derive(Debug, Args)]
#[command(after_long_help = crate::bench::HELP)]
pub struct BenchArgs {
    /// Workloads to run (W1..W8, repeatable or comma-separated); all by default.
    #[arg(long, value_delimiter = ',', value_name = "W")]
    pub workload: Vec<String>,
    /// Threads for the workloads that vary them (W1, W2, W3, W8); the spec's counts by
    /// default. W6 always runs 4.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// One JSON object a line instead of a table; no progress bar.
    #[arg(long)]
    pub json: bool,
    /// Every workload 100 times smaller, for a run of seconds (also KV_BENCH_QUICK=1).
    #[arg(long)]
    pub quick: bool,
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` resolved to its first address (as
/// Redis's `bind` takes `localhost`).
fn socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let resolved: Vec<std::net::SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("not IP:PORT, and cannot be resolved as HOST:PORT: {e}"))?
        .collect();
    // IPv4 first, as Redis resolves a bind name: `localhost` is 127.0.0.1, which clients
    // try first, even where it also resolves to ::1.
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::socket_addr;

    #[test]
    fn a_listen_address_is_an_ip_or_a_host_name_with_a_port() {
        assert_eq!(
            socket_addr("127.0.0.1:6379").unwrap(),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(socket_addr("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        let local = socket_addr("localhost:7001").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 7001, "{local}");
        assert_eq!(local.ip(), std::net::Ipv4Addr::LOCALHOST, "IPv4 first");
        assert!(socket_addr("localhost").is_err(), "a port is needed");
    }
}
