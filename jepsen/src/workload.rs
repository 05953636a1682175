//! The clients: each on a connection of its own to a random node, doing `GET`, `SET`,
//! `INCR`, `MULTI`/`EXEC` (a `SET` and an `INCR` of another key) on a handful of keys, and
//! `SET`s of keys of their own (`Op::Log`), every operation recorded.
//!
//! The handful of keys changes every [`OPS_PER_EPOCH`] operations: each key's history stays
//! short enough for the linearizability search, while the clients still contend on the same
//! few keys at any moment. Each `SET` writes a value of its own, [`STRIDE`] apart from the others.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::{Connection, ConnectionLike, Value};

use crate::check::STRIDE;
use crate::history::{classify, Op, Outcome, Recorder, Reply};

/// How many operations (of all clients together) use the same keys. `stateright`'s search has
/// no memory of the states it has explored, so its time grows exponentially with the length
/// of a key's history: 80 operations of one key by 6 clients take it up to seconds, and one
/// history of 70 in a run took over 30 seconds; 40 take milliseconds (tested in `check.rs`).
/// An epoch gives each key about 30 of them, whatever the machine's speed.
pub const OPS_PER_EPOCH: u64 = 150;

/// The keys in use at a time.
pub const KEYS: u64 = 5;

/// How long an operation may take before it is indeterminate: longer than a pause or a
/// loss of the majority lasts, so that most operations caught by one still end.
pub const OP_TIMEOUT: Duration = Duration::from_secs(6);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What the clients share.
#[derive(Debug)]
pub struct Clients<'a> {
    /// The nodes' client addresses.
    pub addrs: &'a [String],
    /// Where operations are recorded.
    pub recorder: &'a Recorder,
    /// Set when the clients are to stop.
    pub stop: &'a AtomicBool,
    /// Errors no operation of this workload should meet, as `node: op: error`.
    pub unexpected: &'a Mutex<Vec<String>>,
    /// Draws the values `SET` writes.
    pub values: &'a AtomicU64,
    /// Counts the operations begun, for the epochs.
    pub begun: AtomicU64,
}

impl Clients<'_> {
    /// Client `index`'s loop, until `stop`.
    pub fn run(&self, index: usize, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut process = self.recorder.new_process();
        let mut connection: Option<(usize, Connection)> = None;
        let mut logged = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let (node, c) = match &mut connection {
                Some((node, c)) => (*node, c),
                None => {
                    let node = rng.usize(..self.addrs.len());
                    match connect(&self.addrs[node]) {
                        Ok(c) => {
                            let (node, c) = connection.insert((node, c));
                            (*node, c)
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                }
            };
            let op = self.next_op(&mut rng, index, &mut logged);
            let invocation = self.recorder.invoke(process, node, op.clone());
            let outcome = match run(c, &op) {
                Ok(reply) => Outcome::Ok(reply),
                Err(error) => classify(&error).unwrap_or_else(|| {
                    let text = error.to_string();
                    self.unexpected
                        .lock()
                        .expect("the unexpected errors' lock")
                        .push(format!("node {}: {op:?}: {text}", node + 1));
                    Outcome::Indeterminate(text)
                }),
            };
            let ok = matches!(outcome, Outcome::Ok(_));
            if let Outcome::Indeterminate(_) = outcome {
                // A reply may still come on this connection, and the operation may still
                // take effect: this client goes on as a new process, on a new connection.
                process = self.recorder.new_process();
                connection = None;
            }
            self.recorder.complete(invocation, outcome);
            if !ok {
                // Probably no leader for now, or a node down: another node, after a pause.
                connection = None;
                std::thread::sleep(Duration::from_millis(20));
            } else if rng.u8(..32) == 0 {
                connection = None;
            }
        }
    }

    fn next_op(&self, rng: &mut fastrand::Rng, index: usize, logged: &mut u64) -> Op {
        let epoch = self.begun.fetch_add(1, Ordering::Relaxed) / OPS_PER_EPOCH;
        let key = |i: u64| format!("e{epoch}:k{i}");
        let value = || self.values.fetch_add(1, Ordering::Relaxed) as i64 * STRIDE;
        let a = rng.u64(..KEYS);
        match rng.u8(..100) {
            0..35 => Op::Get(key(a)),
            35..58 => Op::Set(key(a), value()),
            58..70 => Op::Incr(key(a)),
            70..82 => Op::Multi {
                set: key(a),
                value: value(),
                incr: key((a + 1 + rng.u64(..KEYS - 1)) % KEYS),
            },
            _ => {
                *logged += 1;
                Op::Log(format!("log:{index}:{logged}"), value())
            }
        }
    }
}

fn connect(addr: &str) -> redis::RedisResult<Connection> {
    let connection = redis::Client::open(format!("redis://{addr}/"))?
        .get_connection_with_timeout(CONNECT_TIMEOUT)?;
    connection.set_read_timeout(Some(OP_TIMEOUT))?;
    connection.set_write_timeout(Some(OP_TIMEOUT))?;
    Ok(connection)
}

/// Sends `op` and reads its reply.
fn run(c: &mut Connection, op: &Op) -> redis::RedisResult<Reply> {
    Ok(match op {
        Op::Get(key) => Reply::Value(redis::cmd("GET").arg(key).query(c)?),
        Op::Set(key, value) | Op::Log(key, value) => {
            let () = redis::cmd("SET").arg(key).arg(value).query(c)?;
            Reply::Done
        }
        Op::Incr(key) => Reply::Incremented(redis::cmd("INCR").arg(key).query(c)?),
        Op::Multi { set, value, incr } => {
            // Sent as plain commands and EXEC's reply read here: the redis crate's atomic
            // pipeline reports an error reply to EXEC as a parse error, without its code.
            let mut pipe = redis::pipe();
            pipe.cmd("MULTI")
                .cmd("SET")
                .arg(set)
                .arg(value)
                .cmd("INCR")
                .arg(incr)
                .cmd("EXEC");
            let mut replies = c.req_packed_commands(&pipe.get_packed_pipeline(), 0, 4)?;
            match replies.pop() {
                Some(Value::Array(results)) => match results.as_slice() {
                    [_, Value::Int(sum)] => Reply::Incremented(*sum),
                    _ => {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::TypeError,
                            "EXEC answered",
                            format!("{results:?}"),
                        )))
                    }
                },
                Some(Value::ServerError(error)) => return Err(error.into()),
                other => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::TypeError,
                        "EXEC answered",
                        format!("{other:?}"),
                    )))
                }
            }
        }
    })
}
