//! What the facade's integration tests share (each test binary uses a part of it).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use kv_store::KvStore;

/// Every live entry of an ordered store, in key order.
pub fn contents(store: &KvStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .range::<&[u8]>(..)
        .unwrap()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Copies directory `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
