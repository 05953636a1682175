//! One result of a workload run, and how it is printed: a table row or a JSON line.

use serde_json::{json, Map, Value};

/// The limit a result is compared with.
#[derive(Debug, Clone)]
pub struct Limit {
    /// "L1", "L2", "L3".
    pub name: &'static str,
    /// The limit's rate.
    pub value: f64,
    /// Its unit ("fsyncs/s", "bytes/s").
    pub unit: &'static str,
    /// The workload's figure in the same unit.
    pub measured: f64,
}

/// The outcome of one workload at one thread count.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// "W1".."W8", or a variant of one ("W4-snapshot").
    pub workload: &'static str,
    /// What it does, in a few words.
    pub what: &'static str,
    /// Threads doing the operations.
    pub threads: u64,
    /// Operations timed.
    pub ops: u64,
    /// Wall time of those operations.
    pub seconds: f64,
    /// Latency percentiles in microseconds, where operations were timed.
    pub p50_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
    /// The limit of the spec this workload is reported against.
    pub limit: Option<Limit>,
    /// Figures of this workload only.
    pub extra: Map<String, Value>,
}

impl Outcome {
    /// A run that did `ops` operations in `seconds`.
    pub fn new(
        workload: &'static str,
        what: &'static str,
        threads: u64,
        ops: u64,
        seconds: f64,
    ) -> Self {
        Outcome {
            workload,
            what,
            threads,
            ops,
            seconds,
            p50_us: None,
            p99_us: None,
            limit: None,
            extra: Map::new(),
        }
    }

    /// Adds the latency percentiles.
    pub fn latencies(mut self, latencies: &super::measure::Latencies) -> Self {
        self.p50_us = latencies.micros(0.50);
        self.p99_us = latencies.micros(0.99);
        self
    }

    /// Adds the limit this run is compared with.
    pub fn against(mut self, limit: Limit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Adds a figure of this workload.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(name.to_string(), value.into());
        self
    }

    /// Operations a second.
    pub fn ops_per_sec(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.ops as f64 / self.seconds)
    }

    /// The measured figure over the limit.
    pub fn ratio(&self) -> Option<f64> {
        self.limit
            .as_ref()
            .filter(|l| l.value > 0.0)
            .map(|l| l.measured / l.value)
    }

    /// The JSON line.
    pub fn json(&self, quick: bool) -> Value {
        let mut object = json!({
            "workload": self.workload,
            "what": self.what,
            "threads": self.threads,
            "ops": self.ops,
            "seconds": self.seconds,
            "ops_per_sec": self.ops_per_sec(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "limit": self.limit.as_ref().map(|l| l.name),
            "limit_value": self.limit.as_ref().map(|l| l.value),
            "limit_unit": self.limit.as_ref().map(|l| l.unit),
            "measured_in_limit_unit": self.limit.as_ref().map(|l| l.measured),
            "ratio_to_limit": self.ratio(),
            "quick": quick,
        });
        let fields = object.as_object_mut().expect("an object");
        for (name, value) in &self.extra {
            fields.insert(name.clone(), value.clone());
        }
        object
    }

    /// The table row (see [`HEADER`]).
    pub fn row(&self) -> String {
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), number);
        let versus = match (&self.limit, self.ratio()) {
            (Some(limit), Some(ratio)) => format!("{ratio:.2}x {}", limit.name),
            _ => "-".to_string(),
        };
        let notes: Vec<String> = self
            .extra
            .iter()
            .map(|(name, value)| match value.as_f64() {
                Some(v) if value.is_f64() => format!("{name}={}", number(v)),
                _ => format!("{name}={value}"),
            })
            .collect();
        // A variant is told apart by its `what`: the id column keeps its width.
        let id = self.workload.split('-').next().unwrap_or(self.workload);
        format!(
            "{:<3} {:<26} {:>4} {:>12} {:>9} {:>9} {:>10}  {}",
            id,
            self.what,
            self.threads,
            cell(self.ops_per_sec()),
            cell(self.p50_us),
            cell(self.p99_us),
            versus,
            notes.join(" ")
        )
    }
}

/// The table's header.
pub const HEADER: &str =
    "id  workload                   thr        ops/s    p50 us    p99 us   vs limit  notes";

/// A number with three significant figures at most, thousands grouped.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 1000.0 {
        let digits = format!("{:.0}", v.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{}{grouped}", if v < 0.0 { "-" } else { "" })
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(number(1_234_567.8), "1,234,568");
        assert_eq!(number(-1500.0), "-1,500");
        assert_eq!(number(123.4), "123");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1.234), "1.23");
    }

    #[test]
    fn json_lines_carry_the_required_fields() {
        let outcome = Outcome::new("W1", "durable put", 8, 1000, 0.5)
            .against(Limit {
                name: "L1",
                value: 1000.0,
                unit: "fsyncs/s",
                measured: 2000.0,
            })
            .with("records_per_fsync", 7.5);
        let line = outcome.json(true);
        assert_eq!(line["workload"], "W1");
        assert_eq!(line["threads"], 8);
        assert_eq!(line["ops_per_sec"], 2000.0);
        assert_eq!(line["limit"], "L1");
        assert_eq!(line["ratio_to_limit"], 2.0);
        assert_eq!(line["records_per_fsync"], 7.5);
        assert!(line["p50_us"].is_null());
        let idle = Outcome::new("W4", "recovery", 1, 0, 0.0).json(false);
        assert!(idle["ops_per_sec"].is_null());
        assert!(idle["ratio_to_limit"].is_null());
    }
}
