//! The sharded state against a `BTreeMap`: point reads, totals and ordered scans agree after
//! any sequence of puts, deletes and batches, whatever the shard count.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

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

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    let key = (0u32..3000).prop_map(|n| format!("{n:04}").into_bytes());
    prop_oneof![
        Just(Bound::Unbounded),
        key.clone().prop_map(Bound::Included),
        key.prop_map(Bound::Excluded),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Enough keys that every shard's part of a scan is read in several chunks.
    #[test]
    fn long_scans_match_a_btreemap(
        shards in 1usize..17,
        keys in prop::collection::btree_set(0u32..3000, 0..2500),
        deleted in prop::collection::vec(0u32..3000, 0..500),
        start in bound(),
        end in bound(),
        taken in 0usize..3000,
    ) {
        let state = Sharded::new(IndexKind::Ordered, shards);
        let mut model = BTreeMap::new();
        let ops = keys
            .iter()
            .map(|n| Op::put(format!("{n:04}"), n.to_string()))
            .chain(deleted.iter().map(|n| Op::delete(format!("{n:04}"))));
        for op in ops {
            state.apply(op.as_ref(), 0);
            apply_model(&mut model, &op);
        }
        fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
            b.as_ref().map(|k| &k[..])
        }
        let scanned: Vec<(Vec<u8>, Vec<u8>)> = state
            .range(as_ref(&start), as_ref(&end), 0)
            .unwrap()
            .take(taken)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let in_range = |k: &Vec<u8>| {
            RangeBounds::<[u8]>::contains(&(as_ref(&start), as_ref(&end)), &k[..])
        };
        let expected: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter(|(k, _)| in_range(k))
            .take(taken)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(scanned, expected);
    }
}
