//! The store's figures in the two shapes `kv stats` prints them: text, JSON (the shell's
//! are in `INFO store`). Each
//! figure goes by its one name ([`Stats::figures`]): the same as the field of `Stats` and
//! the metric (`kv_` + name).

use kv_store::{FigureValue, OpenReport, Stats};
use serde_json::{json, Map, Value};

/// One `name: value` line per figure, plus the reason the store failed, if it did.
pub fn text(stats: &Stats) -> String {
    let mut out = String::new();
    for figure in stats.figures() {
        out.push_str(&format!("{}: {}\n", figure.name, figure.value));
    }
    if let Some(reason) = &stats.failure {
        out.push_str(&format!("failure: {reason}\n"));
    }
    out
}

/// Every figure as one flat JSON object under the same names, with the details no figure
/// holds: why the store failed, the last compaction, and what opening cut or skipped.
pub fn json(stats: &Stats, opened: &OpenReport) -> Value {
    let mut object = Map::new();
    for figure in stats.figures() {
        let value = match figure.value {
            FigureValue::Count(n) => json!(n),
            FigureValue::Ratio(r) => json!(r),
            FigureValue::Flag(b) => json!(b),
        };
        object.insert(figure.name.to_string(), value);
    }
    object.insert("failure".into(), json!(stats.failure));
    let last = stats.last_compaction.map(|last| {
        json!({
            "snapshot": last.snapshot,
            "entries": last.entries,
            "bytes_before": last.bytes_before,
            "bytes_after": last.bytes_after,
            "duration_micros": last.duration.as_micros() as u64,
        })
    });
    object.insert("last_compaction".into(), json!(last));
    let corruptions: Vec<Value> = opened
        .recovery
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
    object.insert("open_corruption_list".into(), json!(corruptions));
    Value::Object(object)
}
