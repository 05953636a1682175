//! Operations: what a write asks the state to do.

use bytes::Bytes;

/// When a written key stops being visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Expiry {
    /// Never.
    #[default]
    Never,
    /// This many milliseconds after the operation is applied (nori-wal's relative TTL: on
    /// replay it counts from the replay).
    AfterMillis(u64),
    /// At this unix time in milliseconds.
    AtUnixMillis(u64),
}

impl Expiry {
    /// The absolute deadline when applied at `now` (unix ms).
    pub fn deadline(self, now: u64) -> Option<u64> {
        match self {
            Expiry::Never => None,
            Expiry::AfterMillis(ms) => Some(now.saturating_add(ms)),
            Expiry::AtUnixMillis(at) => Some(at),
        }
    }
}

/// An operation whose bytes are borrowed, as replay reads them from a log buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpRef<'a> {
    /// Set `key` to `value`, expiring as `expiry` says.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// When it expires.
        expiry: Expiry,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
}

impl<'a> OpRef<'a> {
    /// The key the operation writes.
    pub fn key(&self) -> &'a [u8] {
        match *self {
            OpRef::Put { key, .. } | OpRef::Delete { key } => key,
        }
    }
}

/// An operation that owns its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Set `key` to `value`, expiring as `expiry` says.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// When it expires.
        expiry: Expiry,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl Op {
    /// A put that never expires.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            expiry: Expiry::Never,
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// The key the operation writes.
    pub fn key(&self) -> &Bytes {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }

    /// The operation, borrowed.
    pub fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Put { key, value, expiry } => OpRef::Put {
                key,
                value,
                expiry: *expiry,
            },
            Op::Delete { key } => OpRef::Delete { key },
        }
    }
}
