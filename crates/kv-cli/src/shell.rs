//! The shell: commands one a line, each answered at once. Interactive (line editing and
//! history, through rustyline) when standard input is a terminal, a plain line reader
//! otherwise, so scripts can drive it through pipes.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use kv_store::{Durability, KvStore};

use crate::commands::write_pair;
use crate::failure::{describe, Failure, Outcome};
use crate::{open, stats};
use kv_cli::output;
use kv_cli::parse::{parse_line, Command, USAGE};

/// Whether the shell goes on after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// `QUIT` or `EXIT`: close the store, answer, stop.
    Quit,
}

/// Runs the shell on the store in `dir` (created if needed) until the end of the input or
/// `QUIT`; then closes the store.
pub fn run(dir: &Path, durability: Durability) -> Outcome {
    let store = open::create(dir, durability)?;
    let stdout = io::stdout();
    let result = if io::stdin().is_terminal() {
        interactive(&store, dir)
    } else {
        piped(&store, &mut stdout.lock())
    };
    let flow = match result {
        Ok(flow) => flow,
        // The reader of the answers went away: there is no one left to answer.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Flow::Continue,
        Err(e) => {
            let _ = store.close();
            return Err(Failure::runtime(e));
        }
    };
    let closed = store.close();
    if flow == Flow::Quit {
        let mut out = stdout.lock();
        let _ = match &closed {
            Ok(()) => writeln!(out, "OK"),
            Err(e) => writeln!(out, "ERR {}", output::one_line(&describe(e))),
        };
        let _ = out.flush();
    }
    closed.map_err(Failure::from)
}

/// Reads lines from standard input until its end or `QUIT`, answering each at once.
fn piped(store: &KvStore, out: &mut impl Write) -> io::Result<Flow> {
    let mut input = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(Flow::Continue);
        }
        let flow = execute(store, &line, out)?;
        out.flush()?;
        if flow == Flow::Quit {
            return Ok(flow);
        }
    }
}

/// The interactive shell: a prompt, line editing, history in `~/.kv_history`.
fn interactive(store: &KvStore, dir: &Path) -> io::Result<Flow> {
    let mut editor = rustyline::DefaultEditor::new().map_err(io::Error::other)?;
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "kv shell on {} ({} keys). HELP lists the commands; QUIT or Ctrl-D leaves.",
        dir.display(),
        store.len()
    );
    let mut out = io::stdout().lock();
    let flow = loop {
        match editor.readline("kv> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let flow = execute(store, line.as_bytes(), &mut out)?;
                out.flush()?;
                if flow == Flow::Quit {
                    break flow;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break Flow::Continue,
            Err(e) => return Err(io::Error::other(e)),
        }
    };
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(flow)
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kv_history"))
}

/// Parses and runs one line, writing its answer (nothing for a blank line or a comment).
fn execute(store: &KvStore, line: &[u8], out: &mut impl Write) -> io::Result<Flow> {
    let command = match parse_line(line) {
        Ok(Some(command)) => command,
        Ok(None) => return Ok(Flow::Continue),
        Err(e) => {
            error(out, &e)?;
            return Ok(Flow::Continue);
        }
    };
    match command {
        Command::Put { key, value, ttl } => {
            let written = match ttl {
                Some(ttl) => store.put_with_ttl(key, value, ttl),
                None => store.put(key, value),
            };
            ok_or_error(out, written)?;
        }
        Command::Get { key } => match store.get(&key) {
            Some(value) => writeln!(out, "{}", output::word(&value))?,
            None => writeln!(out, "{}", output::NIL)?,
        },
        Command::Del { key } => ok_or_error(out, store.delete(key))?,
        Command::Scan { prefix, limit } => scan(store, prefix, limit, out)?,
        Command::Stats => writeln!(out, "{}", stats::line(&store.stats()))?,
        Command::Compact => ok_or_error(out, store.compact().map(drop))?,
        Command::Sync => ok_or_error(out, store.sync())?,
        Command::Help => writeln!(out, "commands: {USAGE}")?,
        Command::Quit => return Ok(Flow::Quit),
    }
    Ok(Flow::Continue)
}

/// `SCAN`: the pairs, then the `(end)` line.
fn scan(
    store: &KvStore,
    prefix: Option<Vec<u8>>,
    limit: Option<usize>,
    out: &mut impl Write,
) -> io::Result<()> {
    let entries = match &prefix {
        Some(prefix) => store.scan_prefix(prefix),
        None => store.range::<&[u8]>(..),
    };
    match entries {
        Ok(entries) => {
            for (key, value) in entries.take(limit.unwrap_or(usize::MAX)) {
                write_pair(out, &key, &value)?;
            }
            writeln!(out, "{}", output::END)
        }
        Err(e) => error(out, &describe(&e)),
    }
}

fn ok_or_error(out: &mut impl Write, result: Result<(), kv_store::Error>) -> io::Result<()> {
    match result {
        Ok(()) => writeln!(out, "OK"),
        Err(e) => error(out, &describe(&e)),
    }
}

fn error(out: &mut impl Write, e: &dyn std::fmt::Display) -> io::Result<()> {
    writeln!(out, "ERR {}", output::one_line(&e.to_string()))
}
