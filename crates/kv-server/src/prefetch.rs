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
use std::ops::Range;

use bytes::Bytes;
use kv_store::KvStore;

use crate::command;

/// The most keys looked up ahead at once, and the most requests looked at for them: a
/// pipeline's first requests (the cache holds what is looked up until the commands reach
/// it, not a whole long pipeline's keys).
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

/// The keys the first [`MAX_KEYS`] requests name, in order, at most [`MAX_KEYS`] of them;
/// none of an unknown command.
fn keys_of(requests: &VecDeque<Vec<Bytes>>) -> Vec<&[u8]> {
    let mut keys = Vec::with_capacity(requests.len().min(MAX_KEYS));
    for request in requests.iter().take(MAX_KEYS) {
        let Some(spec) = request.first().and_then(|name| command::lookup(name)) else {
            continue;
        };
        let (range, step) = key_range(spec.keys, request.len());
        for key in request[range].iter().step_by(step) {
            if keys.len() == MAX_KEYS {
                return keys;
            }
            keys.push(&key[..]);
        }
    }
    keys
}

/// Where the keys of a request of `len` arguments (its name included) are, by the command
/// table's `(first, last, step)` (`last` negative: counted from the end, -1 the last
/// argument; `0, 0, 0`: no keys): the range of arguments and the step between keys. An
/// empty range when the request is too short to hold any.
fn key_range((first, last, step): (i32, i32, i32), len: usize) -> (Range<usize>, usize) {
    let (Ok(first @ 1..), Ok(step @ 1..)) = (usize::try_from(first), usize::try_from(step)) else {
        return (0..0, 1);
    };
    let end = match usize::try_from(last) {
        Ok(last) => last.saturating_add(1).min(len),
        Err(_) => len.saturating_sub(last.unsigned_abs() as usize - 1),
    };
    (first.min(end)..end, step)
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
    fn key_ranges_follow_the_table_and_stop_at_the_request() {
        // GET k: one key.
        assert_eq!(key_range((1, 1, 1), 2), (1..2, 1));
        // A bare GET (a wrong arity, answered later): none.
        assert_eq!(key_range((1, 1, 1), 1), (1..1, 1));
        // MSET k v k v: every other argument to the end.
        assert_eq!(key_range((1, -1, 2), 5), (1..5, 2));
        // All but the last argument (as BLPOP's timeout), and a step of 3.
        assert_eq!(key_range((1, -2, 3), 8), (1..7, 3));
        assert!(key_range((1, -2, 1), 1).0.is_empty());
        // RENAME a b, sent with one argument too few.
        assert_eq!(key_range((1, 2, 1), 2), (1..2, 1));
        // No keys.
        assert_eq!(key_range((0, 0, 0), 3), (0..0, 1));
        assert_eq!(key_range((2, 1, 0), 3), (0..0, 1));
    }

    #[test]
    fn at_most_max_keys_are_taken() {
        let many: Vec<String> = (0..MAX_KEYS + 10).map(|i| format!("GET k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let pipeline = requests(&many);
        let keys = keys_of(&pipeline);
        assert_eq!(keys.len(), MAX_KEYS);
        assert_eq!(keys[MAX_KEYS - 1], format!("k{}", MAX_KEYS - 1).as_bytes());
        // Only the first MAX_KEYS requests are looked at, with keys or not.
        let mut pings = requests(&["PING"; MAX_KEYS]);
        pings.extend(requests(&["GET a", "GET b"]));
        assert!(keys_of(&pings).is_empty());
    }
}
