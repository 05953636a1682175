//! Group commit: many writers, one write and at most one fsync per group.
//!
//! The protocol, leader/follower style:
//!
//! 1. A writer encodes its records on its own thread, then locks the queue. If no group is
//!    being committed, it becomes the *leader*: it marks the queue as led and commits its own
//!    unit at once. A lone writer therefore never waits for, or hands work to, another thread.
//! 2. If a leader is busy, the writer queues its unit and waits on its own signal.
//! 3. The leader commits its group (one append, one fsync if any unit asked for one, then the
//!    operations applied to the state in log order), tells every follower in the group the
//!    result, and looks at the queue: if writers queued meanwhile, the first of them becomes
//!    the next leader and is handed all of them as its group; otherwise the queue is marked
//!    unled. After a group that waited for no fsync, the leader first commits the groups
//!    queued meanwhile itself, while none of them waits for an fsync (a few at most), so
//!    that buffered writers of several threads do not hand the log from core to core at
//!    every write.
//!
//! A writer that must not wait (an async task on a runtime thread, through
//! `Durable::try_write_now`) uses `try_lead`: it leads its own unit alone if no group is
//! being committed, and otherwise, or if the commit steps back before writing anything,
//! takes its unit back without ever queueing. (While a quick group that waits for no fsync
//! is being committed, it first watches for that group's end, for 10 µs at most.) It holds
//! the `leading` flag like any leader, so the ordering argument below holds for it too.
//!
//! A panic inside a commit is caught: the group's writers and every later one get
//! [`Error::Panicked`] instead of waiting for an answer that would never come.
//!
//! Ordering argument: exactly one thread leads at any time (the `leading` flag only passes
//! from a leader to the waiter it hands its queue to, under the queue lock), and a leader
//! finishes appending and applying before it passes leadership on. So groups reach the log
//! in the order they reach the state, and the state never shows a write whose record is not
//! yet in the log. A writer that queued while a group was being committed is in the next
//! group, so no write waits for more than one group besides its own before it is
//! committed; a leader that combines then returns up to `MAX_COMBINING` later.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kv_core::Op;
use kv_wal::Encoded;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// What a commit returns: the moment it finished (its writers' latencies end there, and
/// so does the group's commit time: one clock read for both), or why it failed.
pub(crate) type Committed = Result<Instant>;

/// One writer's contribution to a group.
#[derive(Debug)]
pub(crate) struct Unit {
    /// The records, encoded by the writer.
    pub(crate) encoded: Encoded,
    /// The operations to apply once the records are in the log.
    pub(crate) ops: Vec<Op>,
    /// Whether the writer waits for fdatasync.
    pub(crate) sync: bool,
    /// A window the write must be synced within that the log's own policy does not already
    /// honour (a per-write `Durability::Batch` shorter than the store's, or on a store that
    /// does not batch).
    pub(crate) sync_within: Option<Duration>,
    /// When the writer submitted it, for the latency histogram.
    pub(crate) submitted: Instant,
}

/// A unit in a group, with the signal of the writer waiting for it (`None` for the leader's
/// own unit).
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) unit: Unit,
    signal: Option<Arc<Signal>>,
}

#[derive(Debug)]
enum Slot {
    Waiting,
    /// The group is committed with this result; the woken writer passes it on to `others`.
    Done(Result<()>, Vec<Arc<Signal>>),
    Lead(Vec<Member>),
}

/// Answers writers `signals` with `result`, as a tree: this thread wakes at most two, and each
/// woken writer wakes at most two of the rest. A leader that woke sixty followers one by one
/// spent more time in wake-up system calls than in its fsync.
fn answer(result: &Result<()>, mut signals: Vec<Arc<Signal>>) {
    let second_half = signals.split_off(signals.len() / 2);
    for mut half in [signals, second_half] {
        if half.is_empty() {
            continue;
        }
        let root = half.remove(0);
        root.set(Slot::Done(result.clone(), half));
    }
}

/// The longest a waiting writer spins before it sleeps.
const MAX_SPIN: Duration = Duration::from_micros(50);
/// The longest a leader waits for more writers before a group that will fsync.
const MAX_LINGER: Duration = Duration::from_micros(50);
/// The most groups queued behind a leader that it commits itself (`GroupCommit::combine`)
/// before it hands leadership on: its own writer waits for them.
const MAX_COMBINED: usize = 16;
/// The longest a writer that must not wait (`try_lead`) watches for a buffered group to end.
const MAX_LEAD_WAIT: Duration = Duration::from_micros(10);
/// How long after the first group it combines a leader may begin committing another.
const MAX_COMBINING: Duration = Duration::from_micros(20);

/// How a waiting writer learns its fate.
#[derive(Debug)]
struct Signal {
    slot: Mutex<Slot>,
    wake: Condvar,
    ready: AtomicBool,
}

impl Signal {
    fn new() -> Arc<Self> {
        Arc::new(Signal {
            slot: Mutex::new(Slot::Waiting),
            wake: Condvar::new(),
            ready: AtomicBool::new(false),
        })
    }

    fn set(&self, slot: Slot) {
        *self.slot.lock() = slot;
        self.ready.store(true, Ordering::Release);
        // Free when the waiter is still spinning: parking_lot only makes a system call when
        // a thread is parked.
        self.wake.notify_one();
    }

    /// Waits for the slot to be set: spinning for up to `spin` first, since a group that
    /// commits without an fsync is done in about the time a sleep and a wake-up take.
    fn wait(&self, spin: Duration) -> Slot {
        if !spin.is_zero() {
            let started = Instant::now();
            'spin: loop {
                for _ in 0..64 {
                    if self.ready.load(Ordering::Acquire) {
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
                if started.elapsed() >= spin {
                    break;
                }
            }
        }
        let mut slot = self.slot.lock();
        while matches!(*slot, Slot::Waiting) {
            self.wake.wait(&mut slot);
        }
        std::mem::replace(&mut *slot, Slot::Waiting)
    }
}

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Member>,
    /// Whether the group being committed (while `GroupCommit::leading`) waits for an fsync.
    leader_syncs: bool,
}

/// The queue of writers and the leadership flag.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    /// How long recent groups took to commit, in nanoseconds (a moving average): followers
    /// spin before sleeping only when groups are quick, not when they wait for an fsync.
    recent_commit_ns: AtomicU64,
    /// How many writers the last group held.
    last_group: AtomicUsize,
    /// Whether other writers were around when the last group ended (it held several, or
    /// writers had queued behind it): a lone writer never lingers, two or more do.
    crowded: AtomicBool,
    /// What a commit that panicked said: set once, then every write is refused.
    panicked: OnceLock<Arc<str>>,
    /// Whether a group is being committed: changed only under the queue's lock, and read
    /// under it, but for a writer that must not wait watching for a quick group's end
    /// without it (`try_lead`), which looks again under the lock before it leads.
    leading: AtomicBool,
}

impl GroupCommit {
    /// Commits `unit` in some group; `commit` writes, syncs and applies one whole group and is
    /// only ever called by one thread at a time. Returns the result of the unit's group.
    pub(crate) fn submit(&self, unit: Unit, commit: &dyn Fn(&[Member]) -> Committed) -> Result<()> {
        self.refuse_after_panic()?;
        let mut queue = self.queue.lock();
        if self.leading.load(Ordering::Relaxed) {
            let signal = Signal::new();
            queue.waiting.push(Member {
                unit,
                signal: Some(Arc::clone(&signal)),
            });
            drop(queue);
            // Spin only while groups commit faster than a sleep and a wake-up take; groups that
            // wait for an fsync leave the CPU to the threads doing work.
            let spin = if self.groups_are_quick() {
                MAX_SPIN
            } else {
                Duration::ZERO
            };
            return match signal.wait(spin) {
                Slot::Done(result, others) => {
                    answer(&result, others);
                    result
                }
                Slot::Lead(group) => self.lead(group, Instant::now(), commit),
                Slot::Waiting => unreachable!("wait returns only once the slot is set"),
            };
        }
        self.leading.store(true, Ordering::Relaxed);
        queue.leader_syncs = unit.sync;
        drop(queue);
        // This writer leads at once: its submission time, a moment ago, saves a clock read
        // (which costs as much as a tenth of a buffered write).
        let started = unit.submitted;
        self.lead(vec![Member { unit, signal: None }], started, commit)
    }

    /// Commits `unit` alone, at once, if that takes no waiting: no group is being committed
    /// (a follower could wait for a whole group, fsync included) and `commit` finds nothing
    /// in its way (it returns `None` then, having written nothing). Otherwise gives `unit`
    /// back untouched; whoever queued meanwhile is led by the next leader as usual.
    ///
    /// One wait is allowed: while a group that waits for no fsync is being committed, and
    /// recent groups were quick, it watches for that group's end for [`MAX_LEAD_WAIT`] at
    /// most, then tries once more. Giving the unit back costs its caller far more: `kv
    /// serve` hands the pipeline to its writer thread.
    /// Measured with `kv serve` under `Batch`, two runtime threads, redis-benchmark at
    /// `-P 16` (1,000,000 requests, 50 clients, fresh servers, three alternating rounds):
    /// without the wait 14% of the `INCR` pipelines and 20% of the `SET` ones went to the
    /// writer thread; with it, `INCR` went from 674,000-691,000 to 704,000-765,000
    /// requests/s (server CPU 1.90-1.93 → 1.71-1.88 µs a request) and `SET` from
    /// 535,000-559,000 to 556,000-584,000/s (2.43-2.52 → 2.35-2.41 µs). At `-P 1`, seven
    /// rounds of `INCR` and three of `SET`: the same within the noise.
    pub(crate) fn try_lead(
        &self,
        unit: Unit,
        commit: &dyn Fn(&[Member]) -> Option<Committed>,
    ) -> std::result::Result<Result<()>, Unit> {
        if let Err(e) = self.refuse_after_panic() {
            return Ok(Err(e));
        }
        let mut waited = false;
        loop {
            let mut queue = self.queue.lock();
            if !self.leading.load(Ordering::Relaxed) {
                self.leading.store(true, Ordering::Relaxed);
                queue.leader_syncs = false;
                break;
            }
            let quick = !queue.leader_syncs && self.groups_are_quick();
            drop(queue);
            if waited || !quick {
                return Err(unit);
            }
            waited = true;
            self.watch_leader(MAX_LEAD_WAIT);
        }
        // The commit is timed from here if this thread waited: the moving average of commit
        // times must not count the wait.
        let started = if waited {
            Instant::now()
        } else {
            unit.submitted
        };
        let group = [Member { unit, signal: None }];
        let result = self.commit_group(&group, started, commit);
        self.pass_on(self.queue.lock(), false);
        let [member] = group;
        result.ok_or(member.unit)
    }

    /// Whether recent groups committed faster than a sleep and a wake-up take (none waited
    /// for an fsync): worth spinning for.
    fn groups_are_quick(&self) -> bool {
        Duration::from_nanos(self.recent_commit_ns.load(Ordering::Relaxed)) <= MAX_SPIN / 2
    }

    /// Spins until no group is being committed, for `at_most`.
    fn watch_leader(&self, at_most: Duration) {
        let until = Instant::now() + at_most;
        loop {
            for _ in 0..32 {
                if !self.leading.load(Ordering::Relaxed) {
                    return;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// Commits `group` (which holds this thread's own unit, without a signal), answers the
    /// followers, and passes leadership on.
    /// `started`: when this thread began leading, for the moving average of commit times
    /// (a unit handed over by a previous leader was submitted long before: its submission
    /// time would count the wait, and followers would stop spinning).
    fn lead(
        &self,
        mut group: Vec<Member>,
        started: Instant,
        commit: &dyn Fn(&[Member]) -> Committed,
    ) -> Result<()> {
        let synced = group.iter().any(|member| member.unit.sync);
        if synced {
            self.linger(&mut group);
        }
        let crowded = group.len() > 1;
        // Answer this group's writers before passing leadership on: the ones woken meanwhile
        // queue again in time to join the next group, and bigger groups mean fewer fsyncs
        // (measured: handing over first shrank W1's groups by half and its throughput by a
        // quarter).
        let result = self.commit_and_answer(group, started, commit);
        let (queue, combined) = if synced {
            (self.queue.lock(), false)
        } else {
            self.combine(commit)
        };
        self.pass_on(queue, crowded || combined);
        result
    }

    /// After a group that waited for no fsync, commits the groups queued meanwhile on this
    /// thread, as long as none of them waits for an fsync either: at most [`MAX_COMBINED`]
    /// groups, and no more once one began [`MAX_COMBINING`] after the first. Returns the
    /// queue, locked (one lock for a lone writer, who finds nothing queued), and whether it
    /// committed any group.
    ///
    /// Why: passing leadership on for each group would move the log's tail, the state's
    /// tables and the statistics from one core's cache to the other's at every write.
    /// Measured with two writers of buffered puts (W2), that hand-over cost more than the
    /// writes: two writers did 0.64-0.71 M puts/s against one writer's 1.17-1.22 M, and
    /// 0.73-0.89 M with this. A write that syncs is handed on as before: its writer leads
    /// its own group, whose fsync the writers of this one do not wait for.
    ///
    /// The cost: the leader returns later than its own commit, by about [`MAX_COMBINING`]
    /// at most, plus the group it is committing then (about a microsecond a buffered group;
    /// one that must rotate the log takes longer). Meanwhile it still holds whatever its caller
    /// holds (a store's key stripes). The latency histogram times each write to the end of
    /// the commit that made it, so it does not count this.
    fn combine(&self, commit: &dyn Fn(&[Member]) -> Committed) -> (MutexGuard<'_, Queue>, bool) {
        // Timed from the first group taken: a leader with nothing to combine (a lone
        // writer, at every write) reads no clock.
        let mut until = None;
        let mut queue = self.queue.lock();
        for _ in 0..MAX_COMBINED {
            if queue.waiting.is_empty() || queue.waiting.iter().any(|m| m.unit.sync) {
                break;
            }
            let group = std::mem::take(&mut queue.waiting);
            drop(queue);
            let started = Instant::now();
            // Its result went to its writers: the leader's own write is not among them.
            let _ = self.commit_and_answer(group, started, commit);
            queue = self.queue.lock();
            if started >= *until.get_or_insert(started + MAX_COMBINING) {
                break;
            }
        }
        (queue, until.is_some())
    }

    /// Commits `group` with `commit`, which always commits, and answers its writers that
    /// wait (all but this thread's own unit, if it is among them); the group's result.
    fn commit_and_answer(
        &self,
        group: Vec<Member>,
        started: Instant,
        commit: &dyn Fn(&[Member]) -> Committed,
    ) -> Result<()> {
        let result = self
            .commit_group(&group, started, &|group| Some(commit(group)))
            .expect("a commit that always commits");
        answer(
            &result,
            group.into_iter().filter_map(|m| m.signal).collect(),
        );
        result
    }

    /// Runs `commit` over `group`, catching a panic, and keeps the figures the protocol
    /// steers by; `None` when `commit` stepped back without writing.
    fn commit_group(
        &self,
        group: &[Member],
        started: Instant,
        commit: &dyn Fn(&[Member]) -> Option<Committed>,
    ) -> Option<Result<()>> {
        if let Err(e) = self.refuse_after_panic() {
            return Some(Err(e));
        }
        // Unwind safety: after a panic nothing the commit touched is used again, since
        // every later write is refused.
        let result =
            catch_unwind(AssertUnwindSafe(|| commit(group))).unwrap_or_else(|payload| {
                let said = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_string());
                Some(Err(Error::Panicked(Arc::clone(
                    self.panicked.get_or_init(|| said.into()),
                ))))
            })?;
        self.last_group.store(group.len(), Ordering::Relaxed);
        let finished = match &result {
            Ok(finished) => *finished,
            Err(_) => Instant::now(),
        };
        let took = finished.saturating_duration_since(started).as_nanos();
        let took = took.min(u128::from(u64::MAX)) as u64;
        let average = self.recent_commit_ns.load(Ordering::Relaxed);
        self.recent_commit_ns
            .store(average - average / 8 + took / 8, Ordering::Relaxed);
        Some(result.map(|_| ()))
    }

    /// Hands leadership to the first writer that queued meanwhile, or marks the queue
    /// unled; `crowded`: whether the groups just committed held other writers than this
    /// thread's.
    fn pass_on(&self, mut queue: MutexGuard<'_, Queue>, crowded: bool) {
        self.crowded
            .store(crowded || !queue.waiting.is_empty(), Ordering::Relaxed);
        if queue.waiting.is_empty() {
            self.leading.store(false, Ordering::Relaxed);
        } else {
            let mut next = std::mem::take(&mut queue.waiting);
            queue.leader_syncs = next.iter().any(|m| m.unit.sync);
            drop(queue);
            let leader = next[0].signal.take().expect("queued members have a signal");
            leader.set(Slot::Lead(next));
        }
    }

    /// The error every write gets once a commit has panicked.
    pub(crate) fn refuse_after_panic(&self) -> Result<()> {
        match self.panicked.get() {
            Some(said) => Err(Error::Panicked(Arc::clone(said))),
            None => Ok(()),
        }
    }

    /// What a commit that panicked said, if one did.
    pub(crate) fn panicked(&self) -> Option<&str> {
        self.panicked.get().map(|said| &**said)
    }

    /// Before a group that will wait for an fsync, gives the writers of the previous group
    /// (being woken just now) a moment to queue again and share this fsync, instead of
    /// waiting for the next one. Without it, writers split into two halves that take turns,
    /// and each fsync carries half of them (measured with 8 writers: 4.4 records per fsync).
    /// The wait is bounded by a quarter of a recent commit and by `MAX_LINGER`, and skipped
    /// when the last group's writer was alone. Two writers taking turns (each group the
    /// other's previous leader) wait for each other: measured, they shared no fsync at all
    /// before, and wrote slower than one writer.
    fn linger(&self, group: &mut Vec<Member>) {
        if !self.crowded.load(Ordering::Relaxed) {
            return;
        }
        let previous = self.last_group.load(Ordering::Relaxed).max(1);
        let target = group.len() + previous;
        let recent = Duration::from_nanos(self.recent_commit_ns.load(Ordering::Relaxed));
        let deadline = Instant::now() + (recent / 4).min(MAX_LINGER);
        loop {
            {
                let mut queue = self.queue.lock();
                if group.len() + queue.waiting.len() >= target || Instant::now() >= deadline {
                    group.append(&mut queue.waiting);
                    return;
                }
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread::ThreadId;

    use kv_core::Op;

    use super::*;

    fn unit(name: &str, sync: bool) -> Unit {
        Unit {
            encoded: Encoded::new(),
            ops: vec![Op::put(name.to_string(), "")],
            sync,
            sync_within: None,
            submitted: Instant::now(),
        }
    }

    fn names(group: &[Member]) -> Vec<String> {
        let name = |m: &Member| String::from_utf8(m.unit.ops[0].key().to_vec()).unwrap();
        group.iter().map(name).collect()
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::yield_now();
        }
    }

    /// Which thread committed which writers, group by group.
    type Commits = Vec<(ThreadId, Vec<String>)>;

    /// Submits `leader` (buffered), holds its commit until `queued` are all waiting (queued
    /// one after the other, in that order, each from a thread of its own), then lets every
    /// commit run; `fails`: the writer whose group's commit fails. Returns the commits, and
    /// each writer's thread and result, the leader first.
    fn run(queued: &[(&str, bool)], fails: &str) -> (Commits, Vec<(ThreadId, Result<()>)>) {
        let group = GroupCommit::default();
        let inside = AtomicBool::new(false);
        let commits = Mutex::new(Commits::new());
        let commit = |members: &[Member]| -> Committed {
            assert!(!inside.swap(true, Ordering::SeqCst), "two commits at once");
            if commits.lock().is_empty() {
                wait_until("every writer queued", || {
                    group.queue.lock().waiting.len() == queued.len()
                });
            }
            let names = names(members);
            let failed = names.iter().any(|name| name == fails);
            commits.lock().push((std::thread::current().id(), names));
            inside.store(false, Ordering::SeqCst);
            if failed {
                Err(Error::Closed)
            } else {
                Ok(Instant::now())
            }
        };
        let results = std::thread::scope(|s| {
            let submit = |name: &str, sync: bool| {
                let (group, commit, unit) = (&group, &commit, unit(name, sync));
                s.spawn(move || {
                    let result = group.submit(unit, commit);
                    (std::thread::current().id(), result)
                })
            };
            let mut writers = vec![submit("leader", false)];
            wait_until("the leader leads", || group.leading.load(Ordering::SeqCst));
            for (i, &(name, sync)) in queued.iter().enumerate() {
                writers.push(submit(name, sync));
                // Each queues before the next starts, so they queue in order. (Once the
                // last has queued, the leader's commit goes on and may take them all.)
                if i + 1 < queued.len() {
                    wait_until("the writer queued", || {
                        group.queue.lock().waiting.len() == i + 1
                    });
                }
            }
            writers
                .into_iter()
                .map(|w| w.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert!(
            !group.leading.load(Ordering::SeqCst),
            "the queue was left led"
        );
        (commits.into_inner(), results)
    }

    #[test]
    fn the_leader_commits_the_buffered_groups_queued_behind_it_in_order() {
        let (commits, results) = run(&[("a", false), ("b", false), ("c", false)], "");
        let leader = results[0].0;
        assert_eq!(
            commits,
            [
                (leader, vec!["leader".to_string()]),
                (leader, vec!["a".into(), "b".into(), "c".into()]),
            ]
        );
        assert!(results.iter().all(|(_, result)| result.is_ok()));
    }

    #[test]
    fn a_writer_that_syncs_is_handed_leadership_instead_of_combined() {
        let (commits, results) = run(&[("a", false), ("durable", true)], "");
        let (leader, first_queued) = (results[0].0, results[1].0);
        assert_eq!(
            commits,
            [
                (leader, vec!["leader".to_string()]),
                // Led by the first writer queued, on its own thread, fsync and all.
                (first_queued, vec!["a".into(), "durable".into()]),
            ]
        );
        assert!(results.iter().all(|(_, result)| result.is_ok()));
    }

    #[test]
    fn a_writer_that_must_not_wait_never_waits_for_a_commit_to_end() {
        // Each leader's commit ends only once `try_lead` has returned: a `try_lead` that
        // waited for it would never return.
        for leader_syncs in [true, false] {
            let group = GroupCommit::default();
            let returned = AtomicBool::new(false);
            let commit = |_: &[Member]| -> Committed {
                wait_until("try_lead returned", || returned.load(Ordering::SeqCst));
                Ok(Instant::now())
            };
            std::thread::scope(|s| {
                let leader = s.spawn(|| group.submit(unit("leader", leader_syncs), &commit));
                wait_until("the leader leads", || group.leading.load(Ordering::SeqCst));
                let tried = group.try_lead(unit("now", false), &|members| Some(commit(members)));
                returned.store(true, Ordering::SeqCst);
                assert!(tried.is_err(), "the unit is given back while another leads");
                leader.join().unwrap().unwrap();
            });
        }
    }

    #[test]
    fn writers_that_must_not_wait_and_writers_that_queue_commit_each_write_once() {
        let group = GroupCommit::default();
        let inside = AtomicBool::new(false);
        let committed = AtomicUsize::new(0);
        let commit = |members: &[Member]| -> Committed {
            assert!(!inside.swap(true, Ordering::SeqCst), "two commits at once");
            committed.fetch_add(members.len(), Ordering::SeqCst);
            let until = Instant::now() + Duration::from_micros(2);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            inside.store(false, Ordering::SeqCst);
            Ok(Instant::now())
        };
        let (led, given_back) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        match group.try_lead(unit("now", false), &|m| Some(commit(m))) {
                            Ok(result) => {
                                result.unwrap();
                                led.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => {
                                given_back.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
            for _ in 0..2 {
                s.spawn(|| {
                    for i in 0..500 {
                        group.submit(unit("queued", i % 5 == 0), &commit).unwrap();
                    }
                });
            }
        });
        let led = led.load(Ordering::SeqCst);
        assert_eq!(led + given_back.load(Ordering::SeqCst), 2000);
        assert_eq!(committed.load(Ordering::SeqCst), led + 1000);
        assert!(
            !group.leading.load(Ordering::SeqCst),
            "the queue was left led"
        );
    }

    #[test]
    fn a_combined_group_that_fails_fails_its_writers_only() {
        let (commits, results) = run(&[("a", false), ("b", false)], "a");
        assert_eq!(commits.len(), 2, "{commits:?}");
        assert!(results[0].1.is_ok(), "the leader's own commit succeeded");
        for (_, result) in &results[1..] {
            assert!(matches!(result, Err(Error::Closed)), "{result:?}");
        }
    }
}
