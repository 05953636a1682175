//! The shell's command language: one command a line, words split on spaces and tabs,
//! double quotes around a word that holds spaces or special bytes, backslash escapes inside
//! quotes.
//!
//! ```text
//! PUT key value [EX seconds]   GET key   DEL key   SCAN [prefix] [LIMIT n]
//! STATS   COMPACT   SYNC   HELP   QUIT | EXIT
//! ```
//!
//! Command names and the keywords `EX` and `LIMIT` are case-insensitive; a keyword only counts
//! unquoted, so `SCAN "LIMIT"` scans the prefix `LIMIT`. Inside quotes: `\"`, `\\`, `\n`,
//! `\r`, `\t`, `\0` and `\xHH` (any byte, so keys need not be UTF-8). Outside quotes a
//! backslash is an ordinary byte. A quote may only open and close a whole word.
//! Blank lines and lines whose first non-blank byte is `#` hold no command.

use crate::output;
use std::time::Duration;

/// A word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word's bytes, escapes resolved.
    pub bytes: Vec<u8>,
    /// Whether it was written in double quotes (then it is never a keyword).
    pub quoted: bool,
}

/// One command of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PUT key value [EX seconds]`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// The time to live, from `EX`.
        ttl: Option<Duration>,
    },
    /// `GET key`.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// `DEL key`.
    Del {
        /// The key.
        key: Vec<u8>,
    },
    /// `SCAN [prefix] [LIMIT n]`.
    Scan {
        /// Only keys starting with this.
        prefix: Option<Vec<u8>>,
        /// At most this many pairs.
        limit: Option<usize>,
    },
    /// `STATS`.
    Stats,
    /// `COMPACT`.
    Compact,
    /// `SYNC`.
    Sync,
    /// `HELP`.
    Help,
    /// `QUIT` or `EXIT`.
    Quit,
}

/// Why a line is not a command. The messages are what the shell prints after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `"` with no closing `"` on the line.
    #[error("unterminated quote starting at column {column}")]
    UnterminatedQuote {
        /// 1-based byte column of the opening quote.
        column: usize,
    },
    /// A backslash inside quotes followed by something that is not an escape.
    #[error("bad escape {escape} at column {column} (use \\\" \\\\ \\n \\r \\t \\0 or \\xHH)")]
    BadEscape {
        /// 1-based byte column of the backslash.
        column: usize,
        /// What followed it, quoted as [`output::excerpt`] quotes input.
        escape: String,
    },
    /// A quote in the middle of an unquoted word, or a closing quote followed by more of
    /// the word.
    #[error("a quote must open and close a whole word (column {column}); put a space around the quoted word or escape the quote inside quotes")]
    StrayQuote {
        /// 1-based byte column of the quote.
        column: usize,
    },
    /// A command name that is not one of the shell's.
    #[error("unknown command {0} (commands: PUT GET DEL SCAN STATS COMPACT SYNC HELP QUIT)")]
    UnknownCommand(String),
    /// The wrong number of words for a command.
    #[error("wrong number of arguments for {command}: usage: {usage}")]
    Arity {
        /// The command, upper case.
        command: &'static str,
        /// Its usage line.
        usage: &'static str,
    },
    /// A number that is not one.
    #[error("{what} must be a whole number {range}, not {found}")]
    BadNumber {
        /// Which number ("EX seconds", "LIMIT").
        what: &'static str,
        /// What it must be.
        range: &'static str,
        /// What was written, quoted as [`output::excerpt`] quotes input.
        found: String,
    },
    /// A line that [`line::split`](crate::line::split) cannot split (an unbalanced quote,
    /// or a closing quote followed by more of the word): redis-cli's message.
    #[error("Invalid argument(s)")]
    InvalidArguments,
}

/// The usage line of each command, for errors and `HELP`.
pub const USAGE: &str = "PUT key value [EX seconds] | GET key | DEL key | SCAN [prefix] [LIMIT n] | STATS | COMPACT | SYNC | HELP | QUIT";

/// Parses one line; `Ok(None)` for a blank line or a comment.
pub fn parse_line(line: &[u8]) -> Result<Option<Command>, ParseError> {
    let words = split_words(line)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let name = String::from_utf8_lossy(&name.bytes).to_ascii_uppercase();
    let command = match name.as_str() {
        "PUT" => parse_put(args)?,
        "GET" => Command::Get {
            key: one_key("GET", "GET key", args)?,
        },
        "DEL" => Command::Del {
            key: one_key("DEL", "DEL key", args)?,
        },
        "SCAN" => parse_scan(args)?,
        "STATS" => no_args("STATS", args, Command::Stats)?,
        "COMPACT" => no_args("COMPACT", args, Command::Compact)?,
        "SYNC" => no_args("SYNC", args, Command::Sync)?,
        "HELP" => no_args("HELP", args, Command::Help)?,
        "QUIT" => no_args("QUIT", args, Command::Quit)?,
        "EXIT" => no_args("EXIT", args, Command::Quit)?,
        _ => return Err(ParseError::UnknownCommand(output::excerpt(&words[0].bytes))),
    };
    Ok(Some(command))
}

fn no_args(command: &'static str, args: &[Word], parsed: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(parsed)
    } else {
        Err(ParseError::Arity {
            command,
            usage: command,
        })
    }
}

fn one_key(
    command: &'static str,
    usage: &'static str,
    args: &[Word],
) -> Result<Vec<u8>, ParseError> {
    match args {
        [key] => Ok(key.bytes.clone()),
        _ => Err(ParseError::Arity { command, usage }),
    }
}

/// Whether `word` is the unquoted keyword `keyword`, in any case.
fn is_keyword(word: &Word, keyword: &str) -> bool {
    !word.quoted && word.bytes.eq_ignore_ascii_case(keyword.as_bytes())
}

fn parse_put(args: &[Word]) -> Result<Command, ParseError> {
    const USAGE: &str = "PUT key value [EX seconds]";
    let arity = || ParseError::Arity {
        command: "PUT",
        usage: USAGE,
    };
    let (key, value, ttl) = match args {
        [key, value] => (key, value, None),
        [key, value, ex, seconds] if is_keyword(ex, "EX") => {
            let seconds = number(seconds, "EX seconds", "of at least 1")?;
            if seconds == 0 {
                return Err(ParseError::BadNumber {
                    what: "EX seconds",
                    range: "of at least 1",
                    found: output::excerpt(b"0"),
                });
            }
            (key, value, Some(Duration::from_secs(seconds)))
        }
        _ => return Err(arity()),
    };
    Ok(Command::Put {
        key: key.bytes.clone(),
        value: value.bytes.clone(),
        ttl,
    })
}

fn parse_scan(args: &[Word]) -> Result<Command, ParseError> {
    let limit = |word: &Word| -> Result<usize, ParseError> {
        let n = number(word, "LIMIT", "of 0 or more")?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    };
    let arity = ParseError::Arity {
        command: "SCAN",
        usage: "SCAN [prefix] [LIMIT n]",
    };
    match args {
        [] => Ok(Command::Scan {
            prefix: None,
            limit: None,
        }),
        [keyword] if is_keyword(keyword, "LIMIT") => Err(arity),
        [prefix] => Ok(Command::Scan {
            prefix: Some(prefix.bytes.clone()),
            limit: None,
        }),
        [keyword, n] if is_keyword(keyword, "LIMIT") => Ok(Command::Scan {
            prefix: None,
            limit: Some(limit(n)?),
        }),
        [prefix, keyword, n] if is_keyword(keyword, "LIMIT") => Ok(Command::Scan {
            prefix: Some(prefix.bytes.clone()),
            limit: Some(limit(n)?),
        }),
        _ => Err(arity),
    }
}

fn number(word: &Word, what: &'static str, range: &'static str) -> Result<u64, ParseError> {
    let bad = || ParseError::BadNumber {
        what,
        range,
        found: output::excerpt(&word.bytes),
    };
    if word.bytes.is_empty() || !word.bytes.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(&word.bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

/// Splits a line into words; no words for a blank line or a comment. A trailing `\r` (from
/// CRLF input) is dropped.
pub fn split_words(line: &[u8]) -> Result<Vec<Word>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let is_blank = |b: u8| b == b' ' || b == b'\t';
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_blank(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(words);
        }
        if words.is_empty() && line[i] == b'#' {
            return Ok(words);
        }
        if line[i] == b'"' {
            let (bytes, end) = quoted_word(line, i)?;
            if end < line.len() && !is_blank(line[end]) {
                return Err(ParseError::StrayQuote { column: end + 1 });
            }
            words.push(Word {
                bytes,
                quoted: true,
            });
            i = end;
        } else {
            let start = i;
            while i < line.len() && !is_blank(line[i]) {
                if line[i] == b'"' {
                    return Err(ParseError::StrayQuote { column: i + 1 });
                }
                i += 1;
            }
            words.push(Word {
                bytes: line[start..i].to_vec(),
                quoted: false,
            });
        }
    }
}

/// Reads the quoted word whose opening quote is at `open`; returns its bytes and the index
/// just past the closing quote.
fn quoted_word(line: &[u8], open: usize) -> Result<(Vec<u8>, usize), ParseError> {
    let mut bytes = Vec::new();
    let mut i = open + 1;
    while i < line.len() {
        match line[i] {
            b'"' => return Ok((bytes, i + 1)),
            b'\\' => {
                let bad = |len: usize| ParseError::BadEscape {
                    column: i + 1,
                    escape: output::excerpt(&line[i..(i + len).min(line.len())]),
                };
                let Some(&c) = line.get(i + 1) else {
                    return Err(ParseError::UnterminatedQuote { column: open + 1 });
                };
                let (byte, len) = match c {
                    b'"' => (b'"', 2),
                    b'\\' => (b'\\', 2),
                    b'n' => (b'\n', 2),
                    b'r' => (b'\r', 2),
                    b't' => (b'\t', 2),
                    b'0' => (0, 2),
                    b'x' => {
                        let hex = line.get(i + 2..i + 4).ok_or_else(|| bad(4))?;
                        let value = std::str::from_utf8(hex)
                            .ok()
                            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or_else(|| bad(4))?;
                        (value, 4)
                    }
                    _ => return Err(bad(2)),
                };
                bytes.push(byte);
                i += len;
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    Err(ParseError::UnterminatedQuote { column: open + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Command>, ParseError> {
        parse_line(line.as_bytes())
    }

    fn put(key: &[u8], value: &[u8], ttl: Option<u64>) -> Option<Command> {
        Some(Command::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            ttl: ttl.map(Duration::from_secs),
        })
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(parse("put k v"), Ok(put(b"k", b"v", None)));
        assert_eq!(
            parse("Get k"),
            Ok(Some(Command::Get { key: b"k".to_vec() }))
        );
        assert_eq!(
            parse("del k"),
            Ok(Some(Command::Del { key: b"k".to_vec() }))
        );
        assert_eq!(parse("stats"), Ok(Some(Command::Stats)));
        assert_eq!(parse("Compact"), Ok(Some(Command::Compact)));
        assert_eq!(parse("sync"), Ok(Some(Command::Sync)));
        assert_eq!(parse("quit"), Ok(Some(Command::Quit)));
        assert_eq!(parse("EXIT"), Ok(Some(Command::Quit)));
        assert_eq!(parse("help"), Ok(Some(Command::Help)));
    }

    #[test]
    fn blank_lines_and_comments_hold_no_command() {
        for line in [
            "",
            "   ",
            "\t",
            "\r\n",
            "# a comment",
            "   # indented comment",
        ] {
            assert_eq!(parse(line), Ok(None), "{line:?}");
        }
    }

    #[test]
    fn put_takes_an_optional_ttl_in_seconds() {
        assert_eq!(parse("PUT k v EX 10"), Ok(put(b"k", b"v", Some(10))));
        assert_eq!(parse("PUT k v ex 10"), Ok(put(b"k", b"v", Some(10))));
        assert!(matches!(
            parse("PUT k v EX 0"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("PUT k v EX -1"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("PUT k v EX soon"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(
            parse("PUT k v \"EX\" 10"),
            Err(ParseError::Arity { .. })
        ));
    }

    #[test]
    fn scan_takes_an_optional_prefix_and_limit() {
        let scan = |prefix: Option<&str>, limit| {
            Ok(Some(Command::Scan {
                prefix: prefix.map(|p| p.as_bytes().to_vec()),
                limit,
            }))
        };
        assert_eq!(parse("SCAN"), scan(None, None));
        assert_eq!(parse("SCAN user:"), scan(Some("user:"), None));
        assert_eq!(parse("SCAN LIMIT 5"), scan(None, Some(5)));
        assert_eq!(parse("scan user: limit 5"), scan(Some("user:"), Some(5)));
        assert_eq!(parse("SCAN \"LIMIT\""), scan(Some("LIMIT"), None));
        assert!(matches!(parse("SCAN LIMIT"), Err(ParseError::Arity { .. })));
        assert!(matches!(
            parse("SCAN a LIMIT x"),
            Err(ParseError::BadNumber { .. })
        ));
        assert!(matches!(parse("SCAN a b"), Err(ParseError::Arity { .. })));
    }

    #[test]
    fn wrong_arity_is_an_error_naming_the_usage() {
        for line in [
            "GET",
            "GET a b",
            "DEL",
            "PUT k",
            "PUT k v w",
            "STATS x",
            "SYNC now",
        ] {
            let error = parse(line).unwrap_err();
            assert!(matches!(error, ParseError::Arity { .. }), "{line}: {error}");
            assert!(error.to_string().contains("usage"), "{error}");
        }
    }

    #[test]
    fn unknown_commands_are_named() {
        let error = parse("FROB k").unwrap_err();
        assert_eq!(error, ParseError::UnknownCommand(r#""FROB""#.into()));
        assert!(error.to_string().starts_with(r#"unknown command "FROB""#));
    }

    #[test]
    fn quotes_group_words_and_escapes_make_any_byte() {
        assert_eq!(
            parse(r#"PUT "a key" "a \"quoted\" value""#),
            Ok(put(b"a key", b"a \"quoted\" value", None))
        );
        assert_eq!(
            parse(r#"PUT "\xff\x00\n" "tab\there\\""#),
            Ok(put(b"\xff\x00\n", b"tab\there\\", None))
        );
        assert_eq!(parse(r#"PUT "" v"#), Ok(put(b"", b"v", None)));
        assert_eq!(parse(r"PUT a\b v"), Ok(put(b"a\\b", b"v", None)));
        assert_eq!(parse("PUT\tk\t v  "), Ok(put(b"k", b"v", None)));
    }

    #[test]
    fn raw_non_utf8_bytes_are_taken_as_they_are() {
        assert_eq!(
            parse_line(b"PUT k\xfe v\r\n"),
            Ok(put(b"k\xfe", b"v", None))
        );
    }

    #[test]
    fn bad_quoting_is_an_error_with_its_column() {
        assert_eq!(
            parse(r#"PUT k "open"#),
            Err(ParseError::UnterminatedQuote { column: 7 })
        );
        assert_eq!(
            parse(r#"PUT k "ends in backslash\"#),
            Err(ParseError::UnterminatedQuote { column: 7 })
        );
        assert_eq!(
            parse(r#"PUT k "\q""#),
            Err(ParseError::BadEscape {
                column: 8,
                escape: r#""\\q""#.into()
            })
        );
        assert!(matches!(
            parse(r#"PUT k "\xZZ""#),
            Err(ParseError::BadEscape { column: 8, .. })
        ));
        assert_eq!(
            parse(r#"PUT k ab"c""#),
            Err(ParseError::StrayQuote { column: 9 })
        );
        assert_eq!(
            parse(r#"PUT k "ab"c"#),
            Err(ParseError::StrayQuote { column: 11 })
        );
    }
}
