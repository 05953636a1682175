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

/// How a test consumes a scan: all from the front, all from the back, or both ends by turns
/// (`true` for the back), the pattern repeated until both ends are done.
#[derive(Debug, Clone)]
enum Ends {
    Front,
    Back,
    Mixed(Vec<bool>),
}

fn ends() -> impl Strategy<Value = Ends> {
    prop_oneof![
        Just(Ends::Front),
        Just(Ends::Back),
        prop::collection::vec(any::<bool>(), 1..40).prop_map(Ends::Mixed),
        // Mostly one end, now and then the other.
        prop::collection::vec(prop::bool::weighted(0.05), 1..200).prop_map(Ends::Mixed),
    ]
}

/// Consumes `next` / `next_back` as `ends` says, until both ends give nothing; returns what
/// the front gave and what the back gave, in the order given, and checks that an end that
/// said it was done stays done.
fn consume<T: Clone + PartialEq + std::fmt::Debug>(
    scan: &mut impl DoubleEndedIterator<Item = T>,
    ends: &Ends,
) -> (Vec<T>, Vec<T>) {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    let mut steps = 0usize;
    loop {
        let from_back = match ends {
            Ends::Front => false,
            Ends::Back => true,
            Ends::Mixed(pattern) => pattern[steps % pattern.len()],
        };
        steps += 1;
        let item = if from_back {
            scan.next_back()
        } else {
            scan.next()
        };
        match item {
            Some(item) if from_back => back.push(item),
            Some(item) => front.push(item),
            None => {
                assert_eq!(
                    scan.next(),
                    None,
                    "the front gave more after an end was done"
                );
                assert_eq!(
                    scan.next_back(),
                    None,
                    "the back gave more after an end was done"
                );
                return (front, back);
            }
        }
    }
}

fn prefix() -> impl Strategy<Value = Vec<u8>> {
    "[0-3]{0,3}".prop_map(String::into_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Range and prefix scans read from the front, the back, or both ends by turns, give
    /// exactly the model's entries: the front in ascending order, the back in descending
    /// order, and together every entry of the range once, the two ends meeting without
    /// crossing. Enough keys that each shard's part is read in several chunks from each end.
    #[test]
    fn scans_from_either_end_match_a_btreemap(
        shards in 1usize..17,
        keys in prop::collection::btree_set(0u32..3000, 0..2500),
        deleted in prop::collection::vec(0u32..3000, 0..500),
        start in bound(),
        end in bound(),
        prefix in prefix(),
        by_prefix in any::<bool>(),
        ends in ends(),
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
        let (mut scan, expected): (_, Vec<(Vec<u8>, Vec<u8>)>) = if by_prefix {
            let expected = model
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (state.scan_prefix(&prefix, 0).unwrap(), expected)
        } else {
            let in_range = |k: &Vec<u8>| {
                RangeBounds::<[u8]>::contains(&(as_ref(&start), as_ref(&end)), &k[..])
            };
            let expected = model
                .iter()
                .filter(|(k, _)| in_range(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (state.range(as_ref(&start), as_ref(&end), 0).unwrap(), expected)
        };
        let owned = |items: Vec<(bytes::Bytes, bytes::Bytes)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            items.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
        };
        let (front, back) = consume(&mut scan, &ends);
        let (front, mut back) = (owned(front), owned(back));
        prop_assert_eq!(&front[..], &expected[..front.len()], "the front, in order");
        back.reverse();
        prop_assert_eq!(&back[..], &expected[front.len()..], "the back, in reverse order");
    }

    /// A walk over a hash index, from either end or both by turns, gives every key once.
    #[test]
    fn a_hash_walk_from_either_end_gives_every_key_once(
        shards in 1usize..33,
        keys in prop::collection::btree_set(0u32..3000, 0..2000),
        ends in ends(),
    ) {
        let state = Sharded::new(IndexKind::Hash, shards);
        for n in &keys {
            state.apply(Op::put(format!("{n:04}"), n.to_string()).as_ref(), 0);
        }
        let (front, back) = consume(&mut state.iter(0), &ends);
        let mut seen: Vec<u32> = front
            .iter()
            .chain(&back)
            .map(|(k, v)| {
                let n: u32 = std::str::from_utf8(v).unwrap().parse().unwrap();
                assert_eq!(&k[..], format!("{n:04}").as_bytes(), "a key with its own value");
                n
            })
            .collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, keys.into_iter().collect::<Vec<_>>());
    }
}
