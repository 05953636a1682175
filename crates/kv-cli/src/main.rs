//! `kv`, the command-line tool of the store: a shell that answers one command a line (for
//! people on a terminal and for scripts through pipes), one-shot subcommands (`get`, `put`,
//! `del`, `scan`, `export`, `import`, `stats`, `compact`), `verify`, which checks a log
//! without changing it, `repair`, which salvages a damaged store into a new one, `bench`, which runs the workloads of the project's spec beside
//! the machine's own limits, and `serve`, which serves the store over the Redis protocol
//! (the `kv-server` crate).
//!
//! Every command opens the store in `--dir` (default `./kv-data`) with the ordered index, so
//! scans work on any store (the index lives in memory only). Commands that only read refuse
//! a directory without a store instead of creating one. `kv --help` documents the shell's
//! protocol, the quoting rules, every output format and the exit codes (0 success, 1 runtime
//! error, 2 usage error).
//!
//! Modules: [`cli`] (arguments), [`shell`] (kv-server's commands through
//! `Session::local`, or a server's through [`remote`]; lines split and replies printed as
//! redis-cli does by the library's `line` and `print`; Ctrl-C through [`interrupt`]),
//! [`commands`] (single-entry subcommands),
//! [`export`] (JSON lines out and in), [`stats`], [`verify`] with [`readonly_fs`],
//! [`repair`] and the read-only opens of [`open`] with [`view_fs`],
//! [`bench`](mod@bench), and [`serve`].

#![forbid(unsafe_code)]

mod bench;
mod cli;
mod commands;
mod export;
mod failure;
mod interrupt;
mod open;
mod readonly_fs;
mod remote;
mod repair;
mod serve;
mod shell;
mod stats;
mod verify;
mod view_fs;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::failure::{Failure, Outcome};

fn main() {
    let cli = Cli::parse();
    if let Err(failure) = run(cli) {
        match &failure {
            Failure::Usage(message) | Failure::Runtime(message) => {
                eprintln!("kv: {}", kv_cli::output::one_line(message))
            }
            Failure::Missing => {}
        }
        std::process::exit(failure.exit_code());
    }
}

fn run(cli: Cli) -> Outcome {
    let dir = cli.dir.as_path();
    let durability = cli.durability.mode();
    match cli.command {
        None => shell::run(dir, durability, cli.shell),
        // (Not --pass: REDISCLI_AUTH in the environment sets it for every command.)
        Some(_) if cli.shell.connect.is_some() || cli.shell.raw => Err(Failure::Usage(
            "--connect and --raw are options of the shell only (`kv --connect HOST:PORT`)".into(),
        )),
        Some(Command::Shell(args)) => shell::run(dir, durability, args),
        Some(Command::Get { key, raw }) => commands::get(dir, durability, &key, raw),
        Some(Command::Put { key, value, ttl }) => commands::put(dir, durability, &key, &value, ttl),
        Some(Command::Del { key }) => commands::del(dir, durability, &key),
        Some(Command::Scan(args)) => commands::scan(dir, durability, &args),
        Some(Command::Export { output }) => export::export(dir, durability, output.as_deref()),
        Some(Command::Import { file, batch }) => {
            export::import(dir, durability, file.as_deref(), batch)
        }
        Some(Command::Stats { json }) => commands::stats(dir, durability, json),
        Some(Command::Compact) => commands::compact(dir, durability),
        Some(Command::Verify) => verify::verify(dir),
        Some(Command::Repair { to }) => repair::repair(dir, &to, durability),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Serve(args)) => serve::run(dir, durability, &args),
    }
}
