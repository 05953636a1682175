//! Keys and values given as command-line words, so that whatever `kv scan` or `kv get`
//! printed can be passed back to `kv get`, `kv del` or `kv put`:
//!
//! - a word in double quotes (`"a b"`, one argument: the OS shell passed the quotes on) is
//!   what kv prints for a word that needs them, and is unquoted;
//! - any other word is taken with its escapes decoded, so that `kv get 'bin\x00key'` (the OS
//!   shell strips the single quotes) reaches the key with a NUL in it;
//! - with `--hex`, the word is hex digits, two a byte.
//!
//! The escapes are those kv prints (`\"`, `\\`, `\n`, `\r`, `\t`, `\0`, `\xHH`) and those
//! redis-cli prints (`\a`, `\b`), plus `\'`. Any other backslash is refused rather than
//! taken as a byte: a key written with a stray backslash would silently miss its entry.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::failure::{Failure, Outcome};

/// How a command-line word gives bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Escapes, or a whole double-quoted word (see the module's documentation).
    Escaped,
    /// Hex digits.
    Hex,
}

impl Encoding {
    /// `Hex` when `hex` is set.
    pub fn hex_if(hex: bool) -> Self {
        if hex {
            Encoding::Hex
        } else {
            Encoding::Escaped
        }
    }
}

/// The bytes `word` stands for; `what` names it in errors ("the key", "--prefix").
pub fn decode(word: &OsStr, encoding: Encoding, what: &str) -> Outcome<Vec<u8>> {
    let bytes = word.as_bytes();
    let decoded = match encoding {
        Encoding::Hex => from_hex(bytes),
        Encoding::Escaped => match bytes {
            [b'"', inner @ .., b'"'] => unescape(inner, true),
            _ => unescape(bytes, false),
        },
    };
    decoded
        .map_err(|why| Failure::Usage(format!("{what} {}: {why}", kv_cli::output::excerpt(bytes))))
}

/// Hex digits, two a byte, either case.
fn from_hex(digits: &[u8]) -> Result<Vec<u8>, String> {
    if !digits.len().is_multiple_of(2) {
        return Err("--hex takes an even number of hex digits, two a byte".into());
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("not a hex byte at offset {}", 2 * i))
        })
        .collect()
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
                let digits = text.get(i + 2..i + 4).unwrap_or_default();
                let byte = std::str::from_utf8(digits)
                    .ok()
                    .filter(|d| d.len() == 2)
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
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
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn escaped(word: &[u8]) -> Result<Vec<u8>, Failure> {
        decode(
            &OsString::from_vec(word.to_vec()),
            Encoding::Escaped,
            "the key",
        )
    }

    #[test]
    fn escapes_and_quoted_words_are_decoded() {
        assert_eq!(escaped(br"bin\x00key").unwrap(), b"bin\0key");
        assert_eq!(escaped(br"a\nb\tc\\d\'e").unwrap(), b"a\nb\tc\\d'e");
        assert_eq!(escaped(br#""a b""#).unwrap(), b"a b");
        assert_eq!(escaped(br#""a \"b\"""#).unwrap(), b"a \"b\"");
        assert_eq!(escaped(br#""""#).unwrap(), b"");
        assert_eq!(escaped(b"-dash").unwrap(), b"-dash");
        assert_eq!(
            escaped("caf\u{e9}".as_bytes()).unwrap(),
            "caf\u{e9}".as_bytes()
        );
        assert_eq!(
            escaped(b"\"").unwrap(),
            b"\"",
            "a lone quote is no quoted word"
        );
        assert_eq!(escaped(br#"\"a\""#).unwrap(), b"\"a\"");
    }

    #[test]
    fn a_bad_escape_is_a_usage_error_that_says_why() {
        for bad in [&br"C:\path"[..], br"\x4", br"\xzz", br"end\", br#""a"b""#] {
            match escaped(bad) {
                Err(Failure::Usage(message)) => assert!(message.contains("the key"), "{message}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn hex_is_two_digits_a_byte() {
        let hex = |w: &str| decode(OsStr::new(w), Encoding::Hex, "the key");
        assert_eq!(hex("00ffAb").unwrap(), [0, 0xff, 0xab]);
        assert_eq!(hex("").unwrap(), b"");
        assert!(hex("abc").is_err());
        assert!(hex("zz").is_err());
    }

    #[test]
    fn every_word_kv_prints_decodes_to_its_bytes() {
        let mut samples: Vec<Vec<u8>> = [
            &b""[..],
            b"plain",
            b"two words",
            b"\"quoted\"",
            b"back\\slash",
            b"\\x41",
            b"-dash",
            b"(nil)",
            b"#hash",
            b"\xff\xfe\x00\x7f",
            "日本\u{2028}語".as_bytes(),
            b"tab\tcr\rnl\n\x07\x08",
            b"'single'",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        samples.push((0..=255).collect());
        for sample in samples {
            let printed = kv_cli::output::word(&sample);
            let back = escaped(printed.as_bytes()).unwrap_or_else(|e| panic!("{printed}: {e:?}"));
            assert_eq!(back, sample, "{printed}");
        }
    }
}
