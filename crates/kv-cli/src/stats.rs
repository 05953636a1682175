//! The store's figures in the three shapes kv prints them: one shell line, text, JSON.

use kv_store::Stats;
use serde_json::{json, Value};

/// The figures as `(name, value)` pairs, in the order they are printed.
fn figures(stats: &Stats) -> Vec<(&'static str, String)> {
    let recovery = &stats.recovery;
    let commit = &stats.commit;
    vec![
        ("keys", stats.keys.to_string()),
        ("memory_used", stats.memory_used.to_string()),
        ("live_bytes", stats.live_bytes.to_string()),
        ("log_segments", stats.log_segments.to_string()),
        ("log_bytes", stats.log_bytes.to_string()),
        ("snapshot_bytes", stats.snapshot_bytes.to_string()),
        ("live_data_ratio", format!("{:.3}", stats.live_data_ratio)),
        ("recovered_records", recovery.recovery.records.to_string()),
        ("replayed", recovery.replayed.to_string()),
        ("expired_dropped", recovery.expired_dropped.to_string()),
        (
            "bytes_truncated",
            recovery.recovery.bytes_truncated.to_string(),
        ),
        (
            "corruptions",
            recovery.recovery.corruptions.len().to_string(),
        ),
        ("open_ms", format!("{:.3}", millis(recovery.duration))),
        ("commit_groups", commit.groups.to_string()),
        ("commit_records", commit.records.to_string()),
        ("bytes_written", commit.bytes_written.to_string()),
        ("fsyncs", commit.fsyncs.to_string()),
        (
            "records_per_fsync",
            format!("{:.2}", commit.records_per_fsync()),
        ),
        ("commit_p50_us", micros(commit.latency_p50).to_string()),
        ("commit_p99_us", micros(commit.latency_p99).to_string()),
        ("commit_max_us", micros(commit.latency_max).to_string()),
        ("compactions", stats.compaction.compactions.to_string()),
        ("compaction_failures", stats.compaction.failures.to_string()),
        ("evictions", stats.evictions.to_string()),
        ("expirations", stats.expirations.to_string()),
        ("errors", stats.errors.to_string()),
        ("failed", commit.failed.is_some().to_string()),
    ]
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn micros(d: std::time::Duration) -> u128 {
    d.as_micros()
}

/// One line of `name=value` pairs separated by spaces: the shell's `STATS` answer.
pub fn line(stats: &Stats) -> String {
    figures(stats)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `name: value` line per figure, plus the reason the store failed, if it did.
pub fn text(stats: &Stats) -> String {
    let mut out = String::new();
    for (name, value) in figures(stats) {
        out.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(reason) = &stats.commit.failed {
        out.push_str(&format!("failure: {reason}\n"));
    }
    out
}

/// Every figure as one JSON object, recovery and commit figures nested.
pub fn json(stats: &Stats) -> Value {
    let recovery = &stats.recovery;
    let info = &recovery.recovery;
    let commit = &stats.commit;
    let corruptions: Vec<Value> = info
        .corruptions
        .iter()
        .map(|c| {
            json!({
                "segment": c.segment,
                "offset": c.offset,
                "kind": c.kind.to_string(),
                "bytes": c.bytes,
                "action": format!("{:?}", c.action).to_lowercase(),
            })
        })
        .collect();
    json!({
        "keys": stats.keys,
        "memory_used": stats.memory_used,
        "live_bytes": stats.live_bytes,
        "log_segments": stats.log_segments,
        "log_bytes": stats.log_bytes,
        "snapshot_bytes": stats.snapshot_bytes,
        "live_data_ratio": stats.live_data_ratio,
        "recovery": {
            "records": info.records,
            "segments_scanned": info.segments_scanned,
            "bytes_scanned": info.bytes_scanned,
            "bytes_truncated": info.bytes_truncated,
            "corruptions": corruptions,
            "replayed": recovery.replayed,
            "expired_dropped": recovery.expired_dropped,
            "duration_ms": millis(recovery.duration),
        },
        "commit": {
            "groups": commit.groups,
            "records": commit.records,
            "bytes_written": commit.bytes_written,
            "fsyncs": commit.fsyncs,
            "records_synced": commit.records_synced,
            "records_per_fsync": commit.records_per_fsync(),
            "latency_p50_us": micros(commit.latency_p50) as u64,
            "latency_p99_us": micros(commit.latency_p99) as u64,
            "latency_max_us": micros(commit.latency_max) as u64,
            "failed": commit.failed,
        },
        "compaction": {
            "compactions": stats.compaction.compactions,
            "failures": stats.compaction.failures,
            "last": stats.compaction.last.map(|last| json!({
                "snapshot": last.snapshot,
                "entries": last.entries,
                "bytes_before": last.bytes_before,
                "bytes_after": last.bytes_after,
                "duration_ms": millis(last.duration),
            })),
        },
        "evictions": stats.evictions,
        "expirations": stats.expirations,
        "errors": stats.errors,
    })
}
