//! How keys and values are printed: bare when that is unambiguous, otherwise quoted with the
//! escapes of the shell's parser, so every printed word reads back as the same bytes.

use std::borrow::Cow;

/// The answer to a `GET` of a missing key (a value that reads `(nil)` is printed quoted).
pub const NIL: &str = "(nil)";
/// The line that ends a `SCAN` answer in the shell.
pub const END: &str = "(end)";

/// `bytes` as one word of the shell's language.
///
/// Bare when it is non-empty printable UTF-8 without spaces, quotes or backslashes, does not
/// start with `#` (a comment) or `(` (the markers `(nil)` and `(end)`), and does not start
/// with `ERR` (an error answer). Otherwise in double quotes, with `\"`, `\\`, `\n`, `\r`,
/// `\t`, and `\xHH` for every other control or non-space blank character (NUL is `\x00`)
/// and for each byte that is not UTF-8; printable non-ASCII characters stay as they are.
/// So the shell reads every printed word back as the same bytes, and so do the subcommands.
pub fn word(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if is_bare(text) {
            return Cow::Borrowed(text);
        }
    }
    Cow::Owned(quoted(bytes))
}

fn is_bare(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['#', '('])
        && !text.starts_with("ERR")
        && text
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '"' && c != '\\')
}

fn quoted(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                push_escaped(&mut out, text);
                break;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                push_escaped(
                    &mut out,
                    std::str::from_utf8(valid).expect("checked valid UTF-8"),
                );
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' ' => out.push(' '),
            c if c.is_control() || c.is_whitespace() => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// How many bytes of a user's input an error message quotes back ([`excerpt`]).
pub const EXCERPT_BYTES: usize = 40;
/// The longest error message an `ERR` line carries, in characters ([`one_line`]).
pub const MESSAGE_CHARS: usize = 1_000;

/// Up to [`EXCERPT_BYTES`] of `bytes`, always quoted and escaped as [`word`] quotes, with how
/// much was left out: what an error message shows of input it quotes back. Raw input can hold
/// terminal escapes, NULs or megabytes; none of that reaches the terminal.
pub fn excerpt(bytes: &[u8]) -> String {
    if bytes.len() <= EXCERPT_BYTES {
        return quoted(bytes);
    }
    format!(
        "{}... ({} bytes in all)",
        quoted(&bytes[..EXCERPT_BYTES]),
        bytes.len()
    )
}

/// An error message as one line, for `ERR <message>`: line breaks become spaces, any other
/// control character is escaped (`\xHH`), and past [`MESSAGE_CHARS`] characters it is cut.
pub fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_CHARS + 16));
    for (i, c) in message.chars().enumerate() {
        if i == MESSAGE_CHARS {
            out.push_str("... (cut)");
            break;
        }
        match c {
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The byte two hex digits (either case) stand for; `None` for anything else, a sign
/// included (`u8::from_str_radix` would take `+1`).
pub fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
        _ => None,
    }
}

/// The value of one hex digit.
pub(crate) fn hex_digit(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// The bytes a printed [`word`] stands for: its inverse, for words given back on a command
/// line. A word wholly in double quotes is unquoted; any other word has its escapes decoded
/// too (the OS shell has stripped its quotes: `kv get 'bin\x00key'`). The escapes are those
/// [`word`] prints (`\"`, `\\`, `\n`, `\r`, `\t`, `\xHH`), redis-cli's `\a` and `\b`, `\'`,
/// and `\0` (which earlier versions printed for NUL). Any other backslash is refused rather
/// than taken as a byte: a key written with a stray backslash would silently miss its entry.
///
/// ```
/// use kv_cli::output::{unword, word};
/// assert_eq!(unword(br"bin\x00key").unwrap(), b"bin\0key");
/// assert_eq!(unword(word(b"a \"b\"").as_bytes()).unwrap(), b"a \"b\"");
/// assert!(unword(br"C:\path").is_err());
/// ```
///
/// # Errors
///
/// What is wrong and where, for a bad escape or an unescaped quote inside quotes.
pub fn unword(word: &[u8]) -> Result<Vec<u8>, String> {
    match word {
        [b'"', inner @ .., b'"'] => unescape(inner, true),
        _ => unescape(word, false),
    }
}

/// `text` with its escapes decoded. Inside quotes, a bare `"` would have ended the word: it
/// must be escaped.
fn unescape(text: &[u8], quoted: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let byte = text[i];
        if byte == b'"' && quoted {
            return Err(format!(
                "a quote inside a quoted word must be escaped (\\\") (offset {})",
                i + 1
            ));
        }
        if byte != b'\\' {
            out.push(byte);
            i += 1;
            continue;
        }
        let (decoded, len) = match text.get(i + 1) {
            Some(b'"') => (b'"', 2),
            Some(b'\'') => (b'\'', 2),
            Some(b'\\') => (b'\\', 2),
            Some(b'n') => (b'\n', 2),
            Some(b'r') => (b'\r', 2),
            Some(b't') => (b'\t', 2),
            Some(b'0') => (0, 2),
            Some(b'a') => (0x07, 2),
            Some(b'b') => (0x08, 2),
            Some(b'x') => {
                let byte = text
                    .get(i + 2..i + 4)
                    .and_then(hex_byte)
                    .ok_or_else(|| format!("\\x needs two hex digits (offset {i})"))?;
                (byte, 4)
            }
            _ => {
                return Err(format!(
                    "bad escape at offset {i}: a backslash starts \\xHH \\n \\r \\t \\0 \\a \
                     \\b \\\" \\' or \\\\ (write \\\\ for a backslash)"
                ))
            }
        };
        out.push(decoded);
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_back(bytes: &[u8]) {
        let printed = word(bytes);
        // One word of a line: bare words hold no blank, quoted ones no raw control byte.
        assert!(!printed.contains(char::is_control), "{printed}");
        assert!(
            !printed.contains(' ') || printed.starts_with('"') && printed.ends_with('"'),
            "{printed} is one word"
        );
        assert_eq!(unword(printed.as_bytes()).unwrap(), bytes, "{printed}");
    }

    #[test]
    fn plain_words_are_bare() {
        assert_eq!(word(b"user:1"), "user:1");
        assert_eq!(word("café".as_bytes()), "café");
        assert_eq!(word(b"OK"), "OK");
        assert_eq!(word(b"a'b"), "a'b");
    }

    #[test]
    fn ambiguous_words_are_quoted() {
        assert_eq!(word(b""), r#""""#);
        assert_eq!(word(b"hello world"), r#""hello world""#);
        assert_eq!(word(b"(nil)"), r#""(nil)""#);
        assert_eq!(word(b"(end)"), r#""(end)""#);
        assert_eq!(word(b"#tag"), r##""#tag""##);
        assert_eq!(word(b"ERR x"), r#""ERR x""#);
        assert_eq!(word(b"a\"b"), r#""a\"b""#);
        assert_eq!(word(b"a\\b"), r#""a\\b""#);
    }

    #[test]
    fn unprintable_bytes_are_escaped() {
        assert_eq!(word(b"\xff\x00k"), r#""\xff\x00k""#);
        assert_eq!(word(b"line\nbreak\t"), r#""line\nbreak\t""#);
        assert_eq!(word(b"\x1b[0m"), r#""\x1b[0m""#);
        assert_eq!(word("nbsp\u{a0}".as_bytes()), r#""nbsp\xc2\xa0""#);
    }

    #[test]
    fn excerpts_are_quoted_escaped_and_bounded() {
        assert_eq!(excerpt(b"SETX"), r#""SETX""#);
        assert_eq!(excerpt(b"\x1b[2J\0"), r#""\x1b[2J\x00""#);
        let long = vec![b'a'; 10_000_000];
        let shown = excerpt(&long);
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.ends_with("... (10000000 bytes in all)"), "{shown}");
    }

    #[test]
    fn one_line_escapes_controls_and_is_bounded() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
        assert_eq!(one_line("esc\u{1b}[31m nul\0"), r"esc\x1b[31m nul\x00");
        let long = "x".repeat(5_000_000);
        assert!(one_line(&long).len() <= MESSAGE_CHARS + 16);
    }

    #[test]
    fn every_printed_word_reads_back_as_its_bytes() {
        let samples: &[&[u8]] = &[
            b"",
            b"plain",
            b"two words",
            b"(nil)",
            b"#x",
            b"ERR",
            b"\"",
            b"\\",
            b"\\x41",
            b"\xff\xfe\x00\x7f",
            b"\xe2\x82",
            "日本\u{2028}語".as_bytes(),
            b"tab\tcr\rnl\n",
        ];
        for sample in samples {
            reads_back(sample);
        }
        let all: Vec<u8> = (0..=255).collect();
        reads_back(&all);
    }
}
