//! Feature `metrics`: every figure is published, described and labelled by store, on a timer
//! of its own. A small recorder in the test captures what a real exporter would get.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kv_store::{FigureKind, FigureUnit, KvStore, Options};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};

/// A series' last value (a counter's or a gauge's, as f64 bits).
#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        let now = f64::from_bits(self.0.load(Ordering::Relaxed)) + value as f64;
        self.0.store(now.to_bits(), Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store((value as f64).to_bits(), Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + value);
    }

    fn decrement(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) - value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Counter,
    Gauge,
}

/// Series are keyed by name, kind and `store` label.
type SeriesKey = (String, Kind, Option<String>);
/// A description: unit and help text.
type Description = (Option<Unit>, String);

#[derive(Debug, Default)]
struct Captured {
    descriptions: Mutex<HashMap<(String, Kind), Description>>,
    series: Mutex<HashMap<SeriesKey, Arc<Cell>>>,
}

impl Captured {
    fn value(&self, name: &str, kind: Kind, store: &str) -> Option<f64> {
        let key = (name.to_string(), kind, Some(store.to_string()));
        let series = self.series.lock().unwrap();
        series
            .get(&key)
            .map(|cell| f64::from_bits(cell.0.load(Ordering::Relaxed)))
    }

    fn cell(&self, key: &Key, kind: Kind) -> Arc<Cell> {
        let store = key
            .labels()
            .find(|label| label.key() == "store")
            .map(|label| label.value().to_string());
        let mut series = self.series.lock().unwrap();
        Arc::clone(
            series
                .entry((key.name().to_string(), kind, store))
                .or_default(),
        )
    }

    fn describe(&self, name: KeyName, kind: Kind, unit: Option<Unit>, help: SharedString) {
        let mut descriptions = self.descriptions.lock().unwrap();
        descriptions.insert((name.as_str().to_string(), kind), (unit, help.to_string()));
    }
}

#[derive(Debug, Clone, Default)]
struct TestRecorder(Arc<Captured>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.0.describe(name, Kind::Counter, unit, help);
    }

    fn describe_gauge(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.0.describe(name, Kind::Gauge, unit, help);
    }

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.cell(key, Kind::Counter))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.cell(key, Kind::Gauge))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Waits (at most 5 s) until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_figure_is_published_described_and_labelled_by_store_on_its_own_timer() {
    let recorder = TestRecorder::default();
    let captured = Arc::clone(&recorder.0);
    metrics::set_global_recorder(recorder).unwrap();

    let dir = tempfile::tempdir().unwrap();
    // The sweep never runs during the test: publishing has a timer of its own.
    let options = Options::default()
        .sweep_interval(Duration::from_secs(3600))
        .metrics_interval(Duration::from_millis(20));
    let alpha =
        KvStore::open_with(dir.path().join("alpha"), options.clone().name("alpha")).unwrap();
    let unnamed = KvStore::open_with(dir.path().join("unnamed"), options).unwrap();
    let unnamed_label = dir.path().join("unnamed").display().to_string();
    assert_eq!(
        (alpha.name(), unnamed.name()),
        ("alpha", &unnamed_label[..])
    );

    for i in 0..3 {
        alpha.put(format!("k{i}"), "v").unwrap();
    }
    let records = || captured.value("kv_commit_records_total", Kind::Counter, "alpha");
    eventually("3 records published", || records() == Some(3.0));
    // Published again on the next tick, not once.
    alpha.put("k3", "v").unwrap();
    alpha.put("k4", "v").unwrap();
    eventually("5 records published", || records() == Some(5.0));
    eventually("the background fsync of the Batch window counted", || {
        captured.value("kv_background_fsyncs_total", Kind::Counter, "alpha") >= Some(1.0)
    });
    assert_eq!(captured.value("kv_keys", Kind::Gauge, "alpha"), Some(5.0));
    eventually("the unnamed store labelled by its path", || {
        captured.value("kv_keys", Kind::Gauge, &unnamed_label) == Some(0.0)
    });

    let figures = alpha.stats().figures();
    let descriptions = captured.descriptions.lock().unwrap();
    for figure in &figures {
        let name = format!("kv_{}", figure.name);
        let kind = match figure.kind {
            FigureKind::Counter => Kind::Counter,
            FigureKind::Gauge => Kind::Gauge,
        };
        let (unit, help) = descriptions
            .get(&(name.clone(), kind))
            .unwrap_or_else(|| panic!("{name} ({kind:?}) is not described"));
        assert_eq!(help, figure.help, "{name}");
        let expected = match figure.unit {
            FigureUnit::Count => Some(Unit::Count),
            FigureUnit::Bytes => Some(Unit::Bytes),
            FigureUnit::Micros => Some(Unit::Microseconds),
            FigureUnit::Ratio | FigureUnit::Flag => None,
        };
        assert_eq!(*unit, expected, "{name}");
        for store in ["alpha", &unnamed_label[..]] {
            assert!(
                captured.value(&name, kind, store).is_some(),
                "{name} is not published for {store}"
            );
        }
    }
    // Nothing is published without the store's label, nor under a name not in the table.
    let series = captured.series.lock().unwrap();
    for (name, _, store) in series.keys() {
        assert!(store.is_some(), "{name} has no store label");
        assert!(
            figures.iter().any(|f| format!("kv_{}", f.name) == *name),
            "{name} is not a figure"
        );
    }
}
