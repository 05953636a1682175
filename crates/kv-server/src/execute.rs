//! Runs the data commands against a [`Keyspace`] and answers a [`Reply`].

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kv_store::{Ttl, TtlUpdate, Update};

use crate::command::{Command, CommandError, Condition, ExpireCondition};
use crate::glob::glob_match;
use crate::keyspace::Keyspace;
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
            keys.iter()
                .map(|key| Reply::bulk_or_nil(keyspace.get(key)))
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
        Command::Del(keys) => {
            let mut deleted = 0;
            let mut result = Ok(());
            for key in keys {
                match keyspace.update(key, &mut |_| Update::Delete) {
                    Ok(updated) => deleted += i64::from(updated.old.is_some()),
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
            }
            result.map(|()| Reply::Integer(deleted))
        }
        Command::Exists(keys) => Ok(Reply::Integer(
            keys.iter().filter(|key| keyspace.ttl(key).exists()).count() as i64,
        )),
        Command::Expire {
            key,
            millis,
            condition,
        } => expire(keyspace, key, *millis, *condition),
        Command::Ttl { key, millis } => Ok(Reply::Integer(match keyspace.ttl(key) {
            Ttl::NoKey => -2,
            Ttl::NoDeadline => -1,
            Ttl::Remaining(left) if *millis => left.as_millis() as i64,
            // Rounded, as Redis does.
            Ttl::Remaining(left) => (left.as_millis() as i64 + 500) / 1000,
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

fn set(
    keyspace: &mut dyn Keyspace,
    key: &Bytes,
    value: &Bytes,
    condition: Option<Condition>,
    ttl: TtlUpdate,
    get: bool,
) -> kv_store::Result<Reply> {
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
            Ok(new) => Update::put(new.to_string()),
            Err(_) => Update::Keep,
        }
    })?;
    Ok(match outcome {
        Ok(new) => Reply::Integer(new),
        Err(error) => error.into(),
    })
}

fn expire(
    keyspace: &mut dyn Keyspace,
    key: &Bytes,
    millis: i64,
    condition: Option<ExpireCondition>,
) -> kv_store::Result<Reply> {
    let mut applied = false;
    // The value is written again with its new deadline: one atomic read-modify-write,
    // which the condition needs and which a block inside MULTI can buffer.
    keyspace.update(key, &mut |current| {
        let Some(current) = current else {
            applied = false;
            return Update::Keep;
        };
        let new_deadline = if millis > 0 {
            SystemTime::now().checked_add(Duration::from_millis(millis as u64))
        } else {
            Some(SystemTime::UNIX_EPOCH)
        };
        // No deadline counts as an infinite one for GT and LT, as in Redis.
        applied = match (condition, current.deadline) {
            (None, _) => true,
            (Some(ExpireCondition::NoDeadline), deadline) => deadline.is_none(),
            (Some(ExpireCondition::HasDeadline), deadline) => deadline.is_some(),
            (Some(ExpireCondition::Later), None) => false,
            (Some(ExpireCondition::Later), Some(old)) => new_deadline.is_none_or(|new| new > old),
            (Some(ExpireCondition::Sooner), None) => true,
            (Some(ExpireCondition::Sooner), Some(old)) => new_deadline.is_some_and(|new| new < old),
        };
        if !applied {
            Update::Keep
        } else if millis <= 0 {
            Update::Delete
        } else {
            Update::put_with(
                Bytes::copy_from_slice(current.value),
                TtlUpdate::After(Duration::from_millis(millis as u64)),
            )
        }
    })?;
    Ok(Reply::Integer(i64::from(applied)))
}
