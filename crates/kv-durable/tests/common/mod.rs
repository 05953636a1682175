//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use kv_core::{IndexKind, State};
use kv_durable::{Durability, Durable, OpenReport, Options};
use kv_wal::{Position, WalConfig};
use parking_lot::RwLock;

pub type Store = Durable<RwLock<State>>;

pub fn options(durability: Durability) -> Options {
    Options {
        durability,
        ..Options::default()
    }
}

pub fn open_with(wal: WalConfig, options: Options) -> (Store, OpenReport) {
    let state = RwLock::new(State::new(IndexKind::Ordered));
    Durable::open(wal, Position::START, state, options).unwrap()
}

pub fn open(dir: &Path, durability: Durability) -> (Store, OpenReport) {
    open_with(
        WalConfig::new(dir).max_segment_size(64 * 1024),
        options(durability),
    )
}

/// The live key -> value map of a store at its clock's now.
pub fn contents(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let now = store.now_ms();
    let state = store.sink().read();
    state
        .iter()
        .filter(|e| !e.is_expired(now))
        .map(|e| (e.key().to_vec(), e.value().to_vec()))
        .collect()
}
