//! The language of the `kv` tool, as a library so that it can be fuzzed and reused: the
//! shell's line splitting ([`line`](mod@line), redis-cli's rules) and the printing of its
//! replies ([`print`](mod@print), redis-cli's layout); and the printing of keys and values
//! by the subcommands, with its inverse for words given back on a command line
//! ([`output`]). The `kv` binary itself lives in `main.rs`.
//!
//! ```
//! use kv_cli::{line, print};
//!
//! let args = line::split(br#"SET "user 1" 'ada'"#).unwrap();
//! assert_eq!(args, [&b"SET"[..], b"user 1", b"ada"]);
//! assert_eq!(print::quote(b"user\x001"), r#""user\x001""#);
//! assert_eq!(kv_cli::output::word(b"user 1"), "\"user 1\"");
//! ```

#![forbid(unsafe_code)]

pub mod line;
pub mod output;
pub mod print;
