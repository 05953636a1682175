//! What the facade's integration tests share (each test file uses some of it).
#![allow(dead_code)]

use std::collections::BTreeMap;

use kv_store::KvStore;

/// Every live entry of an ordered store, in key order.
pub fn contents(store: &KvStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .range::<&[u8]>(..)
        .unwrap()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// An error and its causes, one message after the other, as a user would print them.
pub fn chain(error: &kv_store::Error) -> String {
    let mut text = error.to_string();
    let mut level = std::error::Error::source(error);
    while let Some(cause) = level {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        level = cause.source();
    }
    text
}
