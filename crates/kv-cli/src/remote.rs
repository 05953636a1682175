//! `kv --connect HOST:PORT`: the shell's requests sent to a running server through the
//! `redis` crate, and its values turned into the [`Reply`] the shell prints.

use kv_server::bytes::Bytes;
use kv_server::Reply;
use redis::{ConnectionAddr, ConnectionInfo, ConnectionLike, RedisConnectionInfo, Value};

use crate::failure::Failure;

/// A connection to a Redis-protocol server.
pub struct Remote {
    connection: redis::Connection,
    address: String,
}

impl Remote {
    /// Connects to `address` (`HOST:PORT`, `[IPV6]:PORT`), authenticating with `password`
    /// if one is given.
    pub fn connect(address: &str, password: Option<String>) -> Result<Remote, Failure> {
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| Failure::Usage(format!("--connect wants HOST:PORT, not {address:?}")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(host.to_string(), port),
            redis: RedisConnectionInfo {
                password: password.filter(|p| !p.is_empty()),
                ..RedisConnectionInfo::default()
            },
        };
        let connection = redis::Client::open(info)
            .and_then(|client| client.get_connection())
            .map_err(|e| {
                Failure::Runtime(match e.kind() {
                    redis::ErrorKind::AuthenticationFailed => format!(
                        "could not connect to {address}: the server refused the password \
                         given with --pass or REDISCLI_AUTH (a wrong one, or it has none)"
                    ),
                    _ => format!("could not connect to {address}: {e}"),
                })
            })?;
        Ok(Remote {
            connection,
            address: address.to_string(),
        })
    }

    /// Where it is connected (the prompt).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Why the shell will not send `args` to a server, if it will not: commands after which
    /// the server stops answering one reply per request (subscriptions, `MONITOR`, `CLIENT
    /// REPLY OFF|SKIP`) would leave every later reply answering the wrong line.
    pub fn refuses(args: &[Bytes]) -> Option<String> {
        let word = |i: usize| {
            args.get(i)
                .map(|w| String::from_utf8_lossy(w).to_ascii_lowercase())
                .unwrap_or_default()
        };
        let name = word(0);
        let streams = matches!(
            name.as_str(),
            "subscribe" | "psubscribe" | "ssubscribe" | "monitor" | "sync" | "psync"
        ) || (name == "client" && word(1) == "reply" && word(2) != "on");
        streams.then(|| {
            format!(
                "ERR kv's shell answers one reply per command: use redis-cli for {}",
                name.to_ascii_uppercase()
            )
        })
    }

    /// Sends one request and waits for its reply; an error that is not the server's reply
    /// (the connection broke) as text.
    pub fn request(&mut self, args: &[Bytes]) -> Result<Reply, String> {
        let mut command = redis::Cmd::new();
        for arg in args {
            command.arg(&arg[..]);
        }
        self.connection
            .req_command(&command)
            .map(reply)
            .map_err(|e| e.to_string())
    }
}

/// The shell's reply for a value the `redis` crate read. (A double is printed from the
/// number the crate parsed, so in its shortest form: `0.1` where Redis 7.0's redis-cli
/// shows the server's `0.10000000000000001`.)
pub fn reply(value: Value) -> Reply {
    match value {
        Value::Nil => Reply::Nil,
        Value::Int(n) => Reply::Integer(n),
        Value::BulkString(bytes) => Reply::Bulk(bytes.into()),
        Value::Array(items) => Reply::Array(items.into_iter().map(reply).collect()),
        Value::SimpleString(status) => Reply::Status(status),
        Value::Okay => Reply::OK,
        Value::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (reply(key), reply(value)))
                .collect(),
        ),
        // Attributes are side information: redis-cli shows the data alone.
        Value::Attribute { data, .. } => reply(*data),
        Value::Set(items) => Reply::Set(items.into_iter().map(reply).collect()),
        Value::Double(value) => Reply::Double(value),
        Value::Boolean(value) => Reply::Boolean(value),
        Value::VerbatimString { text, .. } => Reply::Verbatim(text.into()),
        Value::BigNumber(number) => Reply::BigNumber(number.to_string()),
        Value::Push { data, .. } => Reply::Array(data.into_iter().map(reply).collect()),
        Value::ServerError(error) => Reply::Error(match error.details() {
            Some(details) => format!("{} {details}", error.code()),
            None => error.code().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn commands_that_break_one_reply_per_request_are_refused() {
        for refused in [
            &["SUBSCRIBE", "ch"][..],
            &["psubscribe", "c*"],
            &["MONITOR"],
            &["client", "reply", "off"],
            &["CLIENT", "REPLY", "skip"],
        ] {
            assert!(Remote::refuses(&args(refused)).is_some(), "{refused:?}");
        }
        for allowed in [
            &["GET", "k"][..],
            &["client", "reply", "on"],
            &["CLIENT", "LIST"],
        ] {
            assert!(Remote::refuses(&args(allowed)).is_none(), "{allowed:?}");
        }
    }

    #[test]
    fn every_value_becomes_its_reply() {
        let value = Value::Array(vec![
            Value::Nil,
            Value::Int(-1),
            Value::BulkString(b"a\0".to_vec()),
            Value::SimpleString("PONG".into()),
            Value::Okay,
            Value::Map(vec![(Value::BulkString(b"k".to_vec()), Value::Int(1))]),
            Value::Set(vec![Value::BulkString(b"m".to_vec())]),
            Value::Double(2.5),
            Value::Boolean(false),
            Value::VerbatimString {
                format: redis::VerbatimFormat::Text,
                text: "# Server".into(),
            },
        ]);
        assert_eq!(
            reply(value),
            Reply::Array(vec![
                Reply::Nil,
                Reply::Integer(-1),
                Reply::bulk(&b"a\0"[..]),
                Reply::Status("PONG".into()),
                Reply::OK,
                Reply::Map(vec![(Reply::bulk("k"), Reply::Integer(1))]),
                Reply::Set(vec![Reply::bulk("m")]),
                Reply::Double(2.5),
                Reply::Boolean(false),
                Reply::Verbatim("# Server".into()),
            ])
        );
    }
}
