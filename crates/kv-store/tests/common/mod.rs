//! What the facade's integration tests share.

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
