//! Keys and values given as command-line words, so that whatever `kv scan` or `kv get`
//! printed can be passed back to `kv get`, `kv del` or `kv put`:
//!
//! - a word in double quotes (`"a b"`, one argument: the OS shell passed the quotes on) is
//!   what kv prints for a word that needs them, and is unquoted;
//! - any other word is taken with its escapes decoded, so that `kv get 'bin\x00key'` (the OS
//!   shell strips the single quotes) reaches the key with a NUL in it;
//! - with `--hex`, the word is hex digits, two a byte.
//!
//! The escapes are those of [`kv_cli::output::unword`], the inverse of what kv prints.

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
        Encoding::Escaped => kv_cli::output::unword(bytes),
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
            kv_cli::output::hex_byte(pair)
                .ok_or_else(|| format!("not a hex byte at offset {}", 2 * i))
        })
        .collect()
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
        for bad in [
            &br"C:\path"[..],
            br"\x4",
            br"\xzz",
            br"\x+1",
            br"end\",
            br#""a"b""#,
        ] {
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
        assert!(hex("+1+2").is_err(), "no signs");
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
