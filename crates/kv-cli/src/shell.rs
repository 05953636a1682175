//! The shell: one command a line, answered at once, in the language of `kv serve` (one
//! command table, parser and executor: [`kv_server::Session::local`]), with lines split
//! as redis-cli splits them ([`kv_cli::line`]) and replies printed as redis-cli prints
//! them on a terminal ([`kv_cli::print`]). `kv --connect HOST:PORT` runs the same shell
//! against a running server ([`Remote`]). Interactive (line editing and history, through
//! rustyline) when standard input is a terminal, a plain line reader otherwise, so scripts
//! can drive it through pipes; both print the same.

use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use kv_server::bytes::Bytes;
use kv_server::{docs, Protocol, Reply, Session};
use kv_store::{Durability, KvStore};

use crate::cli::ShellArgs;
use crate::failure::{Failure, Outcome};
use crate::interrupt::Interrupt;
use crate::open;
use crate::remote::Remote;
use kv_cli::line;
use kv_cli::print::{self, Printed};

/// Where the shell's commands run.
enum Backend {
    /// In this process, on the store in `--dir`; `closed` once `QUIT` closed it.
    Local {
        session: Session,
        store: KvStore,
        closed: bool,
    },
    /// On a server, through a connection.
    Remote(Remote),
}

impl Backend {
    /// Runs one request (name first); an error that is no reply (the connection broke) as
    /// text.
    fn request(&mut self, args: &[Bytes]) -> Result<Reply, String> {
        match self {
            Backend::Local {
                session,
                store,
                closed,
            } => {
                let mut reply = session.handle(args);
                if session.is_closing() && !*closed {
                    // QUIT answers once the store is closed (synced), as the first shell
                    // did: its OK says every write is on disk, under any durability.
                    *closed = true;
                    if let Err(e) = store.close() {
                        reply = Reply::error(format!("ERR {}", crate::failure::describe(&e)));
                    }
                }
                // As the server would encode it: a RESP2 client sees no map.
                Ok(match session.protocol() {
                    Protocol::Resp2 => reply.into_resp2(),
                    Protocol::Resp3 => reply,
                })
            }
            Backend::Remote(remote) => {
                if let Some(refusal) = Remote::refuses(args) {
                    return Ok(Reply::error(refusal));
                }
                remote.request(args)
            }
        }
    }

    /// Whether the last request was `QUIT`.
    fn closing(&self) -> bool {
        match self {
            Backend::Local { session, .. } => session.is_closing(),
            Backend::Remote(_) => false,
        }
    }

    /// The prompt of the interactive shell.
    fn prompt(&self) -> String {
        match self {
            Backend::Local { .. } => "kv> ".into(),
            Backend::Remote(remote) => format!("{}> ", remote.address()),
        }
    }
}

/// Whether the shell goes on after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// `QUIT` or `EXIT`.
    Stop,
}

/// The shell's own names for server commands: `PUT` from the shell's first language, and
/// its maintenance words, which Redis spells otherwise.
const ALIASES: &[(&str, &[&str])] = &[
    ("put", &["set"]),
    ("compact", &["bgrewriteaof"]),
    ("sync", &["save"]),
    ("stats", &["info", "store"]),
];

/// A running shell.
struct Shell {
    backend: Backend,
    interrupt: Interrupt,
    /// `--raw`: replies printed as `redis-cli --raw` prints them.
    raw: bool,
}

/// Runs the shell on the store in `dir` (created if needed), or on the server at
/// `args.connect`, until the end of the input, `QUIT` or `EXIT`; then closes the store.
pub fn run(dir: &Path, durability: Durability, args: ShellArgs) -> Outcome {
    let interrupt = Interrupt::catch()?;
    let backend = match &args.connect {
        Some(address) => Backend::Remote(Remote::connect(address, args.pass)?),
        None => {
            let store = open::create(dir, durability)?;
            if interrupt.take() {
                // Ctrl-C during the open, which prints nothing it could cut: the user
                // wants out before any command ran. The store is closed as at the end.
                eprintln!("kv: interrupted");
                store.close()?;
                return Err(Failure::Interrupted);
            }
            interrupt.sync_on_exit(store.clone());
            Backend::Local {
                session: Session::local(store.clone()),
                store,
                closed: false,
            }
        }
    };
    let mut shell = Shell {
        backend,
        interrupt,
        raw: args.raw,
    };
    let result = if io::stdin().is_terminal() {
        interactive(&mut shell, dir)
    } else {
        piped(&mut shell)
    };
    let result = match result {
        // The reader of the answers went away: there is no one left to answer.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    };
    let closed = match shell.backend {
        Backend::Local {
            session,
            store,
            closed: false,
        } => {
            drop(session);
            store.close().map_err(Failure::from)
        }
        _ => Ok(()),
    };
    match (result, closed) {
        (Ok(()), closed) => closed,
        (Err(e), Ok(())) => Err(Failure::runtime(e)),
        (Err(e), Err(Failure::Runtime(close))) => Err(Failure::Runtime(format!(
            "{e}; closing the store failed too: {close}"
        ))),
        (Err(_), Err(close)) => Err(close),
    }
}

/// Reads lines from standard input until its end, `QUIT` or `EXIT`, answering each at once.
fn piped(shell: &mut Shell) -> io::Result<()> {
    let mut input = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let flow = answer(shell, &line, &mut out)?;
        out.flush()?;
        if flow == Flow::Stop {
            return Ok(());
        }
    }
}

/// The interactive shell: a prompt, line editing, history in `~/.kv_history`.
fn interactive(shell: &mut Shell, dir: &Path) -> io::Result<()> {
    let mut editor = rustyline::DefaultEditor::new().map_err(io::Error::other)?;
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let on = match &shell.backend {
        Backend::Local { store, .. } => format!("{} ({} keys)", dir.display(), store.len()),
        Backend::Remote(remote) => remote.address().to_string(),
    };
    println!("kv shell on {on}. HELP lists the commands; QUIT, EXIT or Ctrl-D leaves.");
    let prompt = shell.backend.prompt();
    let mut out = BufWriter::new(io::stdout());
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let flow = answer(shell, line.as_bytes(), &mut out)?;
                out.flush()?;
                if flow == Flow::Stop {
                    break;
                }
            }
            // Ctrl-C at the prompt drops the line being typed, as in a Unix shell.
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            // A byte that is not UTF-8 typed at the prompt: that line is lost, not the
            // shell (piped input takes any bytes).
            Err(rustyline::error::ReadlineError::Io(e))
                if e.kind() == io::ErrorKind::InvalidData =>
            {
                writeln!(out, "(error) the line typed is not UTF-8; use \\xHH in double quotes for such bytes")?;
                out.flush()?;
            }
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kv_history"))
}

/// Splits and runs one line, printing its reply (nothing for a blank line or a comment).
fn answer(shell: &mut Shell, line: &[u8], out: &mut impl Write) -> io::Result<Flow> {
    if line.trim_ascii_start().starts_with(b"#") {
        return Ok(Flow::Continue);
    }
    let mut args = match line::split(line) {
        Ok(args) if args.is_empty() => return Ok(Flow::Continue),
        Ok(args) => args,
        Err(e) => {
            writeln!(out, "{e}")?;
            return Ok(Flow::Continue);
        }
    };
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match name.as_str() {
        "help" => {
            help(out, &args[1..])?;
            return Ok(Flow::Continue);
        }
        "exit" if args.len() == 1 => return Ok(Flow::Stop),
        // The shell's COMPACT answers once the compaction is done (BGREWRITEAOF, which a
        // server answers at once, runs it in the background).
        "compact" if args.len() == 1 => {
            if let Backend::Local { store, .. } = &shell.backend {
                match store.compact() {
                    Ok(_) => writeln!(out, "OK")?,
                    Err(e) => writeln!(
                        out,
                        "(error) ERR {}",
                        kv_cli::output::one_line(&crate::failure::describe(&e))
                    )?,
                }
                return Ok(Flow::Continue);
            }
        }
        _ => {}
    }
    if let Some((_, words)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        args.splice(..1, words.iter().map(|w| w.as_bytes().to_vec()));
    }
    let quit = name == "quit";
    let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
    shell.interrupt.clear();
    let reply = match shell.backend.request(&args) {
        Ok(reply) => reply,
        Err(broken) => {
            return Err(io::Error::other(format!("the connection broke: {broken}")));
        }
    };
    let stop = &mut || shell.interrupt.take();
    let printed = if print::prints_raw(&args) {
        // Reports (INFO, CLIENT LIST) bring their own line ends.
        print::print_raw(out, &reply, stop)?
    } else if shell.raw {
        let printed = print::print_raw(out, &reply, stop)?;
        writeln!(out)?;
        printed
    } else {
        print::print(out, &reply, stop)?
    };
    if printed == Printed::Cut {
        writeln!(out, "(interrupted)")?;
    }
    if shell.backend.closing() || (quit && !reply.is_error()) {
        return Ok(Flow::Stop);
    }
    Ok(Flow::Continue)
}

/// `HELP`: every command's syntax; `HELP command`: its syntax, summary and group.
fn help(out: &mut impl Write, topic: &[Vec<u8>]) -> io::Result<()> {
    if topic.is_empty() {
        writeln!(
            out,
            "Commands of kv (the same as `kv serve`'s); HELP <command> for one of them:"
        )?;
        for doc in docs::DOCS {
            writeln!(out, "  {}", doc.syntax())?;
        }
        writeln!(
            out,
            "Shell words: PUT = SET, COMPACT (BGREWRITEAOF, answered once done), SYNC = SAVE, \
             STATS = INFO store; \
             EXIT or QUIT leaves."
        )?;
        return Ok(());
    }
    let words: Vec<String> = topic
        .iter()
        .map(|w| String::from_utf8_lossy(w).to_ascii_lowercase())
        .collect();
    let alias = ALIASES.iter().find(|(alias, _)| *alias == words[0]);
    let name = alias.map_or(words[0].as_str(), |(_, command)| command[0]);
    let wanted = std::iter::once(name)
        .chain(words[1..].iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let found = docs::lookup(&wanted).or_else(|| docs::lookup(name));
    match found {
        Some(doc) => {
            writeln!(out)?;
            writeln!(out, "  {}", doc.syntax())?;
            writeln!(out, "  summary: {}", doc.summary)?;
            writeln!(out, "  group: {}", doc.group)?;
            if let Some((alias, _)) = alias {
                writeln!(
                    out,
                    "  (the shell's {} is this command)",
                    alias.to_uppercase()
                )?;
            }
            writeln!(out)
        }
        None => writeln!(
            out,
            "(error) no help for {}: HELP lists the commands",
            kv_cli::print::quote(topic[0].as_slice())
        ),
    }
}
