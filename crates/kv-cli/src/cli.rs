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
  answers each line at once (output flushed line by line):
    PUT key value [EX seconds]  OK     the write is acknowledged under --durability
    GET key                     the value, or (nil) when the key is absent or expired
    DEL key                     OK     (an absent key is no error)
    SCAN [prefix] [LIMIT n]     one `key value` line per entry in key order, then (end)
    STATS                       one line of name=value figures
    COMPACT                     OK once the log is rewritten as a snapshot of the live data
    SYNC                        OK once every write so far is on disk
    HELP                        one line listing the commands
    QUIT | EXIT                 OK once the store is closed; then the shell ends
  A line that fails answers `ERR <message>` (one line) and the shell goes on. Commands and
  the keywords EX and LIMIT are case-insensitive; blank lines and lines starting with #
  get no answer. The shell exits 0 at the end of its input, even after ERR answers.

QUOTING
  Words are separated by spaces or tabs. A word in double quotes holds anything, with the
  escapes \\\" \\\\ \\n \\r \\t \\0 and \\xHH (any byte). Outside quotes a backslash is an
  ordinary byte. kv prints a key or value bare when it is printable UTF-8 without spaces,
  quotes or backslashes that does not start with #, ( or ERR; otherwise in double quotes
  with those escapes. Every printed word reads back as the same bytes.

OUTPUT FORMATS
  kv get KEY     the value as the shell prints it (--raw: the bytes alone, no newline);
                 (nil) and exit code 1 when the key is absent.
  kv scan        the shell's `key value` lines, without the closing (end) line.
  kv export      one JSON object a line, in key order: {\"key\":..,\"value\":..}
                 with JSON strings for UTF-8 keys and values, \"key_b64\"/\"value_b64\"
                 (standard base64) for others, and \"expires_at_ms\" (unix milliseconds)
                 on entries with a deadline. `kv import` reads the same lines.
  kv stats       figures one a line (--json: one JSON object).
  kv verify      what was read and checked, then `OK` or `DAMAGED: <what and where>`.
  kv repair      each skipped or cut range (`skipped ...`), then `salvaged N entries ...`.
  Any command whose open cuts a torn tail says so on standard error (`kv: note: ...`).
  Commands that only read (get, scan, export, stats) work on a read-only mount.
  kv bench       a table (--json: one JSON object a line, see `kv bench --help`).

EXIT CODES
  0  success
  1  runtime error: no store at DIR, the store is open in another process, a damaged
     log (kv verify), I/O errors, and `kv get` of an absent key
  2  usage error: unknown command, bad arguments";

/// kv: an embedded, durable key-value store, from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "kv",
    version,
    after_help = "`kv --help` documents the shell, the output formats and the exit codes.",
    after_long_help = HELP
)]
pub struct Cli {
    /// The store's directory (its log lives in DIR/wal/).
    #[arg(long, global = true, value_name = "DIR", default_value = "./kv-data")]
    pub dir: PathBuf,

    /// When writes are acknowledged: `sync` after fdatasync; `batch` once the OS has the
    /// record, synced within 5 ms; `none` once the OS has it, synced when the OS likes.
    /// Every mode survives a crash of kv itself.
    #[arg(long, global = true, value_enum, default_value_t = DurabilityArg::Batch)]
    pub durability: DurabilityArg,

    /// What to do; with none, the shell.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The `--durability` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Each write returns after fdatasync.
    Sync,
    /// Each write returns once the OS has it; a background fdatasync within 5 ms.
    Batch,
    /// Each write returns once the OS has it; no fdatasync but SYNC and close.
    None,
}

impl DurabilityArg {
    /// The store's durability mode.
    pub fn mode(self) -> kv_store::Durability {
        match self {
            DurabilityArg::Sync => kv_store::Durability::Sync,
            DurabilityArg::Batch => kv_store::Durability::Batch(Duration::from_millis(5)),
            DurabilityArg::None => kv_store::Durability::None,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read commands one a line (interactive on a terminal); see `kv --help`.
    Shell,
    /// Print the value of KEY; (nil) and exit code 1 when absent.
    Get {
        /// The key (its bytes as given).
        #[arg(allow_hyphen_values = true)]
        key: OsString,
        /// Print the value's bytes alone, unquoted, with no newline.
        #[arg(long)]
        raw: bool,
    },
    /// Set KEY to VALUE.
    Put {
        /// The key (its bytes as given).
        #[arg(allow_hyphen_values = true)]
        key: OsString,
        /// The value (its bytes as given).
        #[arg(allow_hyphen_values = true)]
        value: OsString,
        /// Expire the entry this many seconds from now.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
    },
    /// Remove KEY (an absent key is no error).
    Del {
        /// The key (its bytes as given).
        #[arg(allow_hyphen_values = true)]
        key: OsString,
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
    /// Read and check the whole log without changing a byte; exit code 1 on any damage,
    /// a torn tail included.
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
}

/// `kv serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port, shown in the ready line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6379")]
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
    /// seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout: u64,
    /// `no` allows a non-loopback --bind without --requirepass, as Redis's protected mode.
    #[arg(long, value_name = "yes|no", default_value = "yes", value_parser = ["yes", "no"])]
    pub protected_mode: String,
}

/// `kv scan` options. The range is [--from, --to), intersected with --prefix.
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
