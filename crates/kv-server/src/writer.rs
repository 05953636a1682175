//! The writer: one thread that answers every pipeline holding a write, many connections'
//! at once, with one commit for all their blocks.
//!
//! A write may wait for an fsync, so it never runs on a runtime thread. Handing each
//! connection's pipeline to tokio's blocking pool costs two thread wake-ups per pipeline,
//! and under `Durability::Sync` one more for the store's group commit to answer each
//! writer: on a small machine those wake-ups, not the disk, bounded the writes per second.
//! Instead connections queue their pipelines here. The writer takes every pipeline queued
//! (up to [`MAX_TOGETHER`] commands' worth of blocks), answers each up to its next block
//! (`Session::answer_until_block`), runs all those blocks (up to [`MAX_TOGETHER_BYTES`] of
//! arguments) as one atomic step with one commit (`session::run_blocks`), and goes on until each pipeline is answered (or its
//! replies fill a chunk); meanwhile the next pipelines queue up. That is the group commit
//! of Redis's event loop, which fsyncs once per pass for every client; here the keys a
//! block reads stay held until the commit is durable, so no reader sees a write before it
//! is.
//!
//! The blocks of one pass run one after the other, in the order their connections
//! queued, and are applied together: a valid serialization, in which each block is atomic.
//! Commands that are not in blocks (`FLUSHDB`, `EXEC`, connection commands) run on the
//! writer between passes' blocks, one at a time, as before: a slow one holds up the
//! others' writes, as in Redis.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender};

use bytes::{Bytes, BytesMut};
use kv_store::KvStore;

use crate::session::{run_blocks, Session, Stage};

/// A connection's pipeline, handed to the writer, and where to hand it back.
pub(crate) struct Job {
    pub(crate) session: Session,
    pub(crate) requests: VecDeque<Vec<Bytes>>,
    pub(crate) output: BytesMut,
    /// Replies are written once they reach this size: the writer stops there.
    pub(crate) chunk: usize,
    pub(crate) done: tokio::sync::oneshot::Sender<Answered>,
}

/// A job handed back: the session, the requests left, the replies.
pub(crate) type Answered = (Session, VecDeque<Vec<Bytes>>, BytesMut);

/// Blocks of at most this many commands in all go into one commit (more queued wait for
/// the next): it bounds the keys held at once and the batch written.
const MAX_TOGETHER: usize = 1024;

/// Blocks of at most about this many bytes of arguments go into one commit (a single
/// block may be larger: see `block::MAX_BYTES`), which bounds the batch the log encodes.
const MAX_TOGETHER_BYTES: usize = 8 << 20;

/// Starts the writer for `store`; it ends once every [`Sender`] of the channel is dropped.
pub(crate) fn start(store: KvStore) -> std::io::Result<(Sender<Job>, std::thread::JoinHandle<()>)> {
    let (jobs, queue) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("kv-server-writer".into())
        .spawn(move || run(&store, &queue))?;
    Ok((jobs, thread))
}

fn run(store: &KvStore, queue: &Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        jobs.extend(queue.try_iter());
        // A panic answering them is a bug: their connections close (the senders dropped
        // with the jobs), and the writer goes on for the others.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(store, &mut jobs);
            jobs
        }));
        for job in answered.into_iter().flatten() {
            let _ = job.done.send((job.session, job.requests, job.output));
        }
    }
}

/// Passes (commits) the writer makes for the jobs it took before it hands them back,
/// unfinished or not, and takes the jobs queued meanwhile: a connection that sent one
/// write waits for at most this many commits of a long pipeline taken before it.
const MAX_PASSES: usize = 8;

/// Answers every job, each until its requests run out, its replies fill its chunk, or
/// [`MAX_PASSES`] commits were made (its connection then hands it over again).
fn answer(store: &KvStore, jobs: &mut [Job]) {
    let mut active: Vec<usize> = (0..jobs.len()).collect();
    for _ in 0..MAX_PASSES {
        if active.is_empty() {
            break;
        }
        // Each job up to its next block, while the blocks taken stay under the bound.
        let mut staged: Vec<(usize, Stage)> = Vec::new();
        let (mut commands, mut bytes) = (0, 0);
        let mut later = Vec::new();
        for &i in &active {
            if commands >= MAX_TOGETHER || bytes >= MAX_TOGETHER_BYTES {
                later.push(i);
                continue;
            }
            let job = &mut jobs[i];
            if let Some(stage) =
                job.session
                    .answer_until_block(&mut job.requests, &mut job.output, job.chunk)
            {
                commands += stage.block.len();
                bytes += stage.size;
                staged.push((i, stage));
            }
        }
        if !staged.is_empty() {
            let blocks: Vec<&[_]> = staged.iter().map(|(_, stage)| &stage.block[..]).collect();
            let replies = run_blocks(store, &blocks);
            for ((i, stage), replies) in staged.into_iter().zip(replies) {
                let job = &mut jobs[i];
                job.session
                    .finish(stage, replies, &mut job.requests, &mut job.output);
                later.push(i);
            }
        }
        active = later;
    }
}
