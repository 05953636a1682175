//! What a command answers, before it is encoded for one protocol version or another.

use bytes::Bytes;

/// A command's answer, independent of RESP2 or RESP3 (the [`codec`](crate::codec) encodes
/// it for the connection's version; a shell can print it as redis-cli does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A status line, such as `OK` or `PONG` (`+OK`).
    Simple(&'static str),
    /// An error line, starting with its code (`ERR ...`, `NOAUTH ...`): `-ERR ...`.
    Error(String),
    /// An integer (`:1`).
    Integer(i64),
    /// A binary-safe string (`$3\r\nabc`).
    Bulk(Bytes),
    /// No value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// No array (an aborted `EXEC`): `*-1` in RESP2, `_` in RESP3.
    NilArray,
    /// An array of replies.
    Array(Vec<Reply>),
    /// Pairs: a RESP3 map, a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple("OK");

    /// An error reply; `message` starts with its code (`ERR`, `NOAUTH`, ...).
    pub fn error(message: impl Into<String>) -> Reply {
        Reply::Error(message.into())
    }

    /// A bulk string of `value`'s bytes.
    pub fn bulk(value: impl Into<Bytes>) -> Reply {
        Reply::Bulk(value.into())
    }

    /// A bulk string, or nil for `None`.
    pub fn bulk_or_nil(value: Option<Bytes>) -> Reply {
        value.map_or(Reply::Nil, Reply::Bulk)
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

impl From<crate::command::CommandError> for Reply {
    fn from(error: crate::command::CommandError) -> Reply {
        Reply::Error(error.to_string())
    }
}
