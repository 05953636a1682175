//! What the latency examples (`compaction_stall`, `sweep_stall`) print about their puts.

/// `N puts, p50 .., p99 .., p99.9 .., max ..` of latencies in nanoseconds, in microseconds.
pub fn summary(mut ns: Vec<u64>) -> String {
    if ns.is_empty() {
        return "no puts".into();
    }
    ns.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let q = |p: f64| us(ns[((ns.len() as f64 - 1.0) * p) as usize]);
    format!(
        "{} puts, p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.0} us",
        ns.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        us(ns[ns.len() - 1])
    )
}
