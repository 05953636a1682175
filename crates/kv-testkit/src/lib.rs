//! What the workspace's tests share.
//!
//! Crash tests need a writer they can kill for real. Each such test binary holds an ignored
//! test that does the writing when an environment variable says so; [`spawn_child`] re-runs
//! the binary with only that test, its standard output piped back, ready for SIGKILL.
//!
//! ```no_run
//! let mut child = kv_testkit::spawn_child("crash_child", "MY_CRASH_CHILD", "/tmp/dir|sync");
//! child.kill().unwrap();
//! ```

#![forbid(unsafe_code)]

use std::process::{Child, Command, Stdio};

/// Re-runs the current test binary as a child process that runs only the ignored test
/// `test`, with `env` set to `spec` (the test returns at once without it). Its standard
/// output is piped; its standard error is discarded.
pub fn spawn_child(test: &str, env: &str, spec: &str) -> Child {
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
