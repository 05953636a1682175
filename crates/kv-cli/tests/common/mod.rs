//! Helpers of the kv-cli tests: running the `kv` binary the way a script does, a shell
//! driven line by line, fixture copies and byte-for-byte snapshots of directories.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How long an answer may take before the test fails instead of hanging.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `kv serve` on the store in `dir`, on a free port of 127.0.0.1, with `extra`
/// arguments, and waits for its ready line; returns the child and the address it printed.
pub fn spawn_serve(dir: &Path, extra: &[&str]) -> (Child, std::net::SocketAddr) {
    let mut child = kv(&["--dir", dir.to_str().unwrap()])
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .env_remove("KV_REQUIREPASS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("ready: listening on ")
        .unwrap_or_else(|| panic!("no ready line: {line:?}"))
        .trim()
        .parse()
        .unwrap();
    (child, addr)
}

/// The cases of a test that the durability options reach the store: the arguments, then
/// the `kv_durability` and `kv_batch_window_ms` that `INFO persistence` should show.
pub type DurabilityCase<'a> = (&'a [&'a str], &'a str, &'a str);

/// Asserts that `info` (an `INFO persistence` text) shows `durability` and `window`.
pub fn assert_durability_shown(info: &str, (args, durability, window): DurabilityCase<'_>) {
    for line in [
        format!("kv_durability:{durability}"),
        format!("kv_batch_window_ms:{window}"),
    ] {
        assert!(
            info.lines().any(|l| l.trim_end() == line),
            "{args:?}: no {line:?} in {info}"
        );
    }
}

/// The `kv` binary, with `args`.
pub fn kv(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kv"));
    command.args(args);
    command
}

/// Starts `command` with its three standard streams piped.
/// Spawns `command` with its three streams piped.
pub fn spawn_piped(command: &mut Command) -> Child {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kv")
}

/// Runs `kv args` with `stdin` as its input; returns its output.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_in(None, args, stdin)
}

/// Runs `kv args` in directory `cwd` (the test's own when `None`).
pub fn run_in(cwd: Option<&Path>, args: &[&str], stdin: &[u8]) -> Output {
    let mut command = kv(args);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    output_of(command, stdin)
}

/// Runs `command` with `stdin` as its input (written beside it, so a large input cannot
/// deadlock against its output); returns its output.
pub fn output_of(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = spawn_piped(&mut command);
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("wait for kv");
    writer.join().expect("stdin writer");
    output
}

/// `kv --dir DIR args...`.
pub fn run_on(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec!["--dir", dir.to_str().expect("UTF-8 temp path")];
    all.extend_from_slice(args);
    run(&all, stdin)
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("kv prints UTF-8")
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that `output` is a success, showing stderr otherwise.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "kv failed with {:?}: {}",
        output.status,
        stderr(output)
    );
}

/// A `kv` shell on piped standard input and output, driven one line at a time.
pub struct Shell {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Shell {
    /// Starts `kv --dir DIR` followed by `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Shell {
        let mut command = kv(&["--dir", dir.to_str().expect("UTF-8 temp path")]);
        command.args(extra);
        let mut child = spawn_piped(&mut command);
        let stdin = child.stdin.take();
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        Shell {
            child,
            stdin,
            lines,
        }
    }

    /// Writes `line` and a newline, unbuffered.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to kv");
        stdin.flush().expect("flush to kv");
    }

    /// The next line kv prints; fails if none comes within [`ANSWER_TIMEOUT`] (an answer
    /// that was not flushed would never come while kv waits for more input).
    pub fn answer(&self) -> String {
        match self.lines.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no answer within {ANSWER_TIMEOUT:?}: was it flushed?")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("kv closed its output"),
        }
    }

    /// Sends `line` and returns its one-line answer.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.answer()
    }

    /// Closes kv's input and waits for it to exit; returns its status and remaining output.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for kv");
        (status, self.lines.iter().collect())
    }
}

/// A thread that sends each line of `output` through the returned channel.
pub fn read_lines(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            match line {
                Ok(line) => {
                    if send.send(line).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    receive
}

/// The nori-wal 0.1 fixtures of the kv-wal crate.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kv-wal/tests/fixtures/nori-wal-0.1")
}

/// Copies fixture store `name` (`clean` or `torn`) into `to`.
pub fn copy_fixture(name: &str, to: &Path) {
    copy_dir(&fixtures().join(name), to);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a fixture file");
        }
    }
}

/// `expected.tsv` of the fixtures: key to value.
pub fn expected_entries() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(fixtures().join("expected.tsv")).expect("expected.tsv");
    text.lines()
        .map(|line| {
            let (key, value) = line.split_once('\t').expect("key TAB value");
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// Every file under `dir` (relative path) with its exact bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).expect("read the directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let bytes = std::fs::read(&path).expect("read a file");
            files.insert(
                path.strip_prefix(root).expect("under root").to_path_buf(),
                bytes,
            );
        }
    }
}

/// Asserts two snapshots are the same files with the same bytes.
pub fn assert_same_files(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) {
    let names = |s: &BTreeMap<PathBuf, Vec<u8>>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "the same files");
    for (path, bytes) in before {
        let now = &after[path];
        assert_eq!(
            bytes.len(),
            now.len(),
            "{} keeps its length",
            path.display()
        );
        assert!(bytes == now, "{} keeps its bytes", path.display());
    }
}

/// The JSON lines of `kv export` as objects.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// `kv export` of `dir` as a map of UTF-8 key to UTF-8 value.
pub fn export_map(dir: &Path) -> BTreeMap<String, String> {
    let output = run_on(dir, &["export"], b"");
    assert_success(&output);
    json_lines(&stdout(&output))
        .into_iter()
        .map(|line| {
            (
                line["key"].as_str().expect("a UTF-8 key").to_string(),
                line["value"].as_str().expect("a UTF-8 value").to_string(),
            )
        })
        .collect()
}

/// Writes `count` keys (`key00000`...) through the shell and closes the store.
pub fn write_store(dir: &Path, count: usize) {
    let script: String = (0..count)
        .map(|i| format!("PUT key{i:05} value-{i}-{}\n", "x".repeat(40)))
        .collect();
    assert_success(&run_on(dir, &[], script.as_bytes()));
}
