//! Redis's glob patterns, for `KEYS`, `SCAN MATCH` and `CONFIG GET`.
//!
//! The rules are Redis 7's, quirks included, because clients see which keys match:
//! - `*` any run of bytes, `?` any one byte, `\x` the byte `x`;
//! - `[abc]`, `[^abc]` (only `^` negates), `[a-z]` with the ends in either order and
//!   compared as C's signed `char` (so the range in `[é-A]`, bytes `\xc3 \xa9 - A`, takes
//!   in `\xa9` to `\xff` and every ASCII byte up to `A`), `[*-]` a range up to `]` rather
//!   than two bytes, `\]` inside a class; a class left open ends at the pattern's end;
//! - an empty key matches only the empty pattern and `*` (which `KEYS` and `SCAN` take as
//!   "every key" without matching).
//!
//! Matching backtracks on `*`, but once the rest of a pattern failed after a `*` from every
//! position, no earlier `*` tries a longer run: at most one pass of the text per `*`.
//! Past [`MAX_NESTING`] nested `*`, the rest of the pattern matches nothing (a last `*`
//! there still matches: it ends the pattern before any recursion), as in Redis 7 since its
//! fix for CVE-2024-31228 (Debian's 7.0.15 has it): each `*` is a level of recursion, and a
//! pattern of 64 KiB of `*a` against a key as long would otherwise exhaust the stack.

/// How many `*` may be nested (each one after another, with text left to match).
const MAX_NESTING: usize = 1000;

/// Whether `text` matches `pattern`, case-sensitively.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    pattern == b"*" || Matcher::default().matches(pattern, text, 0)
}

#[derive(Default)]
struct Matcher {
    /// Set once the rest of a pattern after some `*` matched from no position: a longer run
    /// for an earlier `*` only starts the rest later, so it cannot match either.
    hopeless: bool,
}

impl Matcher {
    fn matches(&mut self, mut pattern: &[u8], mut text: &[u8], nesting: usize) -> bool {
        if nesting > MAX_NESTING {
            return false;
        }
        while let (Some(&first), Some(&byte)) = (pattern.first(), text.first()) {
            match first {
                b'*' => {
                    while pattern.len() >= 2 && pattern[1] == b'*' {
                        pattern = &pattern[1..];
                    }
                    if pattern.len() == 1 {
                        return true;
                    }
                    while !text.is_empty() {
                        if self.matches(&pattern[1..], text, nesting + 1) {
                            return true;
                        }
                        if self.hopeless {
                            return false;
                        }
                        text = &text[1..];
                    }
                    self.hopeless = true;
                    return false;
                }
                b'?' => text = &text[1..],
                b'[' => {
                    let (matched, last) = class(pattern, byte);
                    if !matched {
                        return false;
                    }
                    // `last`: the class's closing `]`, or the pattern's last byte.
                    pattern = &pattern[last..];
                    text = &text[1..];
                }
                _ => {
                    if first == b'\\' && pattern.len() >= 2 {
                        pattern = &pattern[1..];
                    }
                    if pattern[0] != byte {
                        return false;
                    }
                    text = &text[1..];
                }
            }
            pattern = &pattern[1..];
            if text.is_empty() {
                while pattern.first() == Some(&b'*') {
                    pattern = &pattern[1..];
                }
                break;
            }
        }
        pattern.is_empty() && text.is_empty()
    }
}

/// Whether the class that opens `pattern` (at its `[`) takes in `byte`, and the index of
/// the class's last byte.
fn class(pattern: &[u8], byte: u8) -> (bool, usize) {
    let mut i = 1;
    let negated = pattern.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    loop {
        let rest = &pattern[i.min(pattern.len())..];
        match rest {
            [b'\\', escaped, ..] => {
                matched |= *escaped == byte;
                i += 1;
            }
            [b']', ..] => break,
            [] => {
                // Left open: it ends at the pattern's last byte.
                i = pattern.len() - 1;
                break;
            }
            [start, b'-', end, ..] => {
                // C's `char` is signed here: a byte from 0x80 up sorts below every ASCII one.
                let (start, end) = (*start as i8, *end as i8);
                let (low, high) = (start.min(end), start.max(end));
                matched |= (low..=high).contains(&(byte as i8));
                i += 2;
            }
            [single, ..] => matched |= *single == byte,
        }
        i += 1;
    }
    (matched != negated, i)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn patterns() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"*", b"", true),
            (b"*", b"anything", true),
            (b"user:*", b"user:1", true),
            (b"user:*", b"users", false),
            (b"h?llo", b"hello", true),
            (b"h?llo", b"hllo", false),
            (b"h[ae]llo", b"hallo", true),
            (b"h[ae]llo", b"hillo", false),
            (b"h[^e]llo", b"hallo", true),
            (b"h[^e]llo", b"hello", false),
            (b"h[!e]llo", b"hello", true),
            (b"h[a-b]llo", b"hbllo", true),
            (b"h[b-a]llo", b"hallo", true),
            (b"h*llo*", b"heeeelloworld", true),
            (b"a\\*b", b"a*b", true),
            (b"a\\*b", b"axb", false),
            (b"*a*a*a*a*a*a*b", b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (b"*a*a*a*a*a*a*b", b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", true),
            // Redis 7's quirks, each checked against redis-server 7.0.15 on 2026-11-30.
            (b"**", b"", false),
            (b"", b"", true),
            (b"a*", b"a", true),
            (b"[*-]", b"A", true),
            (b"[*-]", b"]", true),
            (b"[ab\\]]", b"]", true),
            (b"[\xc3\xa9-A]", b" ", true),
            (b"[\xc3\xa9-A]", b"z", false),
            (b"[ab", b"b", true),
            (b"[ab", b"bb", false),
            (b"a\\", b"a\\", true),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern, text),
                expected,
                "{} ~ {}",
                pattern.escape_ascii(),
                text.escape_ascii()
            );
        }
    }

    /// Redis 7.0.15 (Debian's, with the CVE-2024-31228 fix) matched a key of 5,000 `a`
    /// against 1,000 `*a` and not against 1,001, checked 2026-11-30.
    #[test]
    fn nesting_stops_where_redis_stops_it() {
        let key = vec![b'a'; 5000];
        assert!(glob_match(&b"*a".repeat(1000), &key));
        assert!(!glob_match(&b"*a".repeat(1001), &key));
        // As deep as a key can be long: no stack overflow, no match.
        let key = vec![b'a'; 65_536];
        assert!(!glob_match(&b"*a".repeat(65_536), &key));
    }

    /// A pattern that cannot match gives up at once, as Redis's does: without that, forty
    /// stars over two hundred bytes would try more ways than the test could ever wait for.
    #[test]
    fn a_hopeless_pattern_stops_early() {
        let mut pattern = b"*a".repeat(40);
        pattern.push(b'b');
        assert!(!glob_match(&pattern, &[b'a'; 200]));
    }
}
