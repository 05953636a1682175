//! What a command answers, before it is encoded for one protocol version or another.

use bytes::Bytes;

/// A command's answer, independent of RESP2 or RESP3 (the [`codec`](crate::codec) encodes
/// it for the connection's version; a shell can print it as redis-cli does).
///
/// The variants after [`Map`](Reply::Map) are RESP3's other kinds. This server's commands
/// do not answer them yet; they are here so that a client (the `kv --connect` shell) can
/// hold any server's reply in the same type and print it the same way. Each also has a
/// RESP2 form, as Redis sends it to a RESP2 client.
#[derive(Debug, Clone, PartialEq)]
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
    /// A status line known only at run time (another server's): `+...`.
    Status(String),
    /// A double: `,1.5` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// A boolean: `#t` / `#f` in RESP3, the integer 1 / 0 in RESP2.
    Boolean(bool),
    /// An unordered set: `~` in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// An integer past 64 bits, in decimal: `(` in RESP3, a bulk string in RESP2.
    BigNumber(String),
    /// Text meant to be shown as it is (RESP3's verbatim string, format `txt`): a bulk
    /// string in RESP2.
    Verbatim(Bytes),
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

    /// The reply as a RESP2 client receives it: maps as flat arrays of keys and values,
    /// sets as arrays, doubles and big numbers as bulk strings, booleans as 1 or 0, as
    /// [`encode`](crate::codec::encode) sends them. (What a shell prints before `HELLO 3`.)
    pub fn into_resp2(self) -> Reply {
        let all = |items: Vec<Reply>| items.into_iter().map(Reply::into_resp2).collect();
        match self {
            Reply::Array(items) | Reply::Set(items) => Reply::Array(all(items)),
            Reply::Map(pairs) => Reply::Array(
                pairs
                    .into_iter()
                    .flat_map(|(key, value)| [key.into_resp2(), value.into_resp2()])
                    .collect(),
            ),
            Reply::Double(value) => Reply::bulk(crate::codec::double_text(value)),
            Reply::Boolean(value) => Reply::Integer(i64::from(value)),
            Reply::BigNumber(digits) => Reply::bulk(digits),
            Reply::Verbatim(text) => Reply::Bulk(text),
            other => other,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_resp2_is_what_encode_sends_a_resp2_client() {
        use crate::codec::{encode, Protocol};
        let reply = Reply::Array(vec![
            Reply::Map(vec![(
                Reply::bulk("k"),
                Reply::Set(vec![Reply::Double(0.5)]),
            )]),
            Reply::Boolean(true),
            Reply::BigNumber("123".into()),
            Reply::Verbatim("t".into()),
        ]);
        // Encoded for RESP3, the lowered reply holds no RESP3-only kind: the same bytes.
        let (mut direct, mut lowered) = (bytes::BytesMut::new(), bytes::BytesMut::new());
        encode(&reply, Protocol::Resp2, &mut direct);
        encode(&reply.clone().into_resp2(), Protocol::Resp3, &mut lowered);
        assert_eq!(direct, lowered);
    }
}
