//! The nemesis: faults one after another, with healthy time between them, until the run's
//! end. The first three are one of each kind, so that even a short run has them all.
//!
//! - **Kill**: SIGKILL a node (the leader three times in four) and restart it on its
//!   directory a moment later.
//! - **Pause**: SIGSTOP a node (the leader half the time), cut off from peers and clients
//!   alike, and SIGCONT it 0.3 to 4 seconds later.
//! - **Majority loss**: SIGKILL two nodes at once, and restart them a few seconds later:
//!   the window between is recorded, since no write may be acknowledged in it.

use std::time::Duration;

use kv_testkit::cluster::Node;

use crate::check::Window;
use crate::history::Recorder;

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct Faults {
    /// SIGKILLs of one node.
    pub kills: usize,
    /// Of which, of the leader.
    pub leader_kills: usize,
    /// SIGSTOPs.
    pub pauses: usize,
    /// Two nodes killed at once.
    pub majority_losses: usize,
    /// When two nodes were down.
    pub windows: Vec<Window>,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Pause,
    MajorityLoss,
}

/// How long a node may take to answer `INFO` when looking for the leader.
const INFO_TIMEOUT: Duration = Duration::from_millis(1000);

/// The index of the node that says it leads, if one that runs and is not paused does.
pub fn leader(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| {
        n.is_running()
            && !n.is_paused()
            && n.info(INFO_TIMEOUT)
                .is_ok_and(|i| i.get("role").map(String::as_str) == Some("leader"))
    })
}

/// Injects faults into `nodes` until `until` (since the run began); every node runs and is
/// resumed when it returns.
///
/// # Errors
///
/// When a node cannot be restarted.
pub fn run(
    nodes: &mut [Node],
    recorder: &Recorder,
    until: Duration,
    seed: u64,
) -> Result<Faults, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut faults = Faults::default();
    let sleep_ms = |rng: &mut fastrand::Rng, from: u64, to: u64| {
        std::thread::sleep(Duration::from_millis(rng.u64(from..to)));
    };
    let first = [Fault::Kill, Fault::Pause, Fault::MajorityLoss];
    // The longest fault with the healthy time before it.
    let longest = Duration::from_secs(8);
    for round in 0.. {
        sleep_ms(&mut rng, 1000, 3000);
        if recorder.elapsed() + longest > until {
            break;
        }
        let fault = first
            .get(round)
            .copied()
            .unwrap_or_else(|| match rng.u8(..100) {
                0..40 => Fault::Kill,
                40..75 => Fault::Pause,
                _ => Fault::MajorityLoss,
            });
        let leader = leader(nodes);
        let random = rng.usize(..nodes.len());
        match fault {
            Fault::Kill => {
                let target = match leader {
                    Some(l) if rng.u8(..4) != 0 => l,
                    _ => random,
                };
                log(recorder, &format!("kill node {}", target + 1));
                kill(recorder, &mut nodes[target]);
                faults.kills += 1;
                faults.leader_kills += usize::from(Some(target) == leader);
                sleep_ms(&mut rng, 500, 2500);
                log(recorder, &format!("restart node {}", target + 1));
                nodes[target].start()?;
            }
            Fault::Pause => {
                let target = match leader {
                    Some(l) if rng.bool() => l,
                    _ => random,
                };
                log(recorder, &format!("pause node {}", target + 1));
                nodes[target].pause();
                faults.pauses += 1;
                // From shorter than an election timeout (500 to 1000 ms) to several: a
                // leader that comes back may or may not have been replaced meanwhile.
                sleep_ms(&mut rng, 300, 4000);
                log(recorder, &format!("resume node {}", target + 1));
                nodes[target].resume();
            }
            Fault::MajorityLoss => {
                let spared = rng.usize(..nodes.len());
                let down: Vec<usize> = (0..nodes.len()).filter(|i| *i != spared).collect();
                log(
                    recorder,
                    &format!(
                        "kill nodes {:?}",
                        down.iter().map(|i| i + 1).collect::<Vec<_>>()
                    ),
                );
                for i in &down {
                    nodes[*i].sigkill();
                }
                for i in &down {
                    kill(recorder, &mut nodes[*i]);
                }
                let from = recorder.elapsed();
                faults.majority_losses += 1;
                sleep_ms(&mut rng, 2000, 4000);
                let to = recorder.elapsed();
                faults.windows.push(Window { from, to });
                log(recorder, "restart them");
                for i in down {
                    nodes[i].start()?;
                }
            }
        }
    }
    // Every fault above ends by resuming or restarting what it took down.
    Ok(faults)
}

/// Kills `node` and reaps it, saying so when that took long: a process blocked in a sync
/// on a busy disk dies only once the sync returns.
fn kill(recorder: &Recorder, node: &mut Node) {
    let start = std::time::Instant::now();
    node.kill();
    if start.elapsed() > Duration::from_secs(1) {
        log(
            recorder,
            &format!(
                "node {} took {:.1}s to die",
                node.id,
                start.elapsed().as_secs_f64()
            ),
        );
    }
}

fn log(recorder: &Recorder, what: &str) {
    eprintln!(
        "jepsen: {:>7.3}s nemesis: {what}",
        recorder.elapsed().as_secs_f64()
    );
}
