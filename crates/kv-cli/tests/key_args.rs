//! Keys on the command line: every key `kv scan` prints, passed back to `kv get` and `kv del`
//! as one argument, reaches the same entry; `--hex` does too.

mod common;

use base64::Engine as _;
use common::{assert_success, run_on, stderr, stdout};

/// Keys no shell-safe word spells as it is.
fn awkward_keys() -> Vec<Vec<u8>> {
    [
        &b"bin\x00key"[..],
        b"a b",
        b"\"quoted\"",
        b"\"",
        b"back\\slash",
        b"\\x41",
        "日本語 ключ".as_bytes(),
        b"-dash",
        b"--raw",
        b"\xff\xfe\x80",
        b"tab\tcr\rnl\n",
        b"(nil)",
        b"#hash",
        b"ERR x",
        b"'single'",
        b"plain",
        b"\x07\x08\x1b[0m",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect()
}

/// The first word of a line kv printed: up to the first space, or a quoted word up to its
/// closing quote.
fn first_word(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return &line[..i + 2],
                _ => {}
            }
        }
        panic!("no closing quote in {line}");
    }
    line.split(' ').next().unwrap()
}

/// Writes `keys` (value: the key's index) through `kv import`.
fn import(dir: &std::path::Path, keys: &[Vec<u8>]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let lines: String = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            format!(
                "{{\"key_b64\":\"{}\",\"value\":\"v{i}\"}}\n",
                b64.encode(key)
            )
        })
        .collect();
    assert_success(&run_on(dir, &["import"], lines.as_bytes()));
}

#[test]
fn every_key_scan_prints_reaches_its_entry_through_get_and_del() {
    let dir = tempfile::tempdir().unwrap();
    let keys = awkward_keys();
    import(dir.path(), &keys);
    let scanned = run_on(dir.path(), &["scan"], b"");
    assert_success(&scanned);
    let lines: Vec<String> = stdout(&scanned).lines().map(String::from).collect();
    assert_eq!(lines.len(), keys.len(), "{lines:?}");

    for line in &lines {
        let word = first_word(line);
        let value = line[word.len() + 1..].to_string();
        // `--` only because one key is `--raw`, which is an option otherwise.
        let got = run_on(dir.path(), &["get", "--", word], b"");
        assert_success(&got);
        assert_eq!(stdout(&got), format!("{value}\n"), "kv get {word}");
        let deleted = run_on(dir.path(), &["del", "--", word], b"");
        assert_success(&deleted);
        assert_eq!(stdout(&deleted), "OK\n", "kv del {word}");
        let gone = run_on(dir.path(), &["get", "--", word], b"");
        assert_eq!(gone.status.code(), Some(1), "kv get {word} after del");
    }
    assert_eq!(
        stdout(&run_on(dir.path(), &["scan"], b"")),
        "",
        "every entry deleted"
    );

    // A key with a leading dash needs no `--`.
    import(dir.path(), &[b"-dash".to_vec()]);
    assert_eq!(stdout(&run_on(dir.path(), &["get", "-dash"], b"")), "v0\n");
}

#[test]
fn hex_keys_and_values_reach_the_same_entries() {
    let dir = tempfile::tempdir().unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for (i, key) in awkward_keys().iter().enumerate() {
        let value = format!("\u{0}v{i}");
        let put = run_on(
            dir.path(),
            &["put", "--hex", &hex(key), &hex(value.as_bytes())],
            b"",
        );
        assert_success(&put);
        let got = run_on(dir.path(), &["get", "--raw", "--hex", &hex(key)], b"");
        assert_success(&got);
        assert_eq!(got.stdout, value.as_bytes());
    }
    let scanned = run_on(dir.path(), &["scan", "--hex", "--prefix", "62696e"], b"");
    assert_eq!(stdout(&scanned), "\"bin\\x00key\" \"\\x00v0\"\n");
    assert_success(&run_on(
        dir.path(),
        &["del", "--hex", "62696e006b6579"],
        b"",
    ));
    let gone = run_on(dir.path(), &["get", "bin\\x00key"], b"");
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
}

#[test]
fn escapes_in_keys_and_scan_bounds_are_decoded_and_values_taken_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&run_on(dir.path(), &["put", "k\\x01", "line\nbreak"], b""));
    assert_success(&run_on(dir.path(), &["put", "\"k 2\"", "\\"], b""));
    // JSON keeps its escapes, and a quoted value its quotes.
    assert_success(&run_on(dir.path(), &["put", "j", r#"{"a":"x\"y\n"}"#], b""));
    assert_success(&run_on(dir.path(), &["put", "a-q", "\"hi\""], b""));
    let got = run_on(dir.path(), &["get", "--raw", "k\\x01"], b"");
    assert_eq!(got.stdout, b"line\nbreak");
    let got = run_on(dir.path(), &["get", "--raw", "k 2"], b"");
    assert_eq!(got.stdout, b"\\");
    let got = run_on(dir.path(), &["get", "--raw", "j"], b"");
    assert_eq!(got.stdout, br#"{"a":"x\"y\n"}"#);
    let got = run_on(dir.path(), &["get", "--raw", "a-q"], b"");
    assert_eq!(got.stdout, b"\"hi\"");
    assert_eq!(
        stdout(&run_on(dir.path(), &["scan", "--from", "k\\x02"], b"")),
        "\"k 2\" \"\\\\\"\n"
    );
    assert_eq!(
        stdout(&run_on(
            dir.path(),
            &["scan", "--prefix", "\"k\\x01\""],
            b""
        )),
        "\"k\\x01\" \"line\\nbreak\"\n"
    );
}
