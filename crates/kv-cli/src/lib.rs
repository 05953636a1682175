//! The language of the `kv` tool, as a library so that it can be fuzzed and reused: the
//! shell's line splitting ([`line`], redis-cli's rules) and the printing of its replies
//! ([`print`], redis-cli's layout); the subcommands' key parser ([`parse`]) and the printing
//! of keys and values so that they parse back ([`output`]). The `kv` binary itself lives in
//! `main.rs`.
//!
//! ```
//! use kv_cli::parse::{parse_line, Command};
//!
//! let command = parse_line(br#"PUT "user 1" ada EX 60"#).unwrap().unwrap();
//! assert!(matches!(command, Command::Put { .. }));
//! assert_eq!(kv_cli::output::word(b"user 1"), "\"user 1\"");
//! ```

#![forbid(unsafe_code)]

pub mod line;
pub mod output;
pub mod parse;
pub mod print;
