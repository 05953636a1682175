//! How a command fails, and the exit code each kind of failure gives: 1 only for an absent
//! key (as `grep` exits 1 when nothing matched), so that a script can tell "not there" from
//! every error, which exits 2 or more.

use std::fmt;

/// A failed command: what to tell the user and how to exit.
#[derive(Debug)]
pub enum Failure {
    /// The command line or the input is wrong: exit code 2.
    Usage(String),
    /// The command could not do its work (store errors, I/O, a store it cannot open):
    /// exit code 3.
    Runtime(String),
    /// `kv verify` found damage (and printed it): exit code 4.
    Damaged(String),
    /// Ctrl-C ended the command (and said so): exit code 130, as a shell gives a program
    /// SIGINT ended.
    Interrupted,
    /// `kv get` or `kv del` of an absent key: `(nil)` was printed, exit code 1 with no
    /// message.
    Missing,
}

/// The exit code of an absent key.
pub const EXIT_MISSING: i32 = 1;
/// The exit code of a usage error.
pub const EXIT_USAGE: i32 = 2;
/// The exit code of a runtime error.
pub const EXIT_RUNTIME: i32 = 3;
/// The exit code of damage found by `kv verify`.
pub const EXIT_DAMAGED: i32 = 4;
/// The exit code of a command Ctrl-C ended.
pub const EXIT_INTERRUPTED: i32 = 130;

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Missing => EXIT_MISSING,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Runtime(_) => EXIT_RUNTIME,
            Failure::Damaged(_) => EXIT_DAMAGED,
            Failure::Interrupted => EXIT_INTERRUPTED,
        }
    }

    /// A runtime failure with `message`.
    pub fn runtime(message: impl fmt::Display) -> Self {
        Failure::Runtime(message.to_string())
    }
}

impl From<kv_store::Error> for Failure {
    fn from(e: kv_store::Error) -> Self {
        Failure::Runtime(describe(&e))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::runtime(e)
    }
}

/// The result of a command.
pub type Outcome<T = ()> = Result<T, Failure>;

/// An error's message followed by its causes' (each layer's error shows its own part only,
/// the one below is its `source()`), joined as `what: why: why that`; advice the library
/// gives in terms of its API is given in terms of `kv` instead.
pub fn describe(error: &dyn std::error::Error) -> String {
    kv_store::with_causes(error).replace(
        kv_wal::SALVAGE_ADVICE,
        "`kv --dir DIR repair --to NEWDIR` copies every readable record into a new store",
    )
}

/// The first error of type `T` in `error`'s chain of sources that `wanted` accepts.
pub fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
    wanted: impl Fn(&T) -> bool,
) -> Option<&'a T> {
    let mut level = Some(error);
    while let Some(e) = level {
        if let Some(found) = e.downcast_ref::<T>().filter(|f| wanted(f)) {
            return Some(found);
        }
        level = e.source();
    }
    None
}
