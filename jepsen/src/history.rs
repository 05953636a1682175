//! The recorded history: each operation a client invoked, when, and how it ended.
//!
//! Real-time order comes from one counter that every client draws from just before it sends
//! a request and just after its reply arrives: if an operation's return was drawn before
//! another's invocation, it really did end before the other began. The wall-clock offsets
//! are for the report and for the nemesis's windows.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `GET key`.
    Get(String),
    /// `SET key value`.
    Set(String, i64),
    /// `INCR key`.
    Incr(String),
    /// `MULTI; SET set value; INCR incr; EXEC`.
    Multi {
        /// The key set.
        set: String,
        /// Its value.
        value: i64,
        /// The key incremented.
        incr: String,
    },
    /// `SET key value` of a key that nothing else writes: it must be on every node at the
    /// end if acknowledged, and on none if refused.
    Log(String, i64),
}

impl Op {
    /// Whether it changes the store.
    pub fn writes(&self) -> bool {
        !matches!(self, Op::Get(_))
    }
}

/// What the reply said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A `SET` or `Log` done.
    Done,
    /// A `GET`'s value (`None`: no such key).
    Value(Option<i64>),
    /// An `INCR`'s result, or a `MULTI` block's (its `INCR`'s).
    Incremented(i64),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged, with its reply.
    Ok(Reply),
    /// Refused with an error that says nothing was applied.
    Failed(String),
    /// Unknown: a timeout, a dropped connection, or an error that says the write may or may
    /// not have been applied. It may take effect at any time after its invocation, or never.
    Indeterminate(String),
}

/// One operation of the history.
#[derive(Clone, Debug)]
pub struct Record {
    /// The logical process that ran it: a client becomes a new process after an
    /// indeterminate operation, since the old one may still be in flight.
    pub process: u64,
    /// The node it was sent to.
    pub node: usize,
    /// What was asked.
    pub op: Op,
    /// Its place in real-time order when invoked, and when it returned (for an
    /// indeterminate operation, when it was given up: the checks treat it as never).
    pub invoked: u64,
    /// See `invoked`.
    pub returned: u64,
    /// Since the run began, when invoked and when it returned.
    pub invoked_at: Duration,
    /// See `invoked_at`.
    pub returned_at: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

#[cfg(test)]
impl Record {
    /// A record of node 0 for the checks' tests, its ticks also its milliseconds.
    pub fn at(process: u64, op: Op, invoked: u64, returned: u64, outcome: Outcome) -> Record {
        Record {
            process,
            node: 0,
            op,
            invoked,
            returned,
            invoked_at: Duration::from_millis(invoked),
            returned_at: Duration::from_millis(returned),
            outcome,
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>9.3}s .. {:>9.3}s] process {:>4} node {} {:?} -> {:?}",
            self.invoked_at.as_secs_f64(),
            self.returned_at.as_secs_f64(),
            self.process,
            self.node + 1,
            self.op,
            self.outcome
        )
    }
}

/// Where the clients record their operations.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    clock: AtomicU64,
    processes: AtomicU64,
    records: Mutex<Vec<Record>>,
}

/// An operation sent and not yet recorded.
#[derive(Debug)]
pub struct Invocation {
    process: u64,
    node: usize,
    op: Op,
    invoked: u64,
    invoked_at: Duration,
}

impl Recorder {
    /// A recorder whose times count from now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            clock: AtomicU64::new(0),
            processes: AtomicU64::new(0),
            records: Mutex::new(Vec::new()),
        }
    }

    /// The time since the run began.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A new logical process's id.
    pub fn new_process(&self) -> u64 {
        self.processes.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks `op` as invoked now by `process` on `node`: call just before sending it.
    pub fn invoke(&self, process: u64, node: usize, op: Op) -> Invocation {
        Invocation {
            process,
            node,
            op,
            invoked: self.clock.fetch_add(1, Ordering::SeqCst),
            invoked_at: self.elapsed(),
        }
    }

    /// Records how `invocation` ended: call just after its reply (or error) came.
    pub fn complete(&self, invocation: Invocation, outcome: Outcome) {
        let returned = self.clock.fetch_add(1, Ordering::SeqCst);
        let returned_at = self.elapsed();
        let Invocation {
            process,
            node,
            op,
            invoked,
            invoked_at,
        } = invocation;
        self.records
            .lock()
            .expect("the history's lock")
            .push(Record {
                process,
                node,
                op,
                invoked,
                returned,
                invoked_at,
                returned_at,
                outcome,
            });
    }

    /// The history, in the order of invocation.
    pub fn into_records(self) -> Vec<Record> {
        let mut records = self.records.into_inner().expect("the history's lock");
        records.sort_by_key(|r| r.invoked);
        records
    }
}

/// How an error ends an operation: failed for sure, or indeterminate.
///
/// The replicated server says "may or may not have been applied" whenever a write was
/// proposed and its fate is unknown; its other refusals (`CLUSTERDOWN` with no leader or
/// no link to it, `READONLY` before anything was proposed, `TRYAGAIN` for an entry skipped
/// because leadership changed) mean nothing was applied. A timeout or a dropped connection
/// says nothing either way. Any other error is unexpected in this workload (`None`).
pub fn classify(error: &redis::RedisError) -> Option<Outcome> {
    let text = error.to_string();
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || text.contains("may or may not")
    {
        return Some(Outcome::Indeterminate(text));
    }
    match error.code() {
        Some("CLUSTERDOWN" | "READONLY" | "TRYAGAIN") => Some(Outcome::Failed(text)),
        _ => None,
    }
}
