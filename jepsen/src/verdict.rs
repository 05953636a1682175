//! All the checks of one run together, what they found as the lines of the report, and
//! whether the run passed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::check::{self, Ledger, Linearizability, Window};
use crate::history::Record;

/// A node's store at the end: each key's value and absolute deadline (-1 for none).
pub type Store = BTreeMap<String, (String, i64)>;

/// What the checks found.
#[derive(Debug)]
pub struct Verdict<'a> {
    records: &'a [Record],
    values: Vec<BTreeMap<String, String>>,
    ledger: Ledger,
    acked_without_majority: Vec<&'a Record>,
    invoked_without_majority: usize,
    differing: Vec<String>,
    unexpected: Vec<String>,
    linear: Linearizability,
    budget: Duration,
}

impl<'a> Verdict<'a> {
    /// Checks `records` against the nodes' final `stores`, the `windows` when two nodes were
    /// down and the `unexpected` errors the clients met, the linearizability search within
    /// `budget`.
    pub fn of(
        records: &'a [Record],
        stores: &[Store],
        windows: &[Window],
        unexpected: Vec<String>,
        budget: Duration,
    ) -> Verdict<'a> {
        let values: Vec<BTreeMap<String, String>> = stores
            .iter()
            .map(|s| s.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect())
            .collect();
        Verdict {
            records,
            ledger: check::ledger(records, &values),
            acked_without_majority: check::acked_without_majority(records, windows),
            invoked_without_majority: check::invoked_without_majority(records, windows),
            differing: differences(stores),
            unexpected,
            linear: check::linearizability(records, &values, budget),
            values,
            budget,
        }
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.ledger.lost.is_empty()
            && self.ledger.applied_though_refused.is_empty()
            && self.acked_without_majority.is_empty()
            && self.differing.is_empty()
            && self.unexpected.is_empty()
            && self.linear.violations.is_empty()
            && self.linear.undecided.is_empty()
    }

    /// The report: what failed, with the history of each key that is not linearizable, then
    /// the summary ending with `linearizable: ...` and `lost: N`.
    pub fn report(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.ledger.lost.iter().map(|l| format!("LOST {l}")));
        lines.extend(
            self.ledger
                .applied_though_refused
                .iter()
                .map(|l| format!("APPLIED THOUGH REFUSED {l}")),
        );
        lines.extend(
            self.acked_without_majority
                .iter()
                .map(|r| format!("ACKNOWLEDGED WITHOUT A MAJORITY {r}")),
        );
        lines.extend(self.differing.iter().map(|l| format!("STORES DIFFER {l}")));
        lines.extend(
            self.unexpected
                .iter()
                .map(|l| format!("UNEXPECTED ERROR {l}")),
        );
        let linear = &self.linear;
        for key in linear.violations.iter().chain(&linear.undecided) {
            lines.push(format!("the history of {key}:"));
            lines.extend(
                check::touching(self.records, key)
                    .iter()
                    .map(|r| format!("  {r}")),
            );
            for (node, store) in self.values.iter().enumerate() {
                lines.push(format!(
                    "  final value on node {}: {:?}",
                    node + 1,
                    store.get(key)
                ));
            }
        }
        lines.push(format!(
            "applied though refused: {}",
            self.ledger.applied_though_refused.len()
        ));
        lines.push(format!(
            "writes acknowledged without a majority: {} (of {} invoked while two nodes were down)",
            self.acked_without_majority.len(),
            self.invoked_without_majority
        ));
        lines.push(format!(
            "stores identical: {}",
            if self.differing.is_empty() {
                "yes"
            } else {
                "no"
            }
        ));
        lines.push(format!("keys checked: {}", linear.keys));
        lines.push(format!(
            "linearizable: {}",
            match (linear.violations.len(), linear.undecided.len()) {
                (0, 0) => "yes".to_string(),
                (0, n) => format!("unknown ({n} keys undecided within {:?})", self.budget),
                (n, _) => format!("no ({n} keys: {:?})", linear.violations),
            }
        ));
        lines.push(format!("lost: {}", self.ledger.lost.len()));
        lines
    }
}

/// Where the nodes' stores differ from the first node's, 20 lines at most.
fn differences(stores: &[Store]) -> Vec<String> {
    let mut lines = Vec::new();
    for (n, store) in stores.iter().enumerate().skip(1) {
        let keys: BTreeSet<&String> = stores[0].keys().chain(store.keys()).collect();
        for key in keys {
            let (first, other) = (stores[0].get(key), store.get(key));
            if first != other && lines.len() < 20 {
                lines.push(format!("{key}: node 1 {first:?}, node {} {other:?}", n + 1));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::STRIDE;
    use crate::history::{Op, Outcome, Reply};

    /// A SET of `k` acknowledged, then a read that began after it returned; a `Log` write
    /// acknowledged.
    fn history(read: Option<i64>) -> Vec<Record> {
        vec![
            Record::at(
                0,
                Op::Set("k".into(), STRIDE),
                0,
                1,
                Outcome::Ok(Reply::Done),
            ),
            Record::at(
                1,
                Op::Get("k".into()),
                2,
                3,
                Outcome::Ok(Reply::Value(read)),
            ),
            Record::at(
                1,
                Op::Log("log:1".into(), 7),
                4,
                5,
                Outcome::Ok(Reply::Done),
            ),
        ]
    }

    fn store(pairs: &[(&str, &str)]) -> Store {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), (v.to_string(), -1)))
            .collect()
    }

    #[test]
    fn a_clean_run_passes() {
        let records = history(Some(STRIDE));
        let full = store(&[("k", "1000000"), ("log:1", "7")]);
        let verdict = Verdict::of(
            &records,
            &[full.clone(), full.clone(), full],
            &[],
            Vec::new(),
            Duration::from_secs(10),
        );
        let report = verdict.report();
        assert!(verdict.passed(), "{report:#?}");
        assert!(
            report.contains(&"linearizable: yes".to_string()),
            "{report:#?}"
        );
        assert!(report.contains(&"lost: 0".to_string()), "{report:#?}");
        assert!(
            report.contains(&"stores identical: yes".to_string()),
            "{report:#?}"
        );
    }

    /// Each check alone fails a run that every other check passes.
    #[test]
    fn any_one_failed_check_fails_the_run() {
        let records = history(Some(STRIDE));
        let full = store(&[("k", "1000000"), ("log:1", "7")]);
        let mut later = full.clone();
        later.insert("k".into(), ("1000000".into(), 5));
        let down = [Window {
            from: Duration::ZERO,
            to: Duration::from_secs(60),
        }];
        /// The checks that failed.
        fn failed(v: &Verdict<'_>) -> Vec<&'static str> {
            [
                ("lost", !v.ledger.lost.is_empty()),
                (
                    "applied though refused",
                    !v.ledger.applied_though_refused.is_empty(),
                ),
                (
                    "acked without a majority",
                    !v.acked_without_majority.is_empty(),
                ),
                ("differing", !v.differing.is_empty()),
                ("unexpected", !v.unexpected.is_empty()),
                (
                    "not linearizable",
                    !v.linear.violations.is_empty() || !v.linear.undecided.is_empty(),
                ),
            ]
            .into_iter()
            .filter_map(|(check, failed)| failed.then_some(check))
            .collect()
        }
        // The same run with nothing wrong passes: each failure below is its one change's.
        let clean = Verdict::of(
            &records,
            &[full.clone(), full.clone(), full.clone()],
            &[],
            Vec::new(),
            Duration::from_secs(10),
        );
        assert!(clean.passed(), "{:#?}", clean.report());
        /// The check that must fail, the final stores, the windows two nodes were down,
        /// the errors.
        type Run<'a> = (&'a str, Vec<Store>, &'a [Window], Vec<String>);
        let runs: [Run<'_>; 3] = [
            (
                "unexpected",
                vec![full.clone(), full.clone(), full.clone()],
                &[],
                vec!["ERR surprise".into()],
            ),
            (
                "differing",
                vec![full.clone(), full.clone(), later],
                &[],
                Vec::new(),
            ),
            (
                "acked without a majority",
                vec![full.clone(), full.clone(), full],
                &down,
                Vec::new(),
            ),
        ];
        for (check, stores, windows, unexpected) in runs {
            let verdict = Verdict::of(
                &records,
                &stores,
                windows,
                unexpected,
                Duration::from_secs(10),
            );
            assert!(!verdict.passed(), "{check}: {:#?}", verdict.report());
            assert_eq!(failed(&verdict), [check], "{:#?}", verdict.report());
        }
    }

    #[test]
    fn a_stale_read_and_a_lost_write_are_both_reported() {
        // The read saw nothing after the SET returned; node 3 lost the Log write.
        let records = history(None);
        let full = store(&[("k", "1000000"), ("log:1", "7")]);
        let short = store(&[("k", "1000000")]);
        let verdict = Verdict::of(
            &records,
            &[full.clone(), full, short],
            &[],
            Vec::new(),
            Duration::from_secs(10),
        );
        let report = verdict.report();
        assert!(!verdict.passed());
        assert!(
            report.contains(&r#"linearizable: no (1 keys: ["k"])"#.to_string()),
            "{report:#?}"
        );
        assert!(report.contains(&"lost: 1".to_string()), "{report:#?}");
        assert!(
            report
                .iter()
                .any(|l| l.starts_with("LOST log:1: acknowledged 7, node 3")),
            "{report:#?}"
        );
        assert!(
            report.contains(&"stores identical: no".to_string()),
            "{report:#?}"
        );
        // The offending key's history is in the report.
        assert!(
            report.contains(&"the history of k:".to_string()),
            "{report:#?}"
        );
        assert!(
            report
                .iter()
                .any(|l| l.contains("Get(\"k\") -> Ok(Value(None))")),
            "{report:#?}"
        );
    }
}
