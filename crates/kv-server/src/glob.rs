//! Redis's glob patterns, for `KEYS` and `CONFIG GET`.

/// Whether `text` matches `pattern`: `*` any run, `?` any byte, `[abc]`, `[^a]`, `[a-z]`,
/// `\x` the byte `x`. Case-sensitive. Linear backtracking to the last `*`, so no pattern
/// takes exponential time.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text it swallowed to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p + 1, t));
            p += 1;
            continue;
        }
        if p < pattern.len() {
            if let Some((matched, next)) = match_one(pattern, p, text[t]) {
                if matched {
                    p = next;
                    t += 1;
                    continue;
                }
            }
        }
        match star {
            Some((after, swallowed)) => {
                p = after;
                t = swallowed + 1;
                star = Some((after, swallowed + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether the pattern element at `p` matches `byte`, and where the next element starts.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<(bool, usize)> {
    match pattern[p] {
        b'?' => Some((true, p + 1)),
        b'\\' if p + 1 < pattern.len() => Some((pattern[p + 1] == byte, p + 2)),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    matched |= pattern[i + 1] == byte;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']'
                {
                    let (low, high) = (
                        pattern[i].min(pattern[i + 2]),
                        pattern[i].max(pattern[i + 2]),
                    );
                    matched |= (low..=high).contains(&byte);
                    i += 3;
                } else {
                    matched |= pattern[i] == byte;
                    i += 1;
                }
            }
            // An unclosed class ends at the pattern's end, as in Redis.
            Some((matched != negate, (i + 1).min(pattern.len())))
        }
        literal => Some((literal == byte, p + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("user:*", "user:1", true),
            ("user:*", "users", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h*llo*", "heeeelloworld", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }
}
