//! The state against a `BTreeMap` model, with an injected clock.

use std::collections::BTreeMap;
use std::ops::Bound;

use kv_core::{Expiry, IndexKind, Op, State};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Apply(Op),
    Advance(u64),
    Sweep,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // A small key space so operations collide.
    prop_oneof![
        (0u8..12).prop_map(|k| vec![b'k', k]),
        proptest::collection::vec(any::<u8>(), 0..4),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let expiry = prop_oneof![
        3 => Just(Expiry::Never),
        1 => (0u64..50).prop_map(Expiry::AfterMillis),
        1 => (900u64..1100).prop_map(Expiry::AtUnixMillis),
    ];
    prop_oneof![
        3 => (key(), proptest::collection::vec(any::<u8>(), 0..20), expiry).prop_map(
            |(key, value, expiry)| Op::Put { key: key.into(), value: value.into(), expiry }
        ),
        1 => key().prop_map(Op::delete),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => op().prop_map(Step::Apply),
        2 => (0u64..40).prop_map(Step::Advance),
        1 => Just(Step::Sweep),
    ]
}

type Model = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

fn model_apply(model: &mut Model, op: &Op, now: u64) {
    match op {
        Op::Put { key, value, expiry } => {
            let deadline = expiry.deadline(now);
            if deadline.is_some_and(|d| d <= now) {
                model.remove(&key[..]);
            } else {
                model.insert(key.to_vec(), (value.to_vec(), deadline));
            }
        }
        Op::Delete { key } => {
            model.remove(&key[..]);
        }
    }
}

fn live(model: &Model, now: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(_, (_, d))| d.is_none_or(|d| d > now))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

fn state_live(state: &State, now: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all: Vec<_> = state
        .iter()
        .filter(|e| !e.is_expired(now))
        .map(|e| (e.key().to_vec(), e.value().to_vec()))
        .collect();
    all.sort();
    all
}

proptest! {
    #[test]
    fn state_matches_the_model(steps in proptest::collection::vec(step(), 1..120), ordered: bool) {
        let kind = if ordered { IndexKind::Ordered } else { IndexKind::Hash };
        let mut state = State::new(kind);
        let mut model = Model::new();
        let mut now = 1_000;
        for step in &steps {
            match step {
                Step::Apply(op) => {
                    state.apply(op.as_ref(), now);
                    model_apply(&mut model, op, now);
                }
                Step::Advance(ms) => now += ms,
                Step::Sweep => {
                    state.sweep_expired(now);
                    model.retain(|_, (_, d)| d.is_none_or(|d| d > now));
                    prop_assert_eq!(state.len(), model.len());
                }
            }
            for k in 0u8..12 {
                let key = [b'k', k];
                let expected = model
                    .get(&key[..])
                    .filter(|(_, d)| d.is_none_or(|d| d > now))
                    .map(|(v, _)| v.clone());
                prop_assert_eq!(state.get(&key, now).map(|e| e.value().to_vec()), expected);
            }
        }
        prop_assert_eq!(state_live(&state, now), live(&model, now));
        if ordered {
            let scanned: Vec<_> = state
                .range(Bound::Included(b"k\x03"), Bound::Excluded(b"k\x09"), now)
                .unwrap()
                .map(|e| (e.key().to_vec(), e.value().to_vec()))
                .collect();
            let expected: Vec<_> = live(&model, now)
                .into_iter()
                .filter(|(k, _)| k[..] >= b"k\x03"[..] && k[..] < b"k\x09"[..])
                .collect();
            prop_assert_eq!(scanned, expected);
            let prefixed: Vec<_> = state.scan_prefix(b"k", now).unwrap().map(|e| e.key().to_vec()).collect();
            let expected: Vec<_> = live(&model, now).into_iter().map(|(k, _)| k).filter(|k| k.starts_with(b"k")).collect();
            prop_assert_eq!(prefixed, expected);
        }
    }

    #[test]
    fn replaying_over_a_prefix_gives_the_same_state(
        ops in proptest::collection::vec(op(), 0..80),
        cut in 0usize..80,
        overlap in 0usize..80,
    ) {
        let now = 1_000;
        let cut = cut.min(ops.len());
        let resume = cut - overlap.min(cut);
        let (whole, _) = kv_core::replay(ops.iter().map(Op::as_ref), IndexKind::Ordered, now);
        let (mut partial, _) = kv_core::replay(ops[..cut].iter().map(Op::as_ref), IndexKind::Ordered, now);
        for op in &ops[resume..] {
            partial.apply(op.as_ref(), now);
        }
        prop_assert_eq!(state_live(&partial, now), state_live(&whole, now));
        prop_assert_eq!(partial.len(), whole.len());
        prop_assert_eq!(partial.memory_used(), whole.memory_used());
    }
}
