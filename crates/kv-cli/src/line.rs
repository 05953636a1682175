//! How the shell splits a line into a command's arguments: redis-cli's rules, so that a
//! line typed at redis-cli means the same at `kv`.
//!
//! - Arguments are separated by blanks (space, tab, CR, LF, vertical tab, form feed).
//! - In double quotes: `\xHH` (two hex digits) is that byte; `\n \r \t \b \a` are the
//!   control characters; a backslash before any other character is that character (so
//!   `\"` and `\\`).
//! - In single quotes everything is literal but `\'`, which is a quote.
//! - A quote may start in the middle of an argument (`ab"c d"` is `abc d`), but a closing
//!   quote must be followed by a blank or the end of the line.
//! - An unbalanced quote, or a closing quote followed by more of the argument, makes the
//!   whole line invalid ([`InvalidArguments`]).
//!
//! As in redis-cli (whose lines are C strings), a NUL byte ends the line.

/// Why a line has no arguments: an unbalanced quote, or a closing quote followed by more
/// of the argument. It reads as redis-cli's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Invalid argument(s)")]
pub struct InvalidArguments;

/// Splits `line` into arguments (none for a blank line).
///
/// ```
/// use kv_cli::line::split;
/// assert_eq!(split(br#"SET "a key" 'it\'s' \x41"#).unwrap(), [&b"SET"[..], b"a key", b"it's", br"\x41"]);
/// assert_eq!(split(br#"GET "a\x00b""#).unwrap()[1], b"a\0b");
/// assert!(split(br#"GET "open"#).is_err());
/// ```
///
/// # Errors
///
/// [`InvalidArguments`] for an unbalanced quote or a closing quote followed by
/// more than a blank.
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, InvalidArguments> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_blank(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        loop {
            match line.get(i) {
                None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                // A closing quote ends the argument (what follows it is a blank, or the
                // end: a vertical tab or form feed too, which would not end it elsewhere).
                Some(b'"') => {
                    i = double_quoted(line, i + 1, &mut arg)?;
                    break;
                }
                Some(b'\'') => {
                    i = single_quoted(line, i + 1, &mut arg)?;
                    break;
                }
                Some(&b) => {
                    arg.push(b);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// C's `isspace`.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Reads a double-quoted part from `i` (just past the quote) into `arg`; returns the index
/// just past the closing quote.
fn double_quoted(line: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, InvalidArguments> {
    loop {
        match line.get(i) {
            None => return Err(InvalidArguments),
            Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                match (hex(line.get(i + 2)), hex(line.get(i + 3))) {
                    (Some(high), Some(low)) => {
                        arg.push(high << 4 | low);
                        i += 4;
                    }
                    // Not a `\xHH`: the backslash escapes the `x`.
                    _ => {
                        arg.push(b'x');
                        i += 2;
                    }
                }
            }
            Some(b'\\') if i + 1 < line.len() => {
                arg.push(match line[i + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                i += 2;
            }
            Some(b'"') => return closed(line, i + 1),
            Some(&b) => {
                arg.push(b);
                i += 1;
            }
        }
    }
}

/// Reads a single-quoted part, as [`double_quoted`] does.
fn single_quoted(line: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, InvalidArguments> {
    loop {
        match line.get(i) {
            None => return Err(InvalidArguments),
            Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                arg.push(b'\'');
                i += 2;
            }
            Some(b'\'') => return closed(line, i + 1),
            Some(&b) => {
                arg.push(b);
                i += 1;
            }
        }
    }
}

/// A closing quote must end the argument: `after` is the end of the line or a blank.
fn closed(line: &[u8], after: usize) -> Result<usize, InvalidArguments> {
    match line.get(after) {
        Some(&b) if !is_blank(b) => Err(InvalidArguments),
        _ => Ok(after),
    }
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    crate::output::hex_digit(*digit?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn blanks_separate_arguments() {
        assert_eq!(words("  SET\tk  v \r\n"), ["SET", "k", "v"]);
        assert!(words("").is_empty());
        assert!(words(" \t\x0b\x0c ").is_empty());
        assert_eq!(words(r"a\b c\"), [r"a\b", r"c\"]);
    }

    #[test]
    fn double_quotes_take_redis_cli_escapes() {
        assert_eq!(
            split(br#""\x41\x7a\xff" "\n\r\t\b\a" "\"\\\q" """#).unwrap(),
            [&b"Az\xff"[..], b"\n\r\t\x08\x07", b"\"\\q", b""]
        );
        // Not two hex digits: the backslash escapes the x.
        assert_eq!(split(br#""\xZ1" "\x4""#).unwrap(), [&b"xZ1"[..], b"x4"]);
        assert_eq!(words(r#""a b"  "c""#), ["a b", "c"]);
    }

    #[test]
    fn single_quotes_are_literal_but_for_an_escaped_quote() {
        assert_eq!(words(r#"'a "b" \n' 'it\'s'"#), [r#"a "b" \n"#, "it's"]);
        assert_eq!(words("''"), [""]);
    }

    #[test]
    fn quotes_may_open_inside_an_argument() {
        assert_eq!(words(r#"ab"c d" x'y z'"#), ["abc d", "xy z"]);
    }

    #[test]
    fn a_closing_quote_ends_the_argument_before_any_blank() {
        assert_eq!(words("ECHO \"a\"\x0b"), ["ECHO", "a"]);
        assert_eq!(
            words("ECHO \"a\"\x0cb 'c'\x0bd"),
            ["ECHO", "a", "b", "c", "d"]
        );
        // Unquoted, a vertical tab is part of the argument, as in redis-cli.
        assert_eq!(words("a\x0bb"), ["a\x0bb"]);
    }

    #[test]
    fn unbalanced_or_glued_quotes_make_the_line_invalid() {
        for line in [
            r#"SET k "open"#,
            "SET k 'open",
            r#"SET k "ends in backslash\"#,
            r#"SET k "a"b"#,
            "SET k 'a'b",
            r#"""""#,
        ] {
            assert_eq!(split(line.as_bytes()), Err(InvalidArguments), "{line}");
        }
        assert_eq!(InvalidArguments.to_string(), "Invalid argument(s)");
    }

    #[test]
    fn a_nul_byte_ends_the_line() {
        assert_eq!(split(b"GET a\0b c").unwrap(), [&b"GET"[..], b"a"]);
    }
}
