//! `kv`, the command-line tool of the store: a shell that answers one command a line (for
//! people on a terminal and for scripts through pipes), one-shot subcommands (`get`, `put`,
//! `del`, `scan`, `export`, `import`, `stats`, `compact`), `verify`, which checks a log
//! without changing it, `repair`, which salvages a damaged store into a new one, `bench`,
//! which runs the workloads of the project's spec beside the machine's own limits, and
//! `serve`, which serves the store over the Redis protocol (the `kv-server` crate), or with `--node-id N` serves node N of a replicated cluster,
//! which `cluster` forms, changes (`init`, `add`, `remove`) and shows (`status`) through the
//! nodes' Redis-protocol ports.
//!
//! A single-node store (`wal/`) and a node's state (`node-id`, `raft/`, `sm/`) never share
//! a directory: `serve --node-id` refuses a directory holding a store, and `serve` without
//! it, the shell and every subcommand that opens a store refuse a node's directory (exit 2),
//! rather than start an empty one beside the other and hide its data.
//!
//! Every command opens the store in `--dir` (default `./kv-data`) with the ordered index, so
//! scans work on any store (the index lives in memory only). Commands that only read refuse
//! a directory without a store instead of creating one, and read it through a private
//! read-only view that takes no lock, so they work while another process writes it.
//! `kv --help` documents the shell's protocol, the quoting rules, every output format and
//! the exit codes (0 success, 1 absent key, 2 usage error, 3 runtime error, 4 damage found).
//!
//! Modules: [`cli`] (arguments), [`shell`] (kv-server's commands through
//! `Session::local`, or a server's through [`remote`]; lines split and replies printed as
//! redis-cli does by the library's `line` and `print`; Ctrl-C through [`interrupt`]),
//! [`commands`] (single-entry subcommands), [`key_arg`] (keys on the command line),
//! [`export`] (JSON lines out and in), [`stats`], [`verify`] with [`readonly_fs`],
//! [`repair`] and the read-only opens of [`open`] with [`view_fs`] and [`settle`] (reading
//! a store another process is writing), [`progress`],
//! [`bench`](mod@bench), [`serve`] and [`cluster`].

#![forbid(unsafe_code)]

mod bench;
mod cli;
mod cluster;
mod commands;
mod export;
mod failure;
mod interrupt;
mod key_arg;
mod open;
mod progress;
mod readonly_fs;
mod remote;
mod repair;
mod serve;
mod settle;
mod shell;
mod stats;
mod verify;
mod view_fs;

use clap::Parser;

use std::path::Path;

use crate::cli::{Cli, Command, DurabilityArgs, ShellArgs, DEFAULT_DIR};
use crate::failure::{Failure, Outcome};
use crate::key_arg::Encoding;

fn main() {
    let cli = Cli::parse();
    if let Err(failure) = run(cli) {
        match &failure {
            Failure::Usage(message) | Failure::Runtime(message) | Failure::Damaged(message) => {
                eprintln!("kv: {}", kv_cli::output::one_line(message))
            }
            // Said where it happened (`kv: interrupted`).
            Failure::Missing | Failure::Interrupted => {}
        }
        std::process::exit(failure.exit_code());
    }
}

fn run(cli: Cli) -> Outcome {
    if let (Some(_), Some(Command::Bench(_))) = (&cli.dir, &cli.command) {
        return Err(Failure::Usage(
            "kv bench takes no --dir: it works in a scratch directory of its own, under the \
             current directory (or $TMPDIR), and removes it"
                .into(),
        ));
    }
    let dir = cli.dir.as_deref().unwrap_or(Path::new(DEFAULT_DIR));
    if let (true, Some(command)) = (
        cli.shell.durability.given(),
        cli.command
            .as_ref()
            .filter(|c| !matches!(c, Command::Shell(_) | Command::Serve(_))),
    ) {
        return Err(Failure::Usage(format!(
            "--durability and --batch-window are options of the shell and of `kv serve` \
             only; `kv {}` takes neither (commands that only read write nothing, and \
             one-shot writes are synced before they answer)",
            command.name()
        )));
    }
    match cli.command {
        None => shell::run(dir, shell_durability(&cli.shell, None)?, cli.shell),
        // (Not --pass: REDISCLI_AUTH in the environment sets it for every command.)
        Some(_) if cli.shell.connect.is_some() || cli.shell.raw => Err(Failure::Usage(
            "--connect and --raw are options of the shell only (`kv --connect HOST:PORT`)".into(),
        )),
        Some(Command::Shell(args)) => {
            let durability = shell_durability(&cli.shell, Some(&args))?;
            shell::run(dir, durability, args)
        }
        Some(Command::Get { key, hex, raw }) => {
            commands::get(dir, &key, Encoding::hex_if(hex), raw)
        }
        Some(Command::Put {
            key,
            value,
            hex,
            ttl,
        }) => commands::put(dir, &key, &value, Encoding::hex_if(hex), ttl),
        Some(Command::Del { key, hex }) => commands::del(dir, &key, Encoding::hex_if(hex)),
        Some(Command::Scan(args)) => commands::scan(dir, &args),
        Some(Command::Export { output }) => export::export(dir, output.as_deref()),
        Some(Command::Import { file, batch }) => export::import(dir, file.as_deref(), batch),
        Some(Command::Stats { json }) => commands::stats(dir, json),
        Some(Command::Compact) => commands::compact(dir),
        Some(Command::Verify) => verify::verify(dir),
        Some(Command::Repair { to }) => repair::repair(dir, &to),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Cluster(command)) => cluster::run(&command),
        Some(Command::Serve(args)) => {
            let durability = cli.shell.durability.mode(&args.durability);
            serve::run(dir, durability.map_err(Failure::Usage)?, &args)
        }
    }
}

/// The shell's durability (`after`: `kv shell`'s own options). None may be given with
/// --connect: the server it reaches has its own.
fn shell_durability(
    before: &ShellArgs,
    after: Option<&ShellArgs>,
) -> Outcome<kv_store::Durability> {
    let shells = || std::iter::once(before).chain(after);
    if shells().any(|s| s.connect.is_some()) && shells().any(|s| s.durability.given()) {
        return Err(Failure::Usage(
            "--durability and --batch-window are for a store the shell opens, not with \
             --connect: the server it reaches has its own"
                .into(),
        ));
    }
    let none = DurabilityArgs::default();
    let after = after.map_or(&none, |a| &a.durability);
    before.durability.mode(after).map_err(Failure::Usage)
}
