//! The records of the Raft log, as kv-wal records: a one-byte key says what the record is,
//! the value is the record's content encoded with postcard.

use std::collections::BTreeMap;

use kv_wal::Record;

use crate::error::{decode, encode, Error, Result};
use crate::types::{Entry, LogId, Vote};

const ENTRY: &[u8] = b"e";
const VOTE: &[u8] = b"v";
const COMMITTED: &[u8] = b"c";
const TRUNCATE_AFTER: &[u8] = b"t";
const PURGE: &[u8] = b"p";

/// One change to the Raft log's state, in the order it was made.
#[derive(Debug)]
pub(crate) enum LogRecord {
    /// An entry appended; replaces any entry at its index or after (openraft truncates
    /// first, this keeps the log without holes even if it did not).
    Entry(Entry),
    /// The vote saved.
    Vote(Vote),
    /// The committed log id saved.
    Committed(Option<LogId>),
    /// Every entry after this log id (all of them for `None`) removed.
    TruncateAfter(Option<LogId>),
    /// Every entry up to this log id removed; it is the last purged log id from now on.
    Purge(LogId),
}

impl LogRecord {
    pub(crate) fn to_record(&self) -> Record {
        let (key, value) = match self {
            LogRecord::Entry(e) => return Self::entry_record(e),
            LogRecord::Vote(v) => (VOTE, encode(v)),
            LogRecord::Committed(c) => (COMMITTED, encode(c)),
            LogRecord::TruncateAfter(t) => (TRUNCATE_AFTER, encode(t)),
            LogRecord::Purge(p) => (PURGE, encode(p)),
        };
        Record::put(key, value)
    }

    pub(crate) fn from_parts(key: &[u8], value: &[u8]) -> Result<Self> {
        Ok(match key {
            ENTRY => LogRecord::Entry(decode("a Raft log entry", value)?),
            VOTE => LogRecord::Vote(decode("a Raft vote", value)?),
            COMMITTED => LogRecord::Committed(decode("a Raft committed log id", value)?),
            TRUNCATE_AFTER => LogRecord::TruncateAfter(decode("a Raft truncation", value)?),
            PURGE => LogRecord::Purge(decode("a Raft purge", value)?),
            other => {
                return Err(Error::Corrupt(format!(
                    "the Raft log holds a record with the unknown key {other:?}"
                )))
            }
        })
    }
}

/// An entry and the segment its record is in (what a purge may delete).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) entry: Entry,
    pub(crate) segment: u64,
}

/// The Raft log's state: what replaying its records gives, kept up to date as records are
/// written. Entries are kept in memory (they are purged once a snapshot holds them).
#[derive(Debug, Default)]
pub(crate) struct LogModel {
    pub(crate) entries: BTreeMap<u64, Stored>,
    pub(crate) vote: Option<Vote>,
    pub(crate) committed: Option<LogId>,
    pub(crate) last_purged: Option<LogId>,
}

impl LogModel {
    /// Applies one record, written in `segment`.
    pub(crate) fn apply(&mut self, record: LogRecord, segment: u64) {
        match record {
            LogRecord::Entry(entry) => {
                let index = entry.log_id.index();
                // An entry replaces the ones from its index on; mostly it follows them all,
                // and `split_off` allocates even when it moves nothing.
                if self
                    .entries
                    .last_key_value()
                    .is_some_and(|(&last, _)| last >= index)
                {
                    self.entries.split_off(&index);
                }
                self.entries.insert(index, Stored { entry, segment });
            }
            LogRecord::Vote(v) => self.vote = Some(v),
            LogRecord::Committed(c) => self.committed = c,
            LogRecord::TruncateAfter(None) => self.entries.clear(),
            LogRecord::TruncateAfter(Some(id)) => {
                self.entries.split_off(&(id.index() + 1));
            }
            LogRecord::Purge(id) => {
                self.entries = self.entries.split_off(&(id.index() + 1));
                if self.last_purged.as_ref().is_none_or(|p| p < &id) {
                    self.last_purged = Some(id);
                }
            }
        }
    }

    /// The last log id: the last entry's, or the last purged one when there is no entry.
    pub(crate) fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .last_key_value()
            .map(|(_, s)| s.entry.log_id)
            .or(self.last_purged)
    }
}

impl LogRecord {
    /// The record of an entry, encoded from a borrow (appends keep the entry in memory too).
    pub(crate) fn entry_record(entry: &Entry) -> Record {
        Record::put(ENTRY, encode(entry))
    }
}
