//! The one-shot subcommands: their output, their exit codes, and their errors.

mod common;

use std::path::Path;

use common::{
    assert_same_files, assert_success, json_lines, run, run_on, snapshot, stderr, stdout,
};

fn put(dir: &Path, key: &str, value: &str) {
    let output = run_on(dir, &["put", key, value], b"");
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\n");
}

fn scan(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    let output = run_on(dir, &all, b"");
    assert_success(&output);
    stdout(&output)
}

#[test]
fn put_get_del_and_a_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "greeting", "hello world");
    put(dir.path(), "-dash", "-5");

    let output = run_on(dir.path(), &["get", "greeting"], b"");
    assert_success(&output);
    assert_eq!(stdout(&output), "\"hello world\"\n");
    let output = run_on(dir.path(), &["get", "--raw", "greeting"], b"");
    assert_eq!(output.stdout, b"hello world");
    assert_eq!(stdout(&run_on(dir.path(), &["get", "-dash"], b"")), "-5\n");

    let output = run_on(dir.path(), &["del", "greeting"], b"");
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\n");
    let output = run_on(dir.path(), &["get", "greeting"], b"");
    assert_eq!(output.status.code(), Some(1), "a missing key exits 1");
    assert_eq!(stdout(&output), "(nil)\n");
    assert_eq!(stderr(&output), "");
    let before = snapshot(dir.path());
    let output = run_on(dir.path(), &["del", "greeting"], b"");
    assert_eq!(
        output.status.code(),
        Some(1),
        "deleting an absent key exits 1"
    );
    assert_eq!(stdout(&output), "(nil)\n");
    assert_eq!(stderr(&output), "");
    assert_eq!(
        json_lines(&stdout(&run_on(dir.path(), &["export"], b""))).len(),
        1,
        "the other key is still there"
    );
    // Not a byte written: no delete record either.
    assert_same_files(&before, &snapshot(dir.path()));
}

#[test]
fn put_with_a_ttl_writes_a_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_on(
        dir.path(),
        &["put", "--ttl", "3600", "session", "token"],
        b"",
    );
    assert_success(&output);
    let lines = json_lines(&stdout(&run_on(dir.path(), &["export"], b"")));
    let deadline = lines[0]["expires_at_ms"].as_u64().expect("a deadline");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        deadline > now + 3_590_000 && deadline <= now + 3_600_000,
        "{deadline}"
    );
}

#[test]
fn scan_selects_by_prefix_from_to_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let script =
        "PUT a1 v1\nPUT a2 v2\nPUT a3 v3\nPUT a4 v4\nPUT a5 v5\nPUT b1 w1\nPUT \"c d\" \"e f\"\n";
    assert_success(&run_on(dir.path(), &[], script.as_bytes()));

    assert_eq!(
        scan(dir.path(), &[]),
        "a1 v1\na2 v2\na3 v3\na4 v4\na5 v5\nb1 w1\n\"c d\" \"e f\"\n"
    );
    assert_eq!(
        scan(dir.path(), &["--prefix", "a", "--limit", "2"]),
        "a1 v1\na2 v2\n"
    );
    assert_eq!(
        scan(dir.path(), &["--from", "a3", "--to", "a5"]),
        "a3 v3\na4 v4\n"
    );
    assert_eq!(
        scan(dir.path(), &["--prefix", "a", "--from", "a4"]),
        "a4 v4\na5 v5\n"
    );
    assert_eq!(
        scan(dir.path(), &["--prefix", "a", "--to", "a2"]),
        "a1 v1\n"
    );
    assert_eq!(
        scan(dir.path(), &["--from", "b"]),
        "b1 w1\n\"c d\" \"e f\"\n"
    );
    assert_eq!(scan(dir.path(), &["--from", "z", "--to", "a"]), "");
    assert_eq!(scan(dir.path(), &["--prefix", "x"]), "");
}

#[test]
fn export_then_import_into_a_fresh_store_keeps_every_entry() {
    let source = tempfile::tempdir().unwrap();
    let script = b"PUT plain value\nPUT \"\\xff\\xfekey\" bin-key\nPUT bin-value \"\\x80\\x00\"\nPUT \"uni\xc3\xa9\" \"line\\nbreak\"\nPUT session token EX 3600\n";
    let output = run_on(source.path(), &[], script);
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\nOK\nOK\nOK\nOK\n");

    let exported = run_on(source.path(), &["export"], b"");
    assert_success(&exported);
    let mut lines = json_lines(&stdout(&exported));
    lines.sort_by_key(|l| l.to_string());
    assert_eq!(lines.len(), 5);
    let by_key = |key: &str| {
        lines
            .iter()
            .find(|l| l["key"] == key || l["key_b64"] == key)
            .unwrap_or_else(|| panic!("{key} in {lines:?}"))
            .clone()
    };
    assert_eq!(by_key("plain")["value"], "value");
    assert_eq!(
        by_key("//5rZXk=")["value"],
        "bin-key",
        "a non-UTF-8 key is base64"
    );
    assert_eq!(by_key("bin-value")["value_b64"], "gAA=");
    assert_eq!(by_key("unié")["value"], "line\nbreak");
    let deadline = by_key("session")["expires_at_ms"]
        .as_u64()
        .expect("a deadline");
    assert!(by_key("plain").get("expires_at_ms").is_none());

    let target = tempfile::tempdir().unwrap();
    let file = source.path().join("export.jsonl");
    std::fs::write(&file, &exported.stdout).unwrap();
    let imported = run_on(target.path(), &["import", file.to_str().unwrap()], b"");
    assert_success(&imported);
    assert!(
        stdout(&imported).starts_with("imported 5 entries"),
        "{}",
        stdout(&imported)
    );

    let again = run_on(target.path(), &["export"], b"");
    assert_success(&again);
    assert_eq!(
        stdout(&again),
        stdout(&exported),
        "export, import, export gives the same bytes (deadline {deadline} included)"
    );
}

#[test]
fn import_keeps_absolute_deadlines_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    // Ten years ahead, on an odd millisecond: nothing expires while the test runs.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let base = now + 10 * 365 * 24 * 3600 * 1000 + 17;
    let mut input = String::new();
    for i in 0..3_000u64 {
        let at = base + i * 7;
        input.push_str(&format!(
            "{{\"key\":\"k{i:05}\",\"value\":\"v\",\"expires_at_ms\":{at}}}\n"
        ));
    }
    let output = run_on(dir.path(), &["import", "--batch", "100"], input.as_bytes());
    assert_success(&output);
    let exported = run_on(dir.path(), &["export"], b"");
    assert_success(&exported);
    assert_eq!(stdout(&exported), input, "every deadline as it was given");
}

#[test]
fn import_reads_stdin_skips_expired_entries_and_names_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = b"{\"key\":\"a\",\"value\":\"1\"}\n\n{\"key\":\"old\",\"value\":\"x\",\"expires_at_ms\":1}\n";
    let output = run_on(dir.path(), &["import"], input);
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        "imported 1 entries in 1 batches (1 already expired, skipped)\n"
    );

    let bad = b"{\"key\":\"b\",\"value\":\"2\"}\n{\"key\":\"c\"}\n";
    let output = run_on(dir.path(), &["import", "-", "--batch", "1"], bad);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a bad input line is a usage error"
    );
    assert!(
        stderr(&output).contains("line 2: no \"value\" (or \"value_b64\")"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&run_on(dir.path(), &["get", "b"], b"")), "2\n");

    let array = b"[\"d\",\"4\"]\n";
    let output = run_on(dir.path(), &["import"], array);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("line 1: not a JSON object"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_import_the_store_refuses_says_which_lines_were_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::new();
    for i in 1..=25 {
        let key = if i == 17 {
            "x".repeat(70_000)
        } else {
            format!("k{i}")
        };
        input.push_str(&format!("{{\"key\":\"{key}\",\"value\":\"v\"}}\n"));
    }
    let output = run_on(dir.path(), &["import", "--batch", "10"], input.as_bytes());
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.contains("lines 11-20"), "{message}");
    assert!(
        message.contains("10 entries of earlier batches (lines before 11) were written"),
        "{message}"
    );
    assert!(!message.contains("nothing was written"), "{message}");
    let exported = json_lines(&stdout(&run_on(dir.path(), &["export"], b"")));
    assert_eq!(exported.len(), 10, "the first batch, and only it");
}

#[test]
fn stats_json_is_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "k", "v");
    let output = run_on(dir.path(), &["stats", "--json"], b"");
    assert_success(&output);
    let stats: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(stats["keys"], 1);
    assert_eq!(stats["open_log_records"], 1);
    assert!(stats["log_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["failed"], false);
    assert!(stats["failure"].is_null());

    let text = stdout(&run_on(dir.path(), &["stats"], b""));
    assert!(text.starts_with("keys: 1\n"), "{text}");

    // One name per figure: the text's, the JSON's and the shell's STATS are the same.
    let text_names: Vec<&str> = text
        .lines()
        .map(|line| line.split(": ").next().unwrap())
        .collect();
    let details = ["failure", "last_compaction", "open_corruption_list"];
    let json_names: Vec<&str> = stats
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|name| !details.contains(name))
        .collect();
    let mut sorted_text = text_names.clone();
    sorted_text.sort_unstable();
    assert_eq!(sorted_text, json_names, "serde_json keeps its keys sorted");
    // The shell's STATS is `INFO store`: `# Store`, then `kv_<name>:<value>` lines.
    let shell = stdout(&run_on(dir.path(), &[], b"STATS\n"));
    let shell_names: Vec<&str> = shell
        .lines()
        .skip(1)
        .map(|line| line.split(':').next().unwrap())
        .map(|name| name.strip_prefix("kv_").unwrap())
        .collect();
    assert_eq!(shell_names, text_names);
    for name in &text_names {
        assert!(
            name.ends_with("_total")
                || name.ends_with("_bytes")
                || name.ends_with("_micros")
                || name.ends_with("_ratio")
                || !name.contains("bytes") && !name.contains("duration"),
            "{name} says its unit"
        );
    }
}

#[test]
fn compact_rewrites_the_live_data_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let script: String = (0..50)
        .map(|i| format!("PUT k v{i}\nPUT other{i} x\nDEL other{i}\n"))
        .collect();
    assert_success(&run_on(dir.path(), &[], script.as_bytes()));
    let output = run_on(dir.path(), &["compact"], b"");
    assert_success(&output);
    let report = stdout(&output);
    assert!(report.starts_with("OK snapshot "), "{report}");
    assert!(report.contains(": 1 entries,"), "{report}");
    assert_eq!(stdout(&run_on(dir.path(), &["get", "k"], b"")), "v49\n");
    let stats = stdout(&run_on(dir.path(), &["stats", "--json"], b""));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["snapshot_bytes"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn reading_commands_refuse_a_missing_store_and_create_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("nowhere");
    for args in [
        &["get", "k"][..],
        &["export"],
        &["verify"],
        &["stats"],
        &["scan"],
        &["del", "k"],
        &["compact"],
    ] {
        let output = run_on(&dir, args, b"");
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        assert!(
            stderr(&output).contains(&format!("no store at {}", dir.display())),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(!dir.exists(), "no directory was created");
}

#[test]
fn commands_that_write_refuse_a_store_held_elsewhere_and_readers_read_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "k", "v");
    let holder = kv_store::KvStore::open(dir.path()).expect("the test holds the store");
    holder.put("held", "yes").unwrap();
    for args in [&["put", "k", "w"][..], &["del", "k"], &["compact"], &[]] {
        let output = run_on(dir.path(), args, b"GET k\n");
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        assert!(
            stderr(&output).contains("is open in another process or handle; close it first"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // Readers take no lock: they see the holder's writes, and change no byte.
    let before = snapshot(dir.path());
    assert_eq!(stdout(&run_on(dir.path(), &["get", "held"], b"")), "yes\n");
    assert_eq!(scan(dir.path(), &[]), "held yes\nk v\n");
    assert_eq!(
        json_lines(&stdout(&run_on(dir.path(), &["export"], b""))).len(),
        2
    );
    let stats = run_on(dir.path(), &["stats", "--json"], b"");
    assert_success(&stats);
    assert!(stdout(&stats).contains("\"keys\":2"), "{}", stdout(&stats));
    let verify = run_on(dir.path(), &["verify"], b"");
    assert_success(&verify);
    assert!(
        stdout(&verify).contains("live: 2 keys"),
        "{}",
        stdout(&verify)
    );
    assert_same_files(&before, &snapshot(dir.path()));
    // Readers held nothing: the holder closes as usual, and the store opens again.
    holder.close().unwrap();
    assert_eq!(stdout(&run_on(dir.path(), &["get", "k"], b"")), "v\n");
}

#[test]
fn the_shell_takes_durability_before_or_after_its_name() {
    let dir = tempfile::tempdir().unwrap();
    for (args, appendfsync) in [
        (&["--durability", "sync"][..], "always"),
        (&["--durability", "sync", "shell"], "always"),
        (&["shell", "--durability", "none"], "no"),
        (&["shell"], "everysec"),
    ] {
        let output = run_on(
            dir.path(),
            args,
            b"PUT k v\nGET k\nCONFIG GET appendfsync\n",
        );
        assert_success(&output);
        assert_eq!(
            stdout(&output),
            format!("OK\n\"v\"\n1) \"appendfsync\"\n2) \"{appendfsync}\"\n"),
            "{args:?}"
        );
    }
}

#[test]
fn the_batch_window_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [common::DurabilityCase<'_>; 5] = [
        (&[], "batch", "5"),
        (&["--batch-window", "1000"], "batch", "1000"),
        (&["shell", "--batch-window", "250"], "batch", "250"),
        (
            &["--durability", "batch", "shell", "--batch-window", "7"],
            "batch",
            "7",
        ),
        (&["--durability", "sync"], "sync", "0"),
    ];
    for case in cases {
        let output = run_on(dir.path(), case.0, b"INFO persistence\n");
        assert_success(&output);
        common::assert_durability_shown(&stdout(&output), case);
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frob"][..],
        &["get"],
        &["put", "k"],
        &["put", "--ttl", "0", "k", "v"],
        &["scan", "--limit", "many"],
        &["--durability", "sometimes", "get", "k"],
        &["--durability", "sync", "get", "k"],
        &["get", "--durability", "sync", "k"],
        &["scan", "--durability", "none"],
        &["import", "--durability", "sync"],
        &["bench", "--durability", "sync"],
        &["--dir", "somewhere", "bench", "--quick"],
        &["--durability", "sync", "shell", "--durability", "none"],
        &["--durability", "sync", "serve", "--durability", "none"],
        &["--batch-window", "0"],
        &["--batch-window", "3600001"],
        &["--batch-window", "soon"],
        &["--batch-window", "5", "get", "k"],
        &["--durability", "sync", "--batch-window", "5"],
        &["--batch-window", "5", "shell", "--batch-window", "6"],
        &["serve", "--durability", "none", "--batch-window", "5"],
        &["--connect", "127.0.0.1:1", "--durability", "sync"],
        &["--connect", "127.0.0.1:1", "shell", "--batch-window", "5"],
        &["bench", "--quick", "--dir", "somewhere"],
        &["get", "bad\\escape"],
        &["get", "--hex", "abc"],
        &["put", "\\q", "v"],
        &["bench", "--workload", "W9"],
    ] {
        let output = run(args, b"");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).is_empty(), "{args:?} says why");
    }
}

#[test]
fn help_documents_the_formats_and_exit_codes() {
    let output = run(&["--help"], b"");
    assert_success(&output);
    let help = stdout(&output);
    for needle in [
        "(nil)",
        "(integer)",
        "\\xHH",
        "key_b64",
        "expires_at_ms",
        "EXIT CODES",
        "--hex",
        "READING A STORE IN USE",
        "1  the key is absent",
        "4  kv verify found damage",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}");
    }
}
