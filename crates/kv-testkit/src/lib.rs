//! What the workspace's tests share.
//!
//! Crash tests need a writer they can kill for real. Each such test binary holds an ignored
//! test that does the writing when an environment variable says so; [`spawn_child`] re-runs
//! the binary with only that test and its arguments, its standard output piped back, ready
//! for SIGKILL, and [`child_args`] is how that test reads its arguments (or learns it is not
//! the child, in a normal run).
//!
//! The child tells the parent what it acknowledged with [`acknowledge`] (a line `ack <thread>
//! <unit>` once a write has returned); [`kill_after_acks`] reads those lines, kills the child
//! with SIGKILL after a chosen number of them, and returns the last unit acknowledged by each
//! thread ([`Acks`]), which is what the test then checks the reopened store against. The
//! crash torture run (`kv-torture`) uses the same lines and [`Acks`], killing on a timer.
//!
//! [`cluster::Node`] is a node of a replicated cluster as a real `kv serve --node-id`
//! process, for kv-cli's cluster tests and the fault-injection run (`kv-jepsen`).
//!
//! ```no_run
//! // In the parent test:
//! let mut child = kv_testkit::spawn_child("crash_child", "MY_CRASH_CHILD", &["/tmp/dir", "sync"]);
//! let acks = kv_testkit::kill_after_acks(&mut child, 100, |_other_line| {});
//! let last_of_thread_0 = acks.last(0);
//! // In `crash_child`:
//! let Some(args) = kv_testkit::child_args("MY_CRASH_CHILD") else { return };
//! assert_eq!(args, ["/tmp/dir", "sync"]);
//! # let write = || ();
//! for unit in 0.. {
//!     write();
//!     kv_testkit::acknowledge(0, unit);
//! }
//! ```

#![forbid(unsafe_code)]

mod acks;
pub mod cluster;

use std::process::{Child, Command, Stdio};

pub use acks::{acknowledge, kill_after_acks, Acks};

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
