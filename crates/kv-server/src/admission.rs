//! What happens to a request before it runs, in Redis 7's order: one decision for the
//! single-node session (`session.rs`) and the replicated node (`replicated.rs`), so that
//! both answer a request inside `MULTI` alike.
//!
//! The order: an unknown command or a wrong number of arguments is refused first (and
//! aborts an open block); then authentication; then, inside a block, `EXEC`, `DISCARD`,
//! `QUIT` and `RESET` run, a nested `MULTI` and `WATCH` are refused without aborting, a
//! command not allowed in a block is refused and aborts it, and every other command is
//! queued, its own errors (an option, an integer) included: those are answered in
//! `EXEC`'s reply while the others run.

use bytes::Bytes;

use crate::command::{self, Command, CommandError, Spec};
use crate::reply::Reply;

/// The decision for one request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Run it now: no block is open, or it ends or leaves one.
    Run(Command, &'static Spec),
    /// Queue it in the open block: `QUEUED` now, its reply in `EXEC`'s.
    Queue(Result<Command, CommandError>),
    /// Answer `reply` now; with `aborts`, the open block's `EXEC` answers `EXECABORT`.
    Refuse { reply: Reply, aborts: bool },
}

/// Decides what to do with `args` from a client that is `authenticated` or not, with a
/// `MULTI` block open (`in_block`) or not.
pub(crate) fn admit(args: &[Bytes], authenticated: bool, in_block: bool) -> Admission {
    let (command, spec) = match command::parse(args) {
        Ok((command, spec)) => (Ok(command), spec),
        Err(error) => match args.first().and_then(|name| command::lookup(name)) {
            Some(spec) if !error.is_refused_before_running(args) => (Err(error), spec),
            _ => {
                return Admission::Refuse {
                    reply: error.into(),
                    aborts: in_block,
                }
            }
        },
    };
    let refuse = |reply: Reply, aborts| Admission::Refuse { reply, aborts };
    if !authenticated && !spec.no_auth() {
        return refuse(Reply::error("NOAUTH Authentication required."), false);
    }
    if !in_block {
        return match command {
            Ok(command) => Admission::Run(command, spec),
            Err(error) => refuse(error.into(), false),
        };
    }
    match command {
        Ok(command @ (Command::Exec | Command::Discard | Command::Quit | Command::Reset)) => {
            Admission::Run(command, spec)
        }
        Ok(Command::Multi) => refuse(Reply::error("ERR MULTI calls can not be nested"), false),
        Ok(Command::Watch(_)) => {
            refuse(Reply::error("ERR WATCH inside MULTI is not allowed"), false)
        }
        // SAVE inside a block would sync before the block's writes are made, and answer
        // for them: refused, and the block aborted, as in Redis (which checks this before
        // running anything, so a bad argument does not get it queued).
        _ if spec.no_multi() => refuse(
            Reply::error("ERR Command not allowed inside a transaction"),
            true,
        ),
        command => Admission::Queue(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(line: &str, authenticated: bool, in_block: bool) -> String {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        match admit(&args, authenticated, in_block) {
            Admission::Run(..) => "run".into(),
            Admission::Queue(Ok(_)) => "queue".into(),
            Admission::Queue(Err(_)) => "queue error".into(),
            Admission::Refuse { reply, aborts } => {
                let Reply::Error(text) = reply else {
                    panic!("{line}: refused with {reply:?}")
                };
                format!("{}{text}", if aborts { "abort: " } else { "" })
            }
        }
    }

    #[test]
    fn requests_are_admitted_in_redis_order() {
        let cases = [
            // Outside a block.
            ("GET k", true, false, "run"),
            (
                "SET k v EX x",
                true,
                false,
                "ERR value is not an integer or out of range",
            ),
            (
                "NOSUCH x",
                true,
                false,
                "ERR unknown command 'NOSUCH', with args beginning with: 'x' ",
            ),
            ("GET k", false, false, "NOAUTH Authentication required."),
            ("AUTH pw", false, false, "run"),
            // A command allowed before AUTH answers its own errors, not NOAUTH.
            (
                "HELLO 4",
                false,
                false,
                "NOPROTO unsupported protocol version",
            ),
            // Inside one.
            ("GET k", true, true, "queue"),
            ("SET k v EX x", true, true, "queue error"),
            (
                "GET",
                true,
                true,
                "abort: ERR wrong number of arguments for 'get' command",
            ),
            (
                "NOSUCH",
                true,
                true,
                "abort: ERR unknown command 'NOSUCH', with args beginning with: ",
            ),
            (
                "SAVE",
                true,
                true,
                "abort: ERR Command not allowed inside a transaction",
            ),
            ("MULTI", true, true, "ERR MULTI calls can not be nested"),
            (
                "WATCH k",
                true,
                true,
                "ERR WATCH inside MULTI is not allowed",
            ),
            ("EXEC", true, true, "run"),
            ("DISCARD", true, true, "run"),
            ("QUIT", true, true, "run"),
            ("RESET", true, true, "run"),
        ];
        for (line, authenticated, in_block, expected) in cases {
            assert_eq!(
                admitted(line, authenticated, in_block),
                expected,
                "{line} (authenticated: {authenticated}, in a block: {in_block})"
            );
        }
    }
}
