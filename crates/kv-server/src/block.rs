//! Pipelined blocks: a run of one connection's data commands, from a write on, run as one
//! atomic step whose writes share one commit (one fsync under `Durability::Sync`).
//!
//! Running them one at a time, a pipeline of 16 SETs waits for 16 commits in turn. As a
//! block, its keys are held for it ([`KvStore::update_keys`](kv_store::KvStore::update_keys)),
//! its commands run in order against a view that sees the block's own writes first, and the
//! writes are applied together once they are durable, before the replies go out. That is a
//! valid serialization of the pipeline: the block's commands happen at one instant, in
//! their order, and nothing else happens between them.
//!
//! How each key is held keeps that true without making unrelated writers wait:
//! - a key only written, never read (`SET k v`, `MSET`), is held shared, as a plain write
//!   holds it: other connections' writes of it go on and share the same group commit;
//! - a key a command reads (`INCR`, `SET NX`, `DEL`'s count, or a `GET` between two
//!   writes) is held exclusively, so what was read is what it holds until the block is
//!   applied.
//!
//! Reads before the block's first write, and after its last, are not part of it: they are
//! answered on their own, before and after it, holding nothing. Commands that walk every
//! key (`KEYS`, `SCAN`, `DBSIZE`, `FLUSHDB`, `RANDOMKEY`) and connection commands end a
//! block. A block holds at most [`MAX_COMMANDS`] commands and about [`MAX_BYTES`] of
//! arguments, so one client's pipeline holds few keys at once.

use bytes::Bytes;
use kv_store::{KeyUse, TtlUpdate};

use crate::command::Command;

/// The most commands in one block: enough that a pipeline's commit is shared by many
/// writes, few enough that a block holds a small share of the store's lock stripes.
pub(crate) const MAX_COMMANDS: usize = 64;

/// A block ends once its requests' arguments reach this size.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// What a command does in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Reads keys, writes none.
    Reads,
    /// Writes (and perhaps reads) keys.
    Writes,
}

/// What `command` does in a block, or `None` if it cannot be in one (its keys are not
/// known before it runs, or it is not a data command).
pub(crate) fn role(command: &Command) -> Option<Role> {
    Some(match command {
        Command::Get(_)
        | Command::StrLen(_)
        | Command::GetRange(..)
        | Command::Ttl { .. }
        | Command::ExpireTime { .. }
        | Command::Type(_)
        | Command::Exists(_)
        | Command::MGet(_)
        | Command::GetEx {
            ttl: Ok(None) | Err(_),
            ..
        } => Role::Reads,
        Command::Set { .. }
        | Command::MSet(_)
        | Command::SetNx(..)
        | Command::GetDel(_)
        | Command::IncrBy(..)
        | Command::IncrByFloat(..)
        | Command::Append(..)
        | Command::SetRange(..)
        | Command::Del(_)
        | Command::Expire { .. }
        | Command::Persist(_)
        | Command::GetEx { .. }
        | Command::MSetNx(_)
        | Command::Rename { .. } => Role::Writes,
        _ => return None,
    })
}

/// The keys `commands` use, each with how the block must hold it: shared for a key only
/// written, exclusive for one read. A command of no [`role`] adds none.
pub(crate) fn held_keys<'c>(
    commands: impl IntoIterator<Item = &'c Command>,
) -> Vec<(&'c [u8], KeyUse)> {
    let commands = commands.into_iter();
    // At least a key a command, allocated once (as `Session::answer_until` sizes a block).
    let mut keys = Vec::with_capacity(commands.size_hint().0);
    for command in commands {
        add_keys(command, &mut keys);
    }
    keys
}

/// Adds the keys `command` uses to `keys` (see [`held_keys`]).
fn add_keys<'c>(command: &'c Command, keys: &mut Vec<(&'c [u8], KeyUse)>) {
    let mut add = |key: &'c Bytes, usage| keys.push((&key[..], usage));
    match command {
        // A blind write: nothing of the key is read, not even its deadline.
        Command::Set {
            key,
            condition: None,
            get: false,
            ttl,
            ..
        } if *ttl != TtlUpdate::Keep => add(key, KeyUse::Write),
        Command::MSet(pairs) => pairs.iter().for_each(|(key, _)| add(key, KeyUse::Write)),
        Command::Get(key)
        | Command::StrLen(key)
        | Command::GetRange(key, ..)
        | Command::Ttl { key, .. }
        | Command::ExpireTime { key, .. }
        | Command::Type(key)
        | Command::GetEx { key, .. }
        | Command::Set { key, .. }
        | Command::SetNx(key, _)
        | Command::GetDel(key)
        | Command::IncrBy(key, _)
        | Command::IncrByFloat(key, _)
        | Command::Append(key, _)
        | Command::SetRange(key, ..)
        | Command::Expire { key, .. }
        | Command::Persist(key) => add(key, KeyUse::Read),
        Command::Exists(many) | Command::MGet(many) | Command::Del(many) => {
            many.iter().for_each(|key| add(key, KeyUse::Read))
        }
        Command::MSetNx(pairs) => pairs.iter().for_each(|(key, _)| add(key, KeyUse::Read)),
        Command::Rename { from, to, .. } => {
            add(from, KeyUse::Read);
            add(to, KeyUse::Read);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse;

    fn command(words: &[&str]) -> Command {
        let args: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse(&args).unwrap().0
    }

    fn uses(words: &[&str]) -> Vec<KeyUse> {
        let command = command(words);
        held_keys([&command])
            .into_iter()
            .map(|(_, usage)| usage)
            .collect()
    }

    #[test]
    fn only_a_blind_write_holds_its_key_shared() {
        assert_eq!(uses(&["SET", "k", "v"]), [KeyUse::Write]);
        assert_eq!(uses(&["SET", "k", "v", "EX", "10"]), [KeyUse::Write]);
        assert_eq!(uses(&["SETEX", "k", "10", "v"]), [KeyUse::Write]);
        assert_eq!(uses(&["MSET", "a", "1", "b", "2"]), [KeyUse::Write; 2]);
        // Each of these reads the key (its value, existence or deadline).
        for words in [
            &["SET", "k", "v", "NX"][..],
            &["SET", "k", "v", "XX"],
            &["SET", "k", "v", "GET"],
            &["SET", "k", "v", "KEEPTTL"],
            &["GETSET", "k", "v"],
            &["INCR", "k"],
            &["GET", "k"],
            &["DEL", "k"],
            &["EXPIRE", "k", "10"],
        ] {
            assert_eq!(uses(words), [KeyUse::Read], "{words:?}");
        }
        assert_eq!(uses(&["RENAME", "a", "b"]), [KeyUse::Read; 2]);
        assert_eq!(uses(&["MSETNX", "a", "1", "b", "2"]), [KeyUse::Read; 2]);
    }

    #[test]
    fn commands_that_walk_every_key_are_in_no_block() {
        for words in [
            &["KEYS", "*"][..],
            &["SCAN", "0"],
            &["DBSIZE"],
            &["FLUSHDB"],
            &["RANDOMKEY"],
            &["PING"],
            &["MULTI"],
        ] {
            assert_eq!(role(&command(words)), None, "{words:?}");
        }
        assert_eq!(role(&command(&["GET", "k"])), Some(Role::Reads));
        assert_eq!(role(&command(&["GETEX", "k"])), Some(Role::Reads));
        assert_eq!(
            role(&command(&["GETEX", "k", "EX", "1"])),
            Some(Role::Writes)
        );
        assert_eq!(role(&command(&["INCR", "k"])), Some(Role::Writes));
    }
}
