//! Transactions against a model: a commit conflicts exactly when a key it read or watched
//! was written since (or, which the model tells apart, when another key sharing that key's
//! lock stripe was); a conflicting commit writes nothing, and any other applies whole.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::options::Options;

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];
const TXS: usize = 3;

#[derive(Debug, Clone)]
enum Action {
    /// Transaction `tx` reads key `k` (starting the transaction if none is open).
    Get(usize, usize),
    Watch(usize, usize),
    /// Transaction `tx` buffers a put of value `v` (`None`: a delete) to key `k`.
    Buffer(usize, usize, Option<u8>),
    Commit(usize),
    /// A plain write outside any transaction (`None`: a delete).
    Write(usize, Option<u8>),
}

fn action() -> impl Strategy<Value = Action> {
    let tx = 0..TXS;
    let key = 0..KEYS.len();
    // Few values, so that writes of the value a key holds already are common.
    let value = prop::option::weighted(0.8, 0..3u8);
    prop_oneof![
        3 => (tx.clone(), key.clone()).prop_map(|(t, k)| Action::Get(t, k)),
        1 => (tx.clone(), key.clone()).prop_map(|(t, k)| Action::Watch(t, k)),
        3 => (tx.clone(), key.clone(), value.clone()).prop_map(|(t, k, v)| Action::Buffer(t, k, v)),
        2 => tx.prop_map(Action::Commit),
        2 => (key, value).prop_map(|(k, v)| Action::Write(k, v)),
    ]
}

/// What the model knows of one open transaction.
#[derive(Default)]
struct Open {
    tx: Option<Transaction>,
    watched: Vec<usize>,
    writes: Vec<(usize, Option<u8>)>,
    /// A key it read or watched was written since.
    changed: bool,
    /// Another key of the stripe of one it read or watched was written since, or a key of
    /// its was deleted while absent (a write all the same, though it changes nothing): the
    /// commit may conflict.
    may_conflict: bool,
}

struct Model<'a> {
    store: &'a KvStore,
    data: BTreeMap<usize, u8>,
    open: Vec<Open>,
}

impl Model<'_> {
    fn stripe(&self, k: usize) -> usize {
        self.store.inner.stripe_of(KEYS[k].as_bytes())
    }

    /// A write of `k` made it into the store: every open transaction watching it (or its
    /// stripe) learns of it.
    fn written(&mut self, k: usize, value: Option<u8>) {
        let absent_delete = value.is_none() && !self.data.contains_key(&k);
        match value {
            Some(v) => self.data.insert(k, v),
            None => self.data.remove(&k),
        };
        let stripes: Vec<usize> = (0..KEYS.len()).map(|k| self.stripe(k)).collect();
        for open in &mut self.open {
            for &w in &open.watched {
                if w == k && !absent_delete {
                    open.changed = true;
                } else if stripes[w] == stripes[k] {
                    open.may_conflict = true;
                }
            }
        }
    }

    fn tx(&mut self, t: usize) -> &mut Transaction {
        let store = self.store;
        self.open[t]
            .tx
            .get_or_insert_with(|| store.begin_transaction())
    }

    fn check_store(&self) -> Result<(), TestCaseError> {
        for (k, key) in KEYS.iter().enumerate() {
            let expected = self.data.get(&k).map(|v| Bytes::from(vec![*v]));
            prop_assert_eq!(
                self.store.get(key).map(Bytes::from),
                expected,
                "key {}",
                key
            );
        }
        Ok(())
    }

    fn run(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Get(t, k) => {
                let got = self.tx(t).get(KEYS[k]);
                self.open[t].watched.push(k);
                prop_assert_eq!(got, self.data.get(&k).map(|v| Bytes::from(vec![*v])));
            }
            Action::Watch(t, k) => {
                self.tx(t).watch(KEYS[k]);
                self.open[t].watched.push(k);
            }
            Action::Buffer(t, k, value) => {
                let tx = self.tx(t);
                match value {
                    Some(v) => tx.put(KEYS[k], vec![v]),
                    None => tx.delete(KEYS[k]),
                };
                self.open[t].writes.push((k, value));
            }
            Action::Commit(t) => {
                let open = std::mem::take(&mut self.open[t]);
                let Some(tx) = open.tx else { return Ok(()) };
                let outcome = tx
                    .commit()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                match outcome {
                    Ok(()) => {
                        prop_assert!(!open.changed, "a conflicting commit applied");
                        for (k, value) in open.writes {
                            self.written(k, value);
                        }
                    }
                    Err(conflict) => prop_assert!(
                        open.changed || open.may_conflict,
                        "a commit without conflict was refused ({:?})",
                        conflict.key
                    ),
                }
                self.check_store()?;
            }
            Action::Write(k, value) => {
                match value {
                    Some(v) => self.store.put(KEYS[k], vec![v]),
                    None => self.store.delete(KEYS[k]),
                }
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                self.written(k, value);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn commits_apply_whole_unless_what_they_read_changed(
        actions in prop::collection::vec(action(), 1..48)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().durability(kv_durable::Durability::None);
        let store = KvStore::open_with(dir.path(), options).unwrap();
        let mut model = Model {
            store: &store,
            data: BTreeMap::new(),
            open: (0..TXS).map(|_| Open::default()).collect(),
        };
        for action in actions {
            model.run(action)?;
        }
        for t in 0..TXS {
            model.run(Action::Commit(t))?;
        }
    }
}

#[test]
fn a_transaction_can_move_to_another_thread() {
    fn send<T: Send + 'static>() {}
    send::<Transaction>();
}
