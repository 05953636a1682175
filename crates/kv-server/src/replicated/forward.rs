//! A follower's link to the leader's Redis-protocol port, for the requests it forwards: the
//! requests go as RESP arrays, the replies come back as RESP2 and are read into [`Reply`]s
//! (bounded: a bulk no larger than the server's own limit, arrays of at most
//! [`MAX_ARRAY`] elements), so the client gets the leader's answer as if it had asked it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::codec::{encode, Protocol};
use crate::reply::Reply;

/// How long connecting to the leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How much longer than its commit timeout the leader may take to answer a forwarded
/// request: the leader answers a write or a read within its own commit timeout (the
/// `--commit-timeout` of every node, normally the same), and this covers the round trip
/// and a loaded machine.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// The most elements a forwarded reply's array may hold.
const MAX_ARRAY: usize = 1 << 20;

/// One connection to the leader.
pub(super) struct Link {
    stream: BufReader<TcpStream>,
    max_bulk: usize,
    /// How long the leader may take to answer.
    answer_timeout: Duration,
}

impl Link {
    /// Connects to `addr`, authenticates with `password` (the nodes of a cluster share
    /// their `requirepass`), and marks the connection as a follower's (the leader never
    /// forwards its requests again). The leader may take `commit_timeout` and a margin to
    /// answer a request.
    pub(super) async fn connect(
        addr: &str,
        max_bulk: usize,
        password: Option<&str>,
        commit_timeout: Duration,
    ) -> io::Result<Link> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
        stream.set_nodelay(true)?;
        let mut link = Link {
            stream: BufReader::new(stream),
            max_bulk,
            answer_timeout: commit_timeout.saturating_add(ANSWER_MARGIN),
        };
        if let Some(password) = password {
            let auth = link
                .ask(&[vec![
                    Bytes::from_static(b"AUTH"),
                    Bytes::copy_from_slice(password.as_bytes()),
                ]])
                .await?;
            if auth.is_error() {
                return Err(io::Error::other(format!(
                    "the leader refused this node's password ({auth:?}): every node of a cluster needs the same --requirepass"
                )));
            }
        }
        let marked = link
            .ask(&[vec![
                Bytes::from_static(b"KVRAFT"),
                Bytes::from_static(b"FORWARDED"),
            ]])
            .await?;
        if marked.is_error() {
            return Err(io::Error::other(format!("{marked:?}")));
        }
        Ok(link)
    }

    /// Sends `requests` in one write and reads their replies; returns the last.
    pub(super) async fn ask(&mut self, requests: &[Vec<Bytes>]) -> io::Result<Reply> {
        let mut out = BytesMut::new();
        for request in requests {
            let request = Reply::Array(request.iter().cloned().map(Reply::Bulk).collect());
            encode(&request, Protocol::Resp2, &mut out);
        }
        let answered = async {
            self.stream.get_mut().write_all(&out).await?;
            let mut last = Reply::Nil;
            for _ in requests {
                last = read_reply(&mut self.stream, self.max_bulk).await?;
            }
            Ok(last)
        };
        tokio::time::timeout(self.answer_timeout, answered)
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "the leader did not answer in time")
            })?
    }
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

async fn read_line(stream: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    // A line is a type byte and a number or a short status: bounded.
    let read = (&mut *stream)
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the leader closed the link",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad("a reply line without its end"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| bad("a reply line that is not UTF-8"))
}

/// Reads one RESP2 reply.
fn read_reply(
    stream: &mut BufReader<TcpStream>,
    max_bulk: usize,
) -> Pin<Box<dyn Future<Output = io::Result<Reply>> + Send + '_>> {
    Box::pin(async move {
        let line = read_line(stream).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| bad(format!("a bad length in {line:?}")))
        };
        Ok(match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(number()?),
            "$" => match number()? {
                -1 => Reply::Nil,
                n if n < 0 || n as usize > max_bulk => return Err(bad("a bulk over the limit")),
                n => {
                    let mut bytes = vec![0; n as usize + 2];
                    stream.read_exact(&mut bytes).await?;
                    bytes.truncate(n as usize);
                    Reply::Bulk(Bytes::from(bytes))
                }
            },
            "*" => match number()? {
                -1 => Reply::NilArray,
                n if n < 0 || n as usize > MAX_ARRAY => return Err(bad("an array over the limit")),
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(read_reply(stream, max_bulk).await?);
                    }
                    Reply::Array(items)
                }
            },
            _ => return Err(bad(format!("an unknown reply {line:?}"))),
        })
    })
}
