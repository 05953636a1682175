//! The shell on pipes: every line answered at once, quoting, errors, and how it starts.

mod common;

use std::time::Duration;

use common::{assert_success, run, run_in, stdout, Shell};

#[test]
fn each_line_is_answered_before_the_next_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask("PUT user:1 ada"), "OK");
    assert_eq!(shell.ask("PUT user:2 bob"), "OK");
    assert_eq!(shell.ask("PUT team:1 core"), "OK");
    assert_eq!(shell.ask("GET user:1"), "ada");
    assert_eq!(shell.ask("GET user:9"), "(nil)");
    assert_eq!(
        shell.scan("SCAN"),
        ["team:1 core", "user:1 ada", "user:2 bob"]
    );
    assert_eq!(shell.scan("SCAN user:"), ["user:1 ada", "user:2 bob"]);
    assert_eq!(shell.scan("SCAN LIMIT 1"), ["team:1 core"]);
    assert_eq!(shell.scan("SCAN user: LIMIT 1"), ["user:1 ada"]);
    assert_eq!(shell.scan("SCAN nothing:"), Vec::<String>::new());
    assert_eq!(shell.ask("DEL user:1"), "OK");
    assert_eq!(shell.ask("DEL user:1"), "OK");
    assert_eq!(shell.ask("GET user:1"), "(nil)");
    assert_eq!(shell.ask("SYNC"), "OK");
    let stats = shell.ask("STATS");
    assert!(stats.starts_with("keys=2 "), "{stats}");
    assert!(stats.contains(" log_segments="), "{stats}");
    assert_eq!(shell.ask("COMPACT"), "OK");
    assert_eq!(shell.ask("GET user:2"), "bob");
    assert!(shell.ask("HELP").starts_with("commands: PUT key value"));
    assert_eq!(shell.ask("QUIT"), "OK");
    let (status, rest) = shell.finish();
    assert!(status.success());
    assert!(rest.is_empty(), "nothing after QUIT: {rest:?}");

    let mut again = Shell::start(dir.path(), &[]);
    assert_eq!(again.ask("GET user:2"), "bob");
    assert_eq!(again.ask("exit"), "OK");
}

#[test]
fn commands_and_keywords_are_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask("put k v ex 100"), "OK");
    assert_eq!(shell.ask("Get k"), "v");
    assert_eq!(shell.scan("scan k limit 5"), ["k v"]);
    assert_eq!(shell.ask("dEl k"), "OK");
}

#[test]
fn quoted_words_and_escapes_round_trip_through_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask(r#"PUT "a key" "two words""#), "OK");
    assert_eq!(shell.ask(r#"GET "a key""#), r#""two words""#);
    assert_eq!(shell.ask(r#"PUT bin "\xff\x00\n\t\"q\"\\""#), "OK");
    let printed = shell.ask("GET bin");
    assert_eq!(printed, r#""\xff\0\n\t\"q\"\\""#);
    // What kv printed is valid input that means the same bytes.
    assert_eq!(shell.ask(&format!("PUT copy {printed}")), "OK");
    assert_eq!(shell.ask("GET copy"), printed);
    assert_eq!(shell.ask(r#"PUT "(nil)" "(nil)""#), "OK");
    assert_eq!(shell.ask(r#"GET "(nil)""#), r#""(nil)""#);
    assert_eq!(shell.ask(r#"PUT "" empty-key"#), "OK");
    assert_eq!(shell.ask(r#"GET """#), "empty-key");
    assert_eq!(shell.ask("PUT café naïve"), "OK");
    assert_eq!(shell.ask("GET café"), "naïve");
    assert_eq!(
        shell.scan("SCAN"),
        [
            r#""" empty-key"#,
            r#""(nil)" "(nil)""#,
            r#""a key" "two words""#,
            r#"bin "\xff\0\n\t\"q\"\\""#,
            "café naïve",
            r#"copy "\xff\0\n\t\"q\"\\""#,
        ]
    );
}

#[test]
fn bad_lines_answer_err_and_the_shell_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    let cases = [
        ("FROB k", "ERR unknown command \"FROB\""),
        (
            r#"PUT k "open"#,
            "ERR unterminated quote starting at column 7",
        ),
        (r#"PUT k "\q""#, r#"ERR bad escape "\\q" at column 8"#),
        (
            r#"PUT k ab"c""#,
            "ERR a quote must open and close a whole word",
        ),
        (
            "GET",
            "ERR wrong number of arguments for GET: usage: GET key",
        ),
        ("GET a b", "ERR wrong number of arguments for GET"),
        ("PUT k", "ERR wrong number of arguments for PUT"),
        ("PUT k v EX", "ERR wrong number of arguments for PUT"),
        ("PUT k v EX soon", "ERR EX seconds must be a whole number"),
        ("PUT k v EX 0", "ERR EX seconds must be a whole number"),
        ("SCAN a LIMIT -1", "ERR LIMIT must be a whole number"),
        ("STATS now", "ERR wrong number of arguments for STATS"),
    ];
    for (line, expected) in cases {
        let answer = shell.ask(line);
        assert!(answer.starts_with(expected), "{line:?} answered {answer:?}");
    }
    assert_eq!(shell.ask("PUT k v"), "OK");
    assert_eq!(shell.ask("GET k"), "v");
    let (status, _) = shell.finish();
    assert!(status.success(), "ERR answers do not fail the shell");
}

#[test]
fn blank_lines_and_comments_get_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    shell.send("");
    shell.send("   ");
    shell.send("# PUT k v");
    shell.send("  # indented");
    assert!(shell.silent_for(Duration::from_millis(200)));
    assert_eq!(shell.ask("GET k"), "(nil)");
}

#[test]
fn a_ttl_entry_disappears_after_its_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::start(dir.path(), &[]);
    assert_eq!(shell.ask("PUT short lived EX 1"), "OK");
    assert_eq!(shell.ask("GET short"), "lived");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(shell.ask("GET short"), "(nil)");
}

#[test]
fn a_script_piped_into_kv_gets_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let script = b"# a script\nPUT a 1\nPUT b 2\r\nGET a\nBOGUS\nSCAN\nDEL a\nGET a\n";
    let output = run(&["--dir", dir.path().to_str().unwrap()], script);
    assert_success(&output);
    assert_eq!(
        stdout(&output),
        "OK\nOK\n1\nERR unknown command \"BOGUS\" (commands: PUT GET DEL SCAN STATS COMPACT SYNC HELP QUIT)\na 1\nb 2\n(end)\nOK\n(nil)\n"
    );
}

#[test]
fn kv_with_no_arguments_reads_stdin_on_kv_data_and_kv_shell_does_the_same() {
    let cwd = tempfile::tempdir().unwrap();
    let output = run_in(Some(cwd.path()), &[], b"PUT a 1\n");
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\n");
    assert!(
        cwd.path().join("kv-data/wal").is_dir(),
        "the store is ./kv-data"
    );

    let output = run_in(Some(cwd.path()), &["shell"], b"GET a\nPUT b 2\n");
    assert_success(&output);
    assert_eq!(stdout(&output), "1\nOK\n");

    let output = run_in(Some(cwd.path()), &["get", "b"], b"");
    assert_success(&output);
    assert_eq!(stdout(&output), "2\n");
}

#[test]
fn input_that_is_not_utf8_is_taken_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &["--dir", dir.path().to_str().unwrap()],
        b"PUT k\xfe v\xff\nGET k\xfe\nGET \"k\\xfe\"\n",
    );
    assert_success(&output);
    assert_eq!(stdout(&output), "OK\n\"v\\xff\"\n\"v\\xff\"\n");
}

#[test]
fn err_lines_quote_escape_and_cut_what_they_echo() {
    let dir = tempfile::tempdir().unwrap();
    let mut script = b"\x1b[2J\x00BOOM k\n".to_vec();
    script.extend(std::iter::repeat_n(b'X', 10_000_000));
    script.extend(b"\nPUT k v EX \x1b[31m\n");
    let output = run(&["--dir", dir.path().to_str().unwrap()], &script);
    assert_success(&output);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one answer a line");
    assert!(
        lines[0].starts_with(r#"ERR unknown command "\x1b[2J\0BOOM""#),
        "{:?}",
        lines[0]
    );
    assert!(
        lines[1].len() < 300,
        "a 10 MB word is cut: {}",
        lines[1].len()
    );
    assert!(lines[1].contains("10000000 bytes in all"), "{}", lines[1]);
    assert!(lines[2].contains(r#"not "\x1b[31m""#), "{}", lines[2]);
    assert!(
        !out.bytes().any(|b| b == 0x1b || b == 0),
        "no raw escape or NUL reaches the terminal"
    );
}
