//! Runs the data commands against a [`Keyspace`] and answers a [`Reply`].

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kv_store::{Ttl, TtlUpdate, Update};

use crate::command::{Command, CommandError, Condition, Deadline, ExpireConditions};
use crate::glob::glob_match;
use crate::keyspace::Keyspace;
use crate::long_double::LongDouble;
use crate::reply::Reply;

/// The reply to a store error (the store wrote nothing).
pub(crate) fn store_error(error: &kv_store::Error) -> Reply {
    Reply::Error(format!("ERR {error}"))
}

/// Runs a data command (`None` for one that is not: connection and server commands are
/// the session's).
pub(crate) fn execute(keyspace: &mut dyn Keyspace, command: &Command) -> Option<Reply> {
    let reply = match command {
        Command::Get(key) => Ok(Reply::bulk_or_nil(keyspace.get(key))),
        Command::Set {
            key,
            value,
            condition,
            ttl,
            get,
        } => set(keyspace, key, value, *condition, *ttl, *get),
        Command::SetNx(key, value) => {
            let mut wrote = false;
            keyspace
                .update(key, &mut |current| {
                    wrote = current.is_none();
                    if wrote {
                        Update::put_with(value.clone(), TtlUpdate::Remove)
                    } else {
                        Update::Keep
                    }
                })
                .map(|_| Reply::Integer(i64::from(wrote)))
        }
        Command::GetDel(key) => keyspace
            .update(key, &mut |_| Update::Delete)
            .map(|updated| Reply::bulk_or_nil(updated.old)),
        Command::MGet(keys) => Ok(Reply::Array(
            keyspace
                .get_many(keys)
                .into_iter()
                .map(Reply::bulk_or_nil)
                .collect(),
        )),
        Command::MSet(pairs) => keyspace.put_all(pairs).map(|()| Reply::OK),
        Command::IncrBy(key, by) => incr_by(keyspace, key, *by),
        Command::Append(key, suffix) => keyspace
            .update(key, &mut |current| {
                let mut value = current.map_or_else(Vec::new, |c| c.value.to_vec());
                value.extend_from_slice(suffix);
                Update::put(value)
            })
            .map(|updated| Reply::Integer(updated.new.map_or(0, |v| v.len() as i64))),
        Command::StrLen(key) => Ok(Reply::Integer(
            keyspace.get(key).map_or(0, |v| v.len() as i64),
        )),
        Command::Del(keys) if keys.len() == 1 => keyspace
            .update(&keys[0], &mut |_| Update::Delete)
            .map(|updated| Reply::Integer(i64::from(updated.old.is_some()))),
        // Several keys: all deleted as one atomic batch, as Redis's DEL is one step.
        Command::Del(keys) => Ok(keyspace.atomically(&mut |view| {
            let mut deleted = 0;
            for key in keys {
                match view.update(key, &mut |_| Update::Delete) {
                    Ok(updated) => deleted += i64::from(updated.old.is_some()),
                    Err(error) => return store_error(&error),
                }
            }
            Reply::Integer(deleted)
        })),
        Command::MSetNx(pairs) => Ok(keyspace.atomically(&mut |view| {
            if pairs.iter().any(|(key, _)| view.get(key).is_some()) {
                return Reply::Integer(0);
            }
            match view.put_all(pairs) {
                Ok(()) => Reply::Integer(1),
                Err(error) => store_error(&error),
            }
        })),
        Command::Rename {
            from,
            to,
            only_if_absent,
        } => Ok(keyspace.atomically(&mut |view| rename(view, from, to, *only_if_absent))),
        Command::RandomKey => Ok(Reply::bulk_or_nil(keyspace.random_key())),
        Command::Scan {
            cursor,
            pattern,
            count,
            kind,
        } => Ok(scan(
            keyspace,
            *cursor,
            pattern.as_deref(),
            *count,
            kind.as_deref(),
        )),
        Command::GetEx { key, ttl } => {
            let ttl = match ttl {
                Ok(Some(ttl)) => ttl,
                Ok(None) => return Some(Reply::bulk_or_nil(keyspace.get(key))),
                Err(invalid) => {
                    let exists = keyspace.deadline(key).is_some();
                    return Some(if exists {
                        invalid.clone().into()
                    } else {
                        Reply::Nil
                    });
                }
            };
            keyspace
                .update(key, &mut |current| match current {
                    // PERSIST on a key without a deadline changes nothing: as in Redis, a
                    // WATCH of it still holds.
                    Some(c) if c.deadline.is_none() && matches!(ttl, TtlUpdate::Remove) => {
                        Update::Keep
                    }
                    Some(c) => Update::put_with(Bytes::copy_from_slice(c.value), *ttl),
                    None => Update::Keep,
                })
                .map(|updated| Reply::bulk_or_nil(updated.old))
        }
        Command::IncrByFloat(key, by) => incr_by_float(keyspace, key, *by),
        Command::GetRange(key, start, end) => Ok(Reply::Bulk(
            keyspace
                .get(key)
                .map_or_else(Bytes::new, |value| range(&value, *start, *end)),
        )),
        Command::SetRange(key, offset, patch) => set_range(keyspace, key, *offset, patch),
        Command::ExpireTime { key, millis } => Ok(Reply::Integer(match keyspace.deadline(key) {
            None => -2,
            Some(None) => -1,
            Some(Some(at)) => {
                let ms = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, millis_i64);
                if *millis {
                    ms
                } else {
                    ms / 1000
                }
            }
        })),
        Command::Exists(keys) => Ok(Reply::Integer(
            keys.iter().filter(|key| keyspace.ttl(key).exists()).count() as i64,
        )),
        Command::Expire {
            key,
            deadline,
            conditions,
        } => expire(keyspace, key, *deadline, *conditions),
        Command::Ttl { key, millis } => Ok(Reply::Integer(match keyspace.ttl(key) {
            Ttl::NoKey => -2,
            Ttl::NoDeadline => -1,
            Ttl::Remaining(left) if *millis => millis_i64(left),
            // Rounded, as Redis does (saturating: a deadline may be near the end of time).
            Ttl::Remaining(left) => millis_i64(left).saturating_add(500) / 1000,
        })),
        Command::Persist(key) => {
            let mut persisted = false;
            keyspace
                .update(key, &mut |current| match current {
                    Some(c) if c.deadline.is_some() => {
                        persisted = true;
                        Update::put_with(Bytes::copy_from_slice(c.value), TtlUpdate::Remove)
                    }
                    _ => {
                        persisted = false;
                        Update::Keep
                    }
                })
                .map(|_| Reply::Integer(i64::from(persisted)))
        }
        Command::Type(key) => Ok(Reply::Simple(if keyspace.ttl(key).exists() {
            "string"
        } else {
            "none"
        })),
        Command::Keys(pattern) => Ok(Reply::Array(
            keyspace
                .keys()
                .into_iter()
                .filter(|key| glob_match(pattern, key))
                .map(Reply::Bulk)
                .collect(),
        )),
        Command::DbSize => Ok(Reply::Integer(keyspace.len() as i64)),
        Command::Flush => keyspace.flush().map(|()| Reply::OK),
        _ => return None,
    };
    Some(reply.unwrap_or_else(|error| store_error(&error)))
}

/// A duration in whole milliseconds, as an integer reply (saturating, not wrapping).
fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn set(
    keyspace: &mut dyn Keyspace,
    key: &Bytes,
    value: &Bytes,
    condition: Option<Condition>,
    ttl: TtlUpdate,
    get: bool,
) -> kv_store::Result<Reply> {
    if condition.is_none() && !get {
        // Nothing to read: a blind write.
        return keyspace.put(key, value, ttl).map(|()| Reply::OK);
    }
    let mut wrote = false;
    let updated = keyspace.update(key, &mut |current| {
        wrote = match condition {
            None => true,
            Some(Condition::IfAbsent) => current.is_none(),
            Some(Condition::IfPresent) => current.is_some(),
        };
        if wrote {
            Update::put_with(value.clone(), ttl)
        } else {
            Update::Keep
        }
    })?;
    Ok(match (get, wrote) {
        (true, _) => Reply::bulk_or_nil(updated.old),
        (false, true) => Reply::OK,
        (false, false) => Reply::Nil,
    })
}

fn incr_by(keyspace: &mut dyn Keyspace, key: &Bytes, by: i64) -> kv_store::Result<Reply> {
    let mut outcome = Ok(0);
    keyspace.update(key, &mut |current| {
        let old = match current {
            None => Ok(0),
            Some(c) => crate::command::integer(c.value),
        };
        outcome = old.and_then(|old| {
            old.checked_add(by).ok_or_else(|| {
                CommandError::Other("ERR increment or decrement would overflow".into())
            })
        });
        match outcome {
            // Keeps the key's deadline, as Redis's INCR does.
            Ok(new) => Update::put(Digits::bytes(new)),
            Err(_) => Update::Keep,
        }
    })?;
    Ok(match outcome {
        Ok(new) => Reply::Integer(new),
        Err(error) => error.into(),
    })
}

/// An integer's decimal text as one allocation that its clones share.
///
/// The new value of an `INCR` is cloned into the block's batch and view and into the
/// update's answer. A `Bytes` copied from a slice (or made from a `String`) allocates again
/// at its first clone; `Bytes::from_owner` keeps the digits beside the reference count.
struct Digits {
    text: [u8; 20],
    len: u8,
}

impl Digits {
    fn bytes(n: i64) -> Bytes {
        let mut buffer = itoa::Buffer::new();
        let formatted = buffer.format(n).as_bytes();
        let mut digits = Digits {
            text: [0; 20],
            len: formatted.len() as u8,
        };
        // An i64 has at most 19 digits and a sign.
        digits.text[..formatted.len()].copy_from_slice(formatted);
        Bytes::from_owner(digits)
    }
}

impl AsRef<[u8]> for Digits {
    fn as_ref(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

fn expire(
    keyspace: &mut dyn Keyspace,
    key: &Bytes,
    deadline: Deadline,
    conditions: ExpireConditions,
) -> kv_store::Result<Reply> {
    let mut applied = false;
    // The view's now, to the millisecond, as Redis compares deadlines.
    let now = keyspace.now();
    // The value is written again with its new deadline: one atomic read-modify-write,
    // which the condition needs and which a block inside MULTI can buffer.
    keyspace.update(key, &mut |current| {
        let Some(current) = current else {
            applied = false;
            return Update::Keep;
        };
        // `None`: already past (the key is deleted); an overflow counts as far future.
        let new_deadline = match deadline {
            Deadline::In(ms) if ms <= 0 => None,
            Deadline::In(ms) => Some(now.checked_add(Duration::from_millis(ms as u64))),
            Deadline::At(ms) => {
                let at =
                    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms.max(0) as u64));
                if at.is_some_and(|at| at <= now) {
                    None
                } else {
                    Some(at)
                }
            }
        };
        let new_at = new_deadline.map_or(Some(SystemTime::UNIX_EPOCH), |at| at);
        // Every condition given must hold. No deadline counts as an infinite one for GT and
        // LT, as in Redis.
        let old = current.deadline;
        applied = (!conditions.nx || old.is_none())
            && (!conditions.xx || old.is_some())
            && (!conditions.gt || old.is_some_and(|old| new_at.is_none_or(|new| new > old)))
            && (!conditions.lt || old.is_none_or(|old| new_at.is_some_and(|new| new < old)));
        match (applied, new_deadline, deadline) {
            (false, _, _) => Update::Keep,
            (true, None, _) => Update::Delete,
            // Relative, so that inside a block it counts from the commit.
            (true, Some(_), Deadline::In(ms)) => Update::put_with(
                Bytes::copy_from_slice(current.value),
                TtlUpdate::After(Duration::from_millis(ms as u64)),
            ),
            (true, Some(at), Deadline::At(_)) => Update::put_with(
                Bytes::copy_from_slice(current.value),
                at.map_or(TtlUpdate::Remove, TtlUpdate::At),
            ),
        }
    })?;
    Ok(Reply::Integer(i64::from(applied)))
}

fn rename(keyspace: &mut dyn Keyspace, from: &Bytes, to: &Bytes, only_if_absent: bool) -> Reply {
    let Some(deadline) = keyspace.deadline(from) else {
        return Reply::error("ERR no such key");
    };
    if from == to {
        return if only_if_absent {
            Reply::Integer(0)
        } else {
            Reply::OK
        };
    }
    if only_if_absent && keyspace.get(to).is_some() {
        return Reply::Integer(0);
    }
    let moved = keyspace
        .update(from, &mut |_| Update::Delete)
        .and_then(|updated| {
            let value = updated.old.unwrap_or_default();
            let ttl = deadline.map_or(TtlUpdate::Remove, TtlUpdate::At);
            keyspace.update(to, &mut |_| Update::put_with(value.clone(), ttl))
        });
    match (moved, only_if_absent) {
        (Err(error), _) => store_error(&error),
        (Ok(_), true) => Reply::Integer(1),
        (Ok(_), false) => Reply::OK,
    }
}

fn incr_by_float(
    keyspace: &mut dyn Keyspace,
    key: &Bytes,
    by: LongDouble,
) -> kv_store::Result<Reply> {
    let mut outcome = Err(CommandError::Syntax);
    keyspace.update(key, &mut |current| {
        let old = match current {
            None => Ok(LongDouble::ZERO),
            Some(c) => crate::command::float(c.value),
        };
        // Formatted once: the same text is stored and answered.
        outcome = old.and_then(|old| {
            Some(old + by)
                .filter(|sum| sum.is_finite())
                .map(LongDouble::to_redis_string)
                .ok_or_else(|| {
                    CommandError::Other("ERR increment would produce NaN or Infinity".into())
                })
        });
        match &outcome {
            // Keeps the deadline, as Redis does.
            Ok(new) => Update::put(new.clone()),
            Err(_) => Update::Keep,
        }
    })?;
    Ok(match outcome {
        Ok(new) => Reply::bulk(new),
        Err(error) => error.into(),
    })
}

/// `GETRANGE`'s slice: inclusive, negative offsets from the end, clamped.
fn range(value: &Bytes, start: i64, end: i64) -> Bytes {
    // Two offsets from the end in the wrong order: nothing, before either is clamped (Redis
    // 7 answers `GETRANGE k -1 -100` with an empty string, not with the first byte).
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    let len = value.len() as i64;
    let from_end = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (from_end(start), from_end(end).min(len - 1));
    if len == 0 || start > end {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

/// The longest string `SETRANGE` may make: the log's value limit, checked before the
/// padding is allocated (Redis's own limit, `proto-max-bulk-len`, is 512 MiB).
const MAX_STRING: usize = kv_wal::DEFAULT_MAX_VALUE_SIZE;

fn set_range(
    keyspace: &mut dyn Keyspace,
    key: &Bytes,
    offset: usize,
    patch: &Bytes,
) -> kv_store::Result<Reply> {
    // Nothing to write is answered with the length before any size check, as in Redis.
    if !patch.is_empty() && offset.saturating_add(patch.len()) > MAX_STRING {
        return Ok(Reply::error(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let updated = keyspace.update(key, &mut |current| {
        let Some(current) = current else {
            if patch.is_empty() {
                return Update::Keep;
            }
            let mut value = vec![0; offset];
            value.extend_from_slice(patch);
            return Update::put(value);
        };
        if patch.is_empty() {
            return Update::Keep;
        }
        let mut value = current.value.to_vec();
        if value.len() < offset + patch.len() {
            value.resize(offset + patch.len(), 0);
        }
        value[offset..offset + patch.len()].copy_from_slice(patch);
        Update::put(value)
    })?;
    Ok(Reply::Integer(updated.new.map_or(0, |v| v.len() as i64)))
}

/// A key's place in `SCAN`'s order: FNV-1a, fixed so a cursor means the same thing on
/// every call (and after a restart).
fn scan_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `SCAN`: a key present from the first call to the last is returned at least once,
/// whatever others write meanwhile, as Redis promises (keys added or removed meanwhile may
/// or may not be). `MATCH` and `TYPE` filter a page after it is read, as in Redis, so a
/// page may come back short or empty before the end.
///
/// With the hash index (`kv serve`'s) a page is the store's own ([`KvStore::keys_page`]):
/// about `count` keys, its cursor a position in the index, so a call costs about `count`
/// keys' work. With the ordered index (the shell's), whose positions are keys and do not
/// fit a number, see [`scan_by_hash`].
///
/// [`KvStore::keys_page`]: kv_store::KvStore::keys_page
fn scan(
    keyspace: &mut dyn Keyspace,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: usize,
    kind: Option<&[u8]>,
) -> Reply {
    let Some(page) = keyspace.keys_page(cursor, count) else {
        return scan_by_hash(keyspace, cursor, pattern, count, kind);
    };
    let keys = page
        .keys
        .into_iter()
        .filter(|key| scan_wants(key, pattern, kind))
        .map(Reply::Bulk)
        .collect();
    scan_reply(page.next, keys)
}

/// `SCAN`'s reply: the next cursor, then the keys.
fn scan_reply(next: u64, keys: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(keys)])
}

/// Whether `SCAN`'s `MATCH` and `TYPE` let `key` through (every key is a string).
fn scan_wants(key: &[u8], pattern: Option<&[u8]>, kind: Option<&[u8]>) -> bool {
    pattern.is_none_or(|p| glob_match(p, key))
        && kind.is_none_or(|t| t.eq_ignore_ascii_case(b"string"))
}

/// `SCAN` over any index: keys in the order of their [`scan_hash`]; the cursor is the hash
/// to go on from. A batch is the `count` smallest hashes at or after the cursor, and
/// always every key of its last hash, so keys sharing a hash are never split. Each call
/// walks every key (two passes, holding `count` hashes), since the index gives no
/// position that fits a cursor: fine for the shell's stores, which the hash index's
/// pages serve otherwise.
fn scan_by_hash(
    keyspace: &mut dyn Keyspace,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: usize,
    kind: Option<&[u8]>,
) -> Reply {
    use std::collections::BinaryHeap;
    // The `count` smallest hashes at or after the cursor (a max-heap, evicting the largest).
    let mut smallest = BinaryHeap::with_capacity(count.min(1024) + 1);
    let mut more = false;
    keyspace.for_each_key(&mut |key| {
        let hash = scan_hash(key);
        if hash < cursor {
            return;
        }
        smallest.push(hash);
        if smallest.len() > count {
            smallest.pop();
            more = true;
        }
    });
    let Some(&last) = smallest.peek() else {
        return scan_reply(0, Vec::new());
    };
    let mut keys = Vec::new();
    keyspace.for_each_key(&mut |key| {
        let hash = scan_hash(key);
        if (cursor..=last).contains(&hash) && scan_wants(key, pattern, kind) {
            keys.push(Reply::Bulk(key.clone()));
        }
    });
    let next = match last.checked_add(1) {
        Some(next) if more => next,
        _ => 0,
    };
    scan_reply(next, keys)
}

#[cfg(test)]
mod tests {
    use super::Digits;

    #[test]
    fn digits_hold_every_i64() {
        for n in [0, 7, -1, 1_000_000, i64::MAX, i64::MIN] {
            let digits = Digits::bytes(n);
            assert_eq!(&digits[..], n.to_string().as_bytes());
            assert_eq!(digits.clone(), digits, "a clone shares the same text");
        }
    }
}
