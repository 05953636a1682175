//! What the workspace's tests share.
//!
//! Crash tests need a writer they can kill for real. Each such test binary holds an ignored
//! test that does the writing when an environment variable says so; [`spawn_child`] re-runs
//! the binary with only that test and its arguments, its standard output piped back, ready
//! for SIGKILL, and [`child_args`] is how that test reads its arguments (or learns it is not
//! the child, in a normal run).
//!
//! ```no_run
//! // In the parent test:
//! let mut child = kv_testkit::spawn_child("crash_child", "MY_CRASH_CHILD", &["/tmp/dir", "sync"]);
//! child.kill().unwrap();
//! // In `crash_child`:
//! let Some(args) = kv_testkit::child_args("MY_CRASH_CHILD") else { return };
//! assert_eq!(args, ["/tmp/dir", "sync"]);
//! ```

#![forbid(unsafe_code)]

use std::process::{Child, Command, Stdio};

/// Separates a child's arguments in its environment variable.
const SEPARATOR: char = '|';

/// Re-runs the current test binary as a child process that runs only the ignored test
/// `test`, passing it `args` through the environment variable `env` (the test returns at once
/// without it). Its standard output is piped; its standard error is discarded.
pub fn spawn_child(test: &str, env: &str, args: &[&str]) -> Child {
    debug_assert!(args.iter().all(|a| !a.contains(SEPARATOR)));
    let spec = args.join(&SEPARATOR.to_string());
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child process")
}

/// The arguments [`spawn_child`] passed through `env`, or `None` when this process is not such
/// a child.
pub fn child_args(env: &str) -> Option<Vec<String>> {
    let spec = std::env::var(env).ok()?;
    Some(spec.split(SEPARATOR).map(String::from).collect())
}
