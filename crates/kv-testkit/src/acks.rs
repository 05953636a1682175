//! The "ack" protocol of crash tests: the child prints a line for each write that returned,
//! the parent collects them and kills the child.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Child;

/// What starts an acknowledgement line.
const PREFIX: &str = "ack ";

/// In the child: says that `unit` of writer `thread` returned, so the parent may count on it
/// surviving a kill. Call it only after the write returned; a line is printed whole (the
/// standard output's lock is held for it), so threads may call it at once.
pub fn acknowledge(thread: u64, unit: u64) {
    println!("{PREFIX}{thread} {unit}");
}

/// What a child acknowledged: the last unit of each writer thread, and how many lines said so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acks {
    last: BTreeMap<u64, u64>,
    lines: u64,
}

impl Acks {
    /// Reads one line of the child's output: records it and returns `true` if it is an
    /// acknowledgement, returns `false` for any other line.
    ///
    /// # Panics
    ///
    /// On an acknowledgement line that is not `ack <thread> <unit>`: the child and the
    /// parent disagree about the protocol, and no check that follows could be trusted.
    pub fn record(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix(PREFIX) else {
            return false;
        };
        let parsed = rest
            .split_once(' ')
            .and_then(|(t, u)| Some((t.parse::<u64>().ok()?, u.parse::<u64>().ok()?)));
        let Some((thread, unit)) = parsed else {
            panic!("a malformed acknowledgement from the child: {line:?}");
        };
        let last = self.last.entry(thread).or_insert(unit);
        *last = (*last).max(unit);
        self.lines += 1;
        true
    }

    /// The last unit `thread` acknowledged, if any.
    pub fn last(&self, thread: u64) -> Option<u64> {
        self.last.get(&thread).copied()
    }

    /// The last unit acknowledged by each thread that acknowledged any.
    pub fn by_thread(&self) -> &BTreeMap<u64, u64> {
        &self.last
    }

    /// The same, owned.
    pub fn into_by_thread(self) -> BTreeMap<u64, u64> {
        self.last
    }

    /// How many acknowledgements were read.
    pub fn count(&self) -> u64 {
        self.lines
    }
}

/// In the parent: reads `child`'s standard output (which must be piped, as [`spawn_child`]
/// does) line by line, kills the child with SIGKILL once it has acknowledged `kill_after`
/// writes, reads on to the end of the pipe (acknowledgements already in it when the kill
/// landed count too), and reaps the child. Every line that is not an acknowledgement goes to
/// `other`.
///
/// # Panics
///
/// If the child exits by itself (before `kill_after` acknowledgements, or with success), or
/// its output cannot be taken, killed or waited for: a crash test that did not crash the
/// child tests nothing.
///
/// [`spawn_child`]: crate::spawn_child
pub fn kill_after_acks(child: &mut Child, kill_after: u64, mut other: impl FnMut(&str)) -> Acks {
    let stdout = child
        .stdout
        .take()
        .expect("the child's standard output is piped");
    let mut acks = Acks::default();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        // A read error ends the pipe as the end of file does: the child is gone.
        let Ok(line) = line else { break };
        if !acks.record(&line) {
            other(&line);
        } else if acks.count() == kill_after && !killed {
            child.kill().expect("SIGKILL the child");
            killed = true;
        }
    }
    let status = child.wait().expect("reap the child");
    assert!(
        killed && !status.success(),
        "the child exited by itself ({status}) after {} acknowledgements, before the kill",
        acks.count()
    );
    acks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_keep_the_last_unit_of_each_thread() {
        let mut acks = Acks::default();
        for line in [
            "start 0",
            "ack 1 0",
            "ack 0 0",
            "compacted",
            "ack 1 1",
            "ack 0 1",
        ] {
            acks.record(line);
        }
        assert_eq!(acks.count(), 4);
        assert_eq!(acks.last(0), Some(1));
        assert_eq!(acks.last(1), Some(1));
        assert_eq!(acks.last(2), None);
        assert!(!acks.record("acknowledged"));
    }

    #[test]
    #[should_panic(expected = "malformed")]
    fn a_malformed_acknowledgement_stops_the_test() {
        Acks::default().record("ack 7");
    }
}
