//! The store's figures as JSON, for `kv stats --json` (the text is `Stats`'s `Display`; the
//! shell's are in `INFO store`). Each
//! figure goes by its one name ([`Stats::figures`]): the same as the field of `Stats` and
//! the metric (`kv_` + name).

use kv_store::{FigureValue, OpenReport, Stats};
use serde_json::{json, Map, Value};

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
