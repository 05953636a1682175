//! Looking up a pipeline's keys together before it is answered.
//!
//! A pipeline's commands run one after the other, and on a store larger than the CPU's
//! caches each one's lookup waits for memory in turn (the table's slot, then the entry).
//! Looked up together first ([`KvStore::prefetch`]), the misses of the whole pipeline
//! overlap, and each command then finds its key in the cache. Measured with `kv serve
//! --threads 1` and redis-benchmark at `-P 16` (50 clients, 1,000,000 requests, a store
//! already holding the 630,000 keys a `SET` run left): server CPU per `GET` 2.12-2.18 µs
//! before, 1.32-1.37 µs after (460,000-470,000 → 727,000-755,000 requests/s); per `INCR`
//! 2.92-2.98 µs before, 2.62-2.69 µs after. A lone request gains nothing and is not
//! looked up twice.

use std::collections::VecDeque;

use bytes::Bytes;
use kv_store::KvStore;

use crate::command;

/// The most keys looked up ahead at once: a pipeline's first requests (the cache holds
/// what is looked up until the commands reach it, not a whole long pipeline's keys).
const MAX_KEYS: usize = 1024;

/// Looks up the keys of `requests` together, if there are several.
pub(crate) fn prefetch(store: &KvStore, requests: &VecDeque<Vec<Bytes>>) {
    if requests.len() < 2 {
        return;
    }
    let keys = keys_of(requests);
    if keys.len() > 1 {
        store.prefetch(&keys);
    }
}

/// The keys the requests name, as the command table places them (first, last, step), in
/// order, at most [`MAX_KEYS`]; none of an unknown command or past a request's end.
fn keys_of(requests: &VecDeque<Vec<Bytes>>) -> Vec<&[u8]> {
    let mut keys = Vec::with_capacity(requests.len().min(MAX_KEYS));
    for request in requests {
        let Some(spec) = request.first().and_then(|name| command::lookup(name)) else {
            continue;
        };
        let (first, last, step) = spec.keys;
        let (Ok(first), Ok(step)) = (usize::try_from(first), usize::try_from(step)) else {
            continue;
        };
        if first == 0 || step == 0 {
            continue;
        }
        // `last` counts from the end when negative (-1: the last argument).
        let end = match usize::try_from(last) {
            Ok(last) => (last + 1).min(request.len()),
            Err(_) => request
                .len()
                .saturating_sub(last.unsigned_abs() as usize - 1),
        };
        for key in request
            .get(first..end)
            .unwrap_or_default()
            .iter()
            .step_by(step)
        {
            if keys.len() == MAX_KEYS {
                return keys;
            }
            keys.push(&key[..]);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(lines: &[&str]) -> VecDeque<Vec<Bytes>> {
        lines
            .iter()
            .map(|line| {
                line.split(' ')
                    .map(|arg| Bytes::copy_from_slice(arg.as_bytes()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_keys_are_where_the_command_table_places_them() {
        let pipeline = requests(&[
            "GET a",
            "incr b",
            "MSET c 1 d 2",
            "MGET e f",
            "SET g v EX 10",
            "PING",
            "FROB h",
            "GET",
            "EXPIRE i 10",
            "RENAME j k",
        ]);
        let keys: Vec<&[u8]> = keys_of(&pipeline);
        let expected: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"i", b"j", b"k"];
        assert_eq!(keys, expected);
    }

    #[test]
    fn at_most_max_keys_are_taken() {
        let many: Vec<String> = (0..MAX_KEYS + 10).map(|i| format!("GET k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let pipeline = requests(&many);
        let keys = keys_of(&pipeline);
        assert_eq!(keys.len(), MAX_KEYS);
        assert_eq!(keys[MAX_KEYS - 1], format!("k{}", MAX_KEYS - 1).as_bytes());
    }
}
