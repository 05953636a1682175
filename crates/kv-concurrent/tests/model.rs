//! The sharded state against a `BTreeMap`: point reads, totals and ordered scans agree after
//! any sequence of puts, deletes and batches, whatever the shard count.

use std::collections::BTreeMap;
use std::ops::Bound;

use kv_concurrent::Sharded;
use kv_core::{IndexKind, Op};
use kv_durable::Sink;
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let key = prop::collection::vec(0u8..4, 0..3);
    prop_oneof![
        3 => (key.clone(), prop::collection::vec(any::<u8>(), 0..4)).prop_map(|(k, v)| Op::put(k, v)),
        1 => key.prop_map(Op::delete),
    ]
}

fn apply_model(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: &Op) {
    match op {
        Op::Put { key, value, .. } => {
            model.insert(key.to_vec(), value.to_vec());
        }
        Op::Delete { key } => {
            model.remove(&key[..]);
        }
    }
}

proptest! {
    #[test]
    fn sharded_state_matches_a_btreemap(
        shards in 1usize..9,
        batches in prop::collection::vec(prop::collection::vec(op(), 1..4), 0..60),
        start in prop::collection::vec(0u8..4, 0..3),
    ) {
        let state = Sharded::new(IndexKind::Ordered, shards);
        let mut model = BTreeMap::new();
        for batch in &batches {
            if let [single] = &batch[..] {
                state.apply(single.as_ref(), 0);
            } else {
                state.apply_batch(batch, 0);
            }
            for op in batch {
                apply_model(&mut model, op);
            }
        }
        prop_assert_eq!(state.len(), model.len());
        for (key, value) in &model {
            let got = state.get(key, 0);
            prop_assert_eq!(got.as_deref(), Some(&value[..]));
        }
        let scanned: Vec<(Vec<u8>, Vec<u8>)> = state
            .range(Bound::Included(&start[..]), Bound::Unbounded, 0)
            .unwrap()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = model
            .range(start.clone()..)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(scanned, expected);
        let prefixed = state.scan_prefix(&start, 0).unwrap().count();
        prop_assert_eq!(prefixed, model.keys().filter(|k| k.starts_with(&start)).count());
    }
}
