//! The checks of a recorded history against what the nodes hold at the end.
//!
//! - [`linearizability`]: each key's history, projected from the operations that touched it
//!   (a `MULTI` block onto both its keys) and closed by a read of every node's final value,
//!   is fed to `stateright`'s [`LinearizabilityTester`] against a register with set, get and
//!   incr ([`Register`]). Linearizability is local (a history is linearizable if and only if
//!   each object's is), so keys are checked one by one. Refused operations are left out (they
//!   did nothing); an indeterminate write stays in flight forever, which the tester takes as
//!   "took effect at some point after its invocation, or never"; an indeterminate read is left
//!   out (it changed nothing).
//! - [`ledger`]: every acknowledged `Log` write is on every node, and no refused one is on
//!   any.
//! - [`acked_without_majority`]: no write invoked while two of the three nodes were down was
//!   acknowledged before one of them came back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Duration;

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

use crate::history::{Op, Outcome, Record, Reply};

/// The distance between two values a `SET` writes: the values an `INCR` makes from one
/// (`value + 1`, `value + 2`, ...) never reach the next.
pub const STRIDE: i64 = 1_000_000;

/// A register of integers, as a key that `SET`, `GET` and `INCR` use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Register(Option<i64>);

/// An operation on a [`Register`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Its value.
    Get,
    /// Sets it.
    Set(i64),
    /// Adds one (to 0 if unset) and answers the sum.
    Incr,
}

/// What an operation on a [`Register`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterRet {
    /// `Get`'s value.
    Value(Option<i64>),
    /// `Set` done.
    Done,
    /// `Incr`'s sum.
    Incremented(i64),
}

impl SequentialSpec for Register {
    type Op = RegisterOp;
    type Ret = RegisterRet;

    fn invoke(&mut self, op: &RegisterOp) -> RegisterRet {
        match op {
            RegisterOp::Get => RegisterRet::Value(self.0),
            RegisterOp::Set(value) => {
                self.0 = Some(*value);
                RegisterRet::Done
            }
            RegisterOp::Incr => {
                let sum = self.0.unwrap_or(0) + 1;
                self.0 = Some(sum);
                RegisterRet::Incremented(sum)
            }
        }
    }
}

/// One operation of one key's history.
#[derive(Clone, Debug)]
struct KeyOp {
    process: u64,
    op: RegisterOp,
    /// `None`: indeterminate, in flight forever.
    ret: Option<RegisterRet>,
    invoked: u64,
    returned: u64,
}

/// Each key's operations (but `Log`'s keys, which [`ledger`] checks).
fn project(records: &[Record]) -> BTreeMap<String, Vec<KeyOp>> {
    let mut keys: BTreeMap<String, Vec<KeyOp>> = BTreeMap::new();
    for record in records {
        let reply = match &record.outcome {
            Outcome::Failed(_) => continue,
            Outcome::Ok(reply) => Some(reply),
            Outcome::Indeterminate(_) => None,
        };
        let mut add = |key: &String, op: RegisterOp, ret: Option<RegisterRet>| {
            keys.entry(key.clone()).or_default().push(KeyOp {
                process: record.process,
                op,
                ret,
                invoked: record.invoked,
                returned: record.returned,
            });
        };
        match (&record.op, reply) {
            (Op::Get(key), Some(Reply::Value(value))) => {
                add(key, RegisterOp::Get, Some(RegisterRet::Value(*value)));
            }
            // A read that never answered changed nothing.
            (Op::Get(_), None) | (Op::Log(..), _) => {}
            (Op::Set(key, value), reply) => {
                add(
                    key,
                    RegisterOp::Set(*value),
                    reply.map(|_| RegisterRet::Done),
                );
            }
            (Op::Incr(key), reply) => add(key, RegisterOp::Incr, incremented(reply)),
            (Op::Multi { set, value, incr }, reply) => {
                add(
                    set,
                    RegisterOp::Set(*value),
                    reply.map(|_| RegisterRet::Done),
                );
                add(incr, RegisterOp::Incr, incremented(reply));
            }
            (Op::Get(_), Some(other)) => unreachable!("a GET answered {other:?}"),
        }
    }
    keys
}

fn incremented(reply: Option<&Reply>) -> Option<RegisterRet> {
    match reply {
        Some(Reply::Incremented(sum)) => Some(RegisterRet::Incremented(*sum)),
        None => None,
        Some(other) => unreachable!("an INCR answered {other:?}"),
    }
}

/// Drops the indeterminate `SET`s whose value nothing ever saw.
///
/// This changes no verdict, and keeps the tester's search small: it tries each operation in
/// flight at every step, so that many of them multiply the orders it explores. Why it is
/// exact: `SET v` writes a value of its own, `STRIDE` apart from every other `SET`'s, so after
/// it every read answers `v + j` and every `INCR` answers `v + j + 1` until the next `SET`.
/// If no answer (the final reads included) lies in `[v, v + STRIDE)`, then in any
/// linearization where it took effect, only other operations in flight (no answer) come
/// between it and the next `SET` (or the end); removing them all leaves every answer as it
/// was. So the history is linearizable with it in flight if and only if it is without it.
fn drop_unseen_sets(ops: &mut Vec<KeyOp>) {
    let seen: BTreeSet<i64> = ops
        .iter()
        .filter_map(|o| match o.ret {
            Some(RegisterRet::Value(Some(v)) | RegisterRet::Incremented(v)) => Some(v),
            _ => None,
        })
        .collect();
    ops.retain(|o| match (&o.op, &o.ret) {
        (RegisterOp::Set(v), None) => seen.range(*v..v.saturating_add(STRIDE)).next().is_some(),
        _ => true,
    });
}

/// Whether one key's operations, followed by a read of `finals` from each node in turn, are
/// linearizable; `None` when the search did not end within `budget`.
fn key_is_linearizable(
    mut ops: Vec<KeyOp>,
    finals: &[Option<i64>],
    budget: Duration,
) -> Option<bool> {
    // The final reads begin after every operation invoked or returned.
    let mut clock = ops
        .iter()
        .map(|o| {
            if o.ret.is_some() {
                o.returned
            } else {
                o.invoked
            }
        })
        .max()
        .unwrap_or(0);
    // Each final read by a process of its own.
    let first = ops.iter().map(|o| o.process).max().unwrap_or(0) + 1;
    for (process, value) in (first..).zip(finals) {
        ops.push(KeyOp {
            process,
            op: RegisterOp::Get,
            ret: Some(RegisterRet::Value(*value)),
            invoked: clock + 1,
            returned: clock + 2,
        });
        clock += 2;
    }
    drop_unseen_sets(&mut ops);
    // The tester tries processes in the order of their ids, an operation still in flight as
    // soon as its process has nothing else to place: processes that end in flight go last, so
    // that they are tried only when what returned cannot explain the answers.
    let in_flight: BTreeSet<u64> = ops
        .iter()
        .filter(|o| o.ret.is_none())
        .map(|o| o.process)
        .collect();
    let mut processes: Vec<u64> = ops.iter().map(|o| o.process).collect();
    processes.sort_by_key(|p| (in_flight.contains(p), *p));
    processes.dedup();
    let thread: BTreeMap<u64, usize> = processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoked, i, false));
        if op.ret.is_some() {
            events.push((op.returned, i, true));
        }
    }
    events.sort_unstable();
    let mut tester = LinearizabilityTester::new(Register::default());
    for (_, i, returns) in events {
        let op = &ops[i];
        let fed = if returns {
            tester.on_return(thread[&op.process], op.ret.clone().expect("a return"))
        } else {
            tester.on_invoke(thread[&op.process], op.op.clone())
        };
        fed.expect("a history of sequential processes");
    }
    // The search recurses once per operation, on a thread with room for it; one that does not
    // end in time is left behind (the process exits after the report).
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || {
            let _ = tx.send(tester.is_consistent());
        })
        .expect("a thread for the search");
    rx.recv_timeout(budget).ok()
}

/// What [`linearizability`] found.
#[derive(Debug, Default)]
pub struct Linearizability {
    /// Keys checked.
    pub keys: usize,
    /// The keys whose history is not linearizable.
    pub violations: Vec<String>,
    /// The keys whose check did not end within its budget.
    pub undecided: Vec<String>,
}

/// How long the search of one key may take, at most.
const KEY_BUDGET: Duration = Duration::from_secs(30);

/// Checks each key's history, closed by a read of its final value on each node (`finals`:
/// each node's store, as key to value), within `budget` in all: the keys left when it is spent
/// are undecided.
pub fn linearizability(
    records: &[Record],
    finals: &[BTreeMap<String, String>],
    budget: Duration,
) -> Linearizability {
    let start = std::time::Instant::now();
    let mut found = Linearizability::default();
    for (key, ops) in project(records) {
        let values: Vec<Option<i64>> = finals
            .iter()
            .map(|store| store.get(&key).map(|v| v.parse().unwrap_or(i64::MIN)))
            .collect();
        found.keys += 1;
        let left = budget.saturating_sub(start.elapsed()).min(KEY_BUDGET);
        if left.is_zero() {
            found.undecided.push(key);
            continue;
        }
        match key_is_linearizable(ops, &values, left) {
            Some(true) => {}
            Some(false) => found.violations.push(key),
            None => found.undecided.push(key),
        }
    }
    found
}

/// Every acknowledged `Log` write missing or different on some node (`lost`), and every
/// refused one present on some node (`applied_though_refused`), as `key: what`.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged and missing.
    pub lost: Vec<String>,
    /// Refused and applied.
    pub applied_though_refused: Vec<String>,
}

/// Checks the `Log` writes against each node's store.
pub fn ledger(records: &[Record], stores: &[BTreeMap<String, String>]) -> Ledger {
    let mut found = Ledger::default();
    for record in records {
        let Op::Log(key, value) = &record.op else {
            continue;
        };
        for (node, store) in stores.iter().enumerate() {
            let held = store.get(key);
            match &record.outcome {
                Outcome::Ok(_) if held != Some(&value.to_string()) => found.lost.push(format!(
                    "{key}: acknowledged {value}, node {} holds {held:?}",
                    node + 1
                )),
                Outcome::Failed(error) if held.is_some() => {
                    found.applied_though_refused.push(format!(
                        "{key}: refused ({error}), node {} holds {held:?}",
                        node + 1
                    ));
                }
                _ => {}
            }
        }
    }
    found
}

/// A time when two of the three nodes were down: from when both were, to when the first
/// began to come back.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Both down since.
    pub from: Duration,
    /// The first restart began.
    pub to: Duration,
}

/// The window `record`, a write, was invoked in, if any: no majority could commit it before
/// that window ended.
fn window_of<'w>(record: &Record, windows: &'w [Window]) -> Option<&'w Window> {
    if !record.op.writes() {
        return None;
    }
    windows
        .iter()
        .find(|w| record.invoked_at >= w.from && record.invoked_at < w.to)
}

/// How many writes were invoked in a window.
pub fn invoked_without_majority(records: &[Record], windows: &[Window]) -> usize {
    records
        .iter()
        .filter(|r| window_of(r, windows).is_some())
        .count()
}

/// The writes invoked in a window and acknowledged within it, which no majority could have
/// committed.
pub fn acked_without_majority<'a>(records: &'a [Record], windows: &[Window]) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| {
            matches!(r.outcome, Outcome::Ok(_))
                && window_of(r, windows).is_some_and(|w| r.returned_at < w.to)
        })
        .collect()
}

/// The records that touched `key`, for the report.
pub fn touching<'a>(records: &'a [Record], key: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| match &r.op {
            Op::Get(k) | Op::Set(k, _) | Op::Incr(k) | Op::Log(k, _) => k == key,
            Op::Multi { set, incr, .. } => set == key || incr == key,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(10);

    /// Builds records from `(process, op, invoked, returned, outcome)`.
    fn history(ops: Vec<(u64, Op, u64, u64, Outcome)>) -> Vec<Record> {
        ops.into_iter()
            .map(|(process, op, invoked, returned, outcome)| {
                Record::at(process, op, invoked, returned, outcome)
            })
            .collect()
    }

    fn k() -> String {
        "k".to_string()
    }

    fn ok(reply: Reply) -> Outcome {
        Outcome::Ok(reply)
    }

    fn finals(value: Option<&str>) -> Vec<BTreeMap<String, String>> {
        let store: BTreeMap<String, String> =
            value.map(|v| (k(), v.to_string())).into_iter().collect();
        vec![store.clone(), store.clone(), store]
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_not_linearizable() {
        let records = history(vec![
            (0, Op::Set(k(), STRIDE), 0, 1, ok(Reply::Done)),
            (1, Op::Set(k(), 2 * STRIDE), 2, 3, ok(Reply::Done)),
            // Begins after the second SET returned, and reads the first.
            (2, Op::Get(k()), 4, 5, ok(Reply::Value(Some(STRIDE)))),
        ]);
        let found = linearizability(&records, &finals(Some("2000000")), BUDGET);
        assert_eq!(found.violations, ["k"]);
        // Concurrent with the second SET, the same read is fine.
        let records = history(vec![
            (0, Op::Set(k(), STRIDE), 0, 1, ok(Reply::Done)),
            (1, Op::Set(k(), 2 * STRIDE), 2, 5, ok(Reply::Done)),
            (2, Op::Get(k()), 3, 4, ok(Reply::Value(Some(STRIDE)))),
        ]);
        let found = linearizability(&records, &finals(Some("2000000")), BUDGET);
        assert!(found.violations.is_empty() && found.undecided.is_empty());
        assert_eq!(found.keys, 1);
    }

    #[test]
    fn the_final_values_close_each_history() {
        let records = history(vec![
            (0, Op::Set(k(), STRIDE), 0, 1, ok(Reply::Done)),
            (0, Op::Incr(k()), 2, 3, ok(Reply::Incremented(STRIDE + 1))),
        ]);
        assert!(linearizability(&records, &finals(Some("1000001")), BUDGET)
            .violations
            .is_empty());
        // The acknowledged INCR is missing at the end (on every node, so the stores agree).
        assert_eq!(
            linearizability(&records, &finals(Some("1000000")), BUDGET).violations,
            ["k"]
        );
    }

    #[test]
    fn an_indeterminate_write_may_have_happened_or_not() {
        let records = |outcome: Outcome| {
            history(vec![
                (0, Op::Set(k(), STRIDE), 0, 1, ok(Reply::Done)),
                (1, Op::Set(k(), 2 * STRIDE), 2, 3, outcome),
                (2, Op::Get(k()), 4, 5, ok(Reply::Value(Some(2 * STRIDE)))),
                (2, Op::Get(k()), 6, 7, ok(Reply::Value(Some(2 * STRIDE)))),
            ])
        };
        let timed_out = Outcome::Indeterminate("timed out".into());
        assert!(
            linearizability(&records(timed_out), &finals(Some("2000000")), BUDGET)
                .violations
                .is_empty()
        );
        // A write refused for sure did nothing: a read of its value is a violation.
        let refused = Outcome::Failed("CLUSTERDOWN".into());
        assert_eq!(
            linearizability(&records(refused), &finals(Some("2000000")), BUDGET).violations,
            ["k"]
        );
        // Once seen, it took effect: a later read may not see the value it replaced.
        let records = history(vec![
            (0, Op::Set(k(), STRIDE), 0, 1, ok(Reply::Done)),
            (
                1,
                Op::Set(k(), 2 * STRIDE),
                2,
                3,
                Outcome::Indeterminate("x".into()),
            ),
            (2, Op::Get(k()), 4, 5, ok(Reply::Value(Some(2 * STRIDE)))),
            (2, Op::Get(k()), 6, 7, ok(Reply::Value(Some(STRIDE)))),
        ]);
        assert_eq!(
            linearizability(&records, &finals(Some("1000000")), BUDGET).violations,
            ["k"]
        );
    }

    /// An undecided set that no reply shows (its value, or an increment of it) is dropped
    /// before the search, which it would only slow down; one that a reply shows is kept.
    #[test]
    fn an_undecided_set_nothing_read_is_dropped_and_one_read_is_kept() {
        let op = |op, ret| KeyOp {
            process: 0,
            op,
            ret,
            invoked: 0,
            returned: 0,
        };
        let mut ops = vec![
            op(RegisterOp::Set(STRIDE), None),
            op(RegisterOp::Set(3 * STRIDE), None),
            op(RegisterOp::Set(5 * STRIDE), None),
            op(RegisterOp::Get, Some(RegisterRet::Value(Some(STRIDE)))),
            op(
                RegisterOp::Incr,
                Some(RegisterRet::Incremented(5 * STRIDE + 1)),
            ),
        ];
        drop_unseen_sets(&mut ops);
        let sets: Vec<i64> = ops
            .iter()
            .filter_map(|o| match o.op {
                RegisterOp::Set(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(sets, [STRIDE, 5 * STRIDE]);
        assert_eq!(ops.len(), 4);
    }

    /// A history of one key as the run makes them: `processes` clients, each running
    /// operations one after another, each taking effect at a random moment between its
    /// invocation and its return (so the history is linearizable by construction). One in
    /// `lost_replies` operations never returns (it took effect or not, at random) and its
    /// client goes on as a new process.
    fn generated(
        rng: &mut fastrand::Rng,
        processes: u64,
        ops: usize,
        lost_replies: u8,
    ) -> Vec<Record> {
        // (effect time, logical process, invoked, returned, op, answered, applied)
        let mut planned = Vec::new();
        let mut free_at = vec![0u64; processes as usize];
        let mut logical: Vec<u64> = (0..processes).collect();
        let mut next_process = processes + 1;
        for n in 0..ops {
            let p = rng.usize(..processes as usize);
            let invoked = free_at[p] + rng.u64(0..20);
            let returned = invoked + rng.u64(2..60);
            free_at[p] = returned + 1;
            let op = match rng.u8(..10) {
                0..4 => RegisterOp::Get,
                4..7 => RegisterOp::Set((n as i64 + 1) * STRIDE),
                _ => RegisterOp::Incr,
            };
            let answered = rng.u8(..lost_replies) != 0;
            let applied = answered || rng.bool();
            planned.push((
                rng.u64(invoked..=returned),
                logical[p],
                invoked,
                returned,
                op,
                answered,
                applied,
            ));
            if !answered {
                logical[p] = next_process;
                next_process += 1;
            }
        }
        planned.sort_by_key(|(effect, ..)| *effect);
        let mut register = Register::default();
        let mut records: Vec<Record> = Vec::new();
        for (_, process, invoked, returned, op, answered, applied) in planned {
            let ret = if applied {
                Some(register.invoke(&op))
            } else {
                None
            };
            let (op, reply) = match (ret, op) {
                (Some(RegisterRet::Value(v)), _) => (Op::Get(k()), Some(Reply::Value(v))),
                (_, RegisterOp::Get) => (Op::Get(k()), None),
                (ret, RegisterOp::Set(v)) => (Op::Set(k(), v), ret.map(|_| Reply::Done)),
                (Some(RegisterRet::Incremented(n)), _) => {
                    (Op::Incr(k()), Some(Reply::Incremented(n)))
                }
                (_, RegisterOp::Incr) => (Op::Incr(k()), None),
            };
            let outcome = match reply {
                Some(reply) if answered => Outcome::Ok(reply),
                _ => Outcome::Indeterminate("no reply".into()),
            };
            // Times in ticks, spread so that the real-time order is that of the ticks.
            records.push(Record {
                process,
                node: 0,
                op,
                invoked: invoked * 2,
                returned: returned * 2 + 1,
                invoked_at: Duration::from_millis(invoked),
                returned_at: Duration::from_millis(returned),
                outcome,
            });
        }
        records.sort_by_key(|r| r.invoked);
        let final_value = register.0.map(|v| v.to_string());
        records.push(Record {
            process: next_process,
            node: 0,
            op: Op::Get(k()),
            invoked: u64::MAX - 2,
            returned: u64::MAX - 1,
            invoked_at: Duration::MAX,
            returned_at: Duration::MAX,
            outcome: Outcome::Ok(Reply::Value(final_value.and_then(|v| v.parse().ok()))),
        });
        records
    }

    /// Linearizable histories of the length the run's key rotation keeps them to
    /// ([`crate::workload::OPS_PER_EPOCH`]), with lost replies, are accepted, and quickly.
    #[test]
    fn linearizable_histories_of_an_epochs_length_are_accepted_quickly() {
        let mut rng = fastrand::Rng::with_seed(7);
        let start = std::time::Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 0..300 {
            let records = generated(&mut rng, 6, 40, if i % 2 == 0 { 10 } else { u8::MAX });
            let one = std::time::Instant::now();
            let found = linearizability(&records, &[], BUDGET);
            slowest = slowest.max(one.elapsed());
            assert_eq!(found.keys, 1);
            assert!(
                found.violations.is_empty() && found.undecided.is_empty(),
                "{records:#?}"
            );
        }
        eprintln!(
            "300 histories in {:?}, the slowest {slowest:?}",
            start.elapsed()
        );
        assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    }

    #[test]
    fn a_multi_block_projects_onto_both_its_keys() {
        let records = history(vec![(
            0,
            Op::Multi {
                set: "a".into(),
                value: STRIDE,
                incr: "b".into(),
            },
            0,
            1,
            ok(Reply::Incremented(1)),
        )]);
        let store: BTreeMap<String, String> = [
            ("a".to_string(), "1000000".to_string()),
            ("b".to_string(), "1".to_string()),
        ]
        .into();
        let found = linearizability(&records, std::slice::from_ref(&store), BUDGET);
        assert_eq!((found.keys, found.violations.len()), (2, 0));
        // The block's SET missing from the end state.
        let store: BTreeMap<String, String> = [("b".to_string(), "1".to_string())].into();
        assert_eq!(
            linearizability(&records, &[store], BUDGET).violations,
            ["a"]
        );
    }

    #[test]
    fn a_missing_acknowledged_write_and_an_applied_refused_one_are_reported() {
        let log = |n: i64| Op::Log(format!("log:{n}"), n);
        let records = history(vec![
            (0, log(1), 0, 1, ok(Reply::Done)),
            (0, log(2), 2, 3, ok(Reply::Done)),
            (
                0,
                log(3),
                4,
                5,
                Outcome::Failed("CLUSTERDOWN no leader".into()),
            ),
            (0, log(4), 6, 7, Outcome::Indeterminate("timed out".into())),
        ]);
        let full: BTreeMap<String, String> = [
            ("log:1".to_string(), "1".to_string()),
            ("log:2".to_string(), "2".to_string()),
        ]
        .into();
        let mut short = full.clone();
        short.remove("log:2");
        short.insert("log:3".into(), "3".into());
        let found = ledger(&records, &[full.clone(), short, full]);
        assert_eq!(found.lost.len(), 1, "{found:?}");
        assert!(found.lost[0].starts_with("log:2:") && found.lost[0].contains("node 2"));
        assert_eq!(found.applied_though_refused.len(), 1, "{found:?}");
        assert!(found.applied_though_refused[0].starts_with("log:3:"));
    }

    #[test]
    fn a_write_acknowledged_without_a_majority_is_counted() {
        let records = history(vec![
            // Invoked before the window: may be acknowledged in it (it may have committed).
            (0, Op::Set(k(), STRIDE), 900, 1100, ok(Reply::Done)),
            // Invoked and acknowledged inside it.
            (
                1,
                Op::Incr(k()),
                1200,
                1300,
                ok(Reply::Incremented(STRIDE + 1)),
            ),
            // Invoked inside, acknowledged after.
            (
                2,
                Op::Incr(k()),
                1200,
                2500,
                ok(Reply::Incremented(STRIDE + 2)),
            ),
            // A read inside is no write.
            (3, Op::Get(k()), 1200, 1300, ok(Reply::Value(Some(STRIDE)))),
        ]);
        let windows = [Window {
            from: Duration::from_millis(1000),
            to: Duration::from_millis(2000),
        }];
        let acked = acked_without_majority(&records, &windows);
        assert_eq!(acked.len(), 1);
        assert_eq!(acked[0].process, 1);
    }
}
