//! RESP framing: requests in (multibulk and inline), replies out (RESP2 or RESP3).
//!
//! Why not the `redis-protocol` crate (v6): its decoders frame whole RESP values from a
//! buffer the caller fills, so the caller cannot learn a declared bulk length or array
//! count before the bytes arrive (a client declaring a 10 GB bulk would make us buffer it
//! to find out), and it does not parse inline commands (which redis-cli, telnet and
//! redis-benchmark's PING_INLINE send). A server only ever decodes one shape, an array of
//! bulk strings or an inline line, so this decoder is small: it checks every length
//! against [`Limits`] as soon as its header line is read, before reserving anything, and
//! keeps its place in a request across reads so a large request is not parsed again on
//! every read.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::Error;
use crate::reply::Reply;

/// The largest request the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest bulk string (an argument), in bytes.
    pub max_bulk: usize,
    /// The most arguments in one request.
    pub max_args: usize,
    /// The longest inline request or header line, in bytes.
    pub max_inline: usize,
    /// The most bytes of arguments one request may declare, all together: the
    /// per-argument limits alone would let one request claim `max_args × max_bulk`.
    pub max_request: usize,
}

impl Default for Limits {
    /// Redis's: 512 MiB bulks, 1,048,576 arguments, 64 KiB inline lines, 1 GiB a request
    /// (its `client-query-buffer-limit`).
    fn default() -> Limits {
        Limits {
            max_bulk: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline: 64 * 1024,
            max_request: 1024 * 1024 * 1024,
        }
    }
}

/// The most arguments a request may have before the connection authenticates (when a
/// password is set), as in Redis 7: enough for `AUTH` and `HELLO`, so an unauthenticated
/// client cannot make the server hold much.
const UNAUTHENTICATED_MAX_ARGS: usize = 10;

/// The largest argument before the connection authenticates, as in Redis 7.
const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;

/// The least the input buffer grows by while a bulk string arrives.
const MIN_GROWTH: usize = 16 * 1024;

/// A request that breaks the protocol ([`Error::Protocol`]): the connection answers
/// `-ERR Protocol error: <message>` and closes, as Redis does.
type ProtocolError = Error;

/// Decodes requests from a connection's input buffer, one at a time.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    /// Whether the connection has yet to authenticate: tighter limits then.
    unauthenticated: bool,
    /// A multibulk request whose arguments have not all arrived.
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    /// Arguments declared.
    count: usize,
    /// Where each argument read so far lies in the buffer.
    args: Vec<(usize, usize)>,
    /// Where the next argument's header starts.
    pos: usize,
    /// The bytes of arguments declared so far.
    declared: usize,
}

impl Decoder {
    /// A decoder that refuses requests beyond `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            unauthenticated: false,
            partial: None,
        }
    }

    /// Tells whether the connection has authenticated (it has unless a password is set).
    /// Until it has, a request of more than 10 arguments or an argument over 16 KiB is a
    /// protocol error, as in Redis 7. A connection must then decode one request at a time
    /// and answer it before decoding the next, since `AUTH` changes what the next may be.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.unauthenticated = !authenticated;
    }

    /// The next complete request in `buf` (removed from it), `Ok(None)` if more bytes are
    /// needed. A request with no arguments (an empty line, `*0`) is skipped.
    ///
    /// # Errors
    ///
    /// An [`Error::Protocol`] for a malformed request or one beyond the limits; the
    /// connection must then be closed (the buffer is left as it is).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            let request = if self.partial.is_some() || buf[0] == b'*' {
                self.decode_multibulk(buf)?
            } else {
                self.decode_inline(buf)?
            };
            match request {
                Some(args) if args.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    fn decode_multibulk(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut partial = match self.partial.take() {
            Some(partial) => partial,
            None => {
                let Some((line, next)) = self.line(buf, 0, "too big mbulk count string")? else {
                    return Ok(None);
                };
                let line = &buf[line];
                let count = parse_length(&line[1..])
                    .filter(|&n| n <= self.limits.max_args as i64)
                    .ok_or(Error::Protocol("invalid multibulk length"))?;
                if count <= 0 {
                    buf.advance(next);
                    return Ok(Some(Vec::new()));
                }
                let count = count as usize;
                if self.unauthenticated && count > UNAUTHENTICATED_MAX_ARGS {
                    return Err(Error::Protocol("unauthenticated multibulk length"));
                }
                Partial {
                    count,
                    // Not `count`: a declared count is not trusted to size anything.
                    args: Vec::with_capacity(count.min(64)),
                    pos: next,
                    declared: 0,
                }
            }
        };
        while partial.args.len() < partial.count {
            let Some((line, next)) = self.line(buf, partial.pos, "too big bulk count string")?
            else {
                self.partial = Some(partial);
                return Ok(None);
            };
            let line = &buf[line];
            // `first`: the line may be empty.
            if line.first() != Some(&b'$') {
                return Err(Error::Protocol("expected '$'"));
            }
            let len = parse_length(&line[1..])
                .filter(|&n| (0..=self.limits.max_bulk as i64).contains(&n))
                .ok_or(Error::Protocol("invalid bulk length"))? as usize;
            if self.unauthenticated && len > UNAUTHENTICATED_MAX_BULK {
                return Err(Error::Protocol("unauthenticated bulk length"));
            }
            // Counted once the argument is complete (its header is read again until then).
            if partial.declared + len > self.limits.max_request {
                return Err(Error::Protocol("request exceeds the query buffer limit"));
            }
            if buf.len() < next + len + 2 {
                // Only so much more room as has arrived (at least `MIN_GROWTH`): the
                // declared length is a claim, and reserving it at once would let every
                // connection hold the bulk limit with a header of a few bytes.
                let missing = next + len + 2 - buf.len();
                buf.reserve(missing.min(buf.len().max(MIN_GROWTH)));
                self.partial = Some(partial);
                return Ok(None);
            }
            if &buf[next + len..next + len + 2] != b"\r\n" {
                return Err(Error::Protocol("expected CRLF after a bulk string"));
            }
            partial.args.push((next, next + len));
            partial.declared += len;
            partial.pos = next + len + 2;
        }
        let frame = buf.split_to(partial.pos).freeze();
        Ok(Some(
            partial
                .args
                .into_iter()
                .map(|(start, end)| frame.slice(start..end))
                .collect(),
        ))
    }

    fn decode_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some((line, next)) = self.line(buf, 0, "too big inline request")? else {
            return Ok(None);
        };
        let args =
            split_inline(&buf[line]).ok_or(Error::Protocol("unbalanced quotes in request"))?;
        if args.len() > self.limits.max_args {
            return Err(Error::Protocol("invalid multibulk length"));
        }
        buf.advance(next);
        Ok(Some(args))
    }

    /// Where in `buf` the line starting at `start` lies, without its line end, and where the
    /// next one starts (a range, not a copy: the callers only read it);
    /// `None` while it is incomplete; an error once it is longer than the inline limit.
    fn line(
        &self,
        buf: &BytesMut,
        start: usize,
        too_long: &'static str,
    ) -> Result<Option<(std::ops::Range<usize>, usize)>, ProtocolError> {
        let window = &buf[start..buf.len().min(start + self.limits.max_inline + 2)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let cr = usize::from(end > 0 && window[end - 1] == b'\r');
                Ok(Some((start..start + end - cr, start + end + 1)))
            }
            None if window.len() > self.limits.max_inline => Err(Error::Protocol(too_long)),
            None => Ok(None),
        }
    }
}

/// A decimal length (`-1` allowed), `None` if it is not one.
fn parse_length(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Splits an inline request into arguments as redis-cli and Redis do: separated by
/// blanks; `"..."` with `\n \r \t \b \a \\ \" \xHH` escapes; `'...'` with `\'`. `None`
/// for unbalanced quotes (or a closing quote not followed by a blank).
pub fn split_inline(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        match line[i] {
            quote @ (b'"' | b'\'') => {
                i = read_quoted(line, i + 1, quote, &mut arg)?;
                if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    return None;
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
}

/// Reads a quoted argument of `line` from `i` (just after the opening `quote`) into `arg`;
/// the index just after the closing quote, or `None` if there is none.
fn read_quoted(line: &[u8], mut i: usize, quote: u8, arg: &mut Vec<u8>) -> Option<usize> {
    loop {
        let (byte, len) = match *line.get(i)? {
            b if b == quote => return Some(i + 1),
            b'\\' if quote == b'"' => double_quoted_escape(&line[i..]),
            b'\\' if line.get(i + 1) == Some(&b'\'') => (b'\'', 2),
            other => (other, 1),
        };
        arg.push(byte);
        i += len;
    }
}

/// The byte a backslash escape at the start of `rest` stands for inside double quotes, and
/// how many bytes it takes: `\xHH`, `\n \r \t \b \a`, or the escaped byte itself.
fn double_quoted_escape(rest: &[u8]) -> (u8, usize) {
    let hex = |b: u8| char::from(b).to_digit(16);
    match rest {
        [_, b'x', high, low, ..] if hex(*high).is_some() && hex(*low).is_some() => {
            let value = hex(*high).unwrap_or(0) << 4 | hex(*low).unwrap_or(0);
            (value as u8, 4)
        }
        [_, escaped, ..] => {
            let byte = match escaped {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 8,
                b'a' => 7,
                other => *other,
            };
            (byte, 2)
        }
        _ => (b'\\', 1),
    }
}

/// The protocol version a connection speaks (`HELLO 3` switches to RESP3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, every connection's start.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

/// Appends `reply`, encoded for `protocol`, to `out`.
pub fn encode(reply: &Reply, protocol: Protocol, out: &mut BytesMut) {
    match reply {
        Reply::Simple(status) => line(out, b'+', status.as_bytes()),
        Reply::Error(message) => {
            // A line end inside would end the reply early: Redis replaces them too.
            let message: Vec<u8> = message
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                .collect();
            line(out, b'-', &message)
        }
        Reply::Integer(n) => number_line(out, b':', *n),
        Reply::Bulk(value) => {
            number_line(out, b'$', value.len());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Nil => match protocol {
            Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
        },
        Reply::NilArray => match protocol {
            Protocol::Resp2 => out.extend_from_slice(b"*-1\r\n"),
            Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
        },
        Reply::Array(items) => {
            number_line(out, b'*', items.len());
            for item in items {
                encode(item, protocol, out);
            }
        }
        Reply::Map(pairs) => {
            match protocol {
                Protocol::Resp2 => number_line(out, b'*', pairs.len() * 2),
                Protocol::Resp3 => number_line(out, b'%', pairs.len()),
            }
            for (key, value) in pairs {
                encode(key, protocol, out);
                encode(value, protocol, out);
            }
        }
        Reply::Status(status) => {
            // As for errors: a line end inside would end the reply early.
            let status: Vec<u8> = status
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                .collect();
            line(out, b'+', &status)
        }
        Reply::Double(value) => {
            let text = double_text(*value);
            match protocol {
                Protocol::Resp2 => encode(&Reply::bulk(text), protocol, out),
                Protocol::Resp3 => line(out, b',', text.as_bytes()),
            }
        }
        Reply::Boolean(value) => match protocol {
            Protocol::Resp2 => number_line(out, b':', u8::from(*value)),
            Protocol::Resp3 => line(out, b'#', if *value { b"t" } else { b"f" }),
        },
        Reply::Set(items) => {
            match protocol {
                Protocol::Resp2 => number_line(out, b'*', items.len()),
                Protocol::Resp3 => number_line(out, b'~', items.len()),
            }
            for item in items {
                encode(item, protocol, out);
            }
        }
        Reply::BigNumber(digits) => match protocol {
            Protocol::Resp2 => encode(&Reply::bulk(digits.clone()), protocol, out),
            Protocol::Resp3 => line(out, b'(', digits.as_bytes()),
        },
        Reply::Verbatim(text) => match protocol {
            Protocol::Resp2 => encode(&Reply::Bulk(text.clone()), protocol, out),
            Protocol::Resp3 => {
                number_line(out, b'=', text.len() + 4);
                out.extend_from_slice(b"txt:");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        },
    }
}

/// A double as Redis writes it: the shortest digits that read back as the same number, in
/// C's `%g` layout (plain from 1e-4 up to 1e17, else `1.5e+20`), or `inf`, `-inf`, `nan`.
///
/// ```
/// use kv_server::codec::double_text;
/// assert_eq!(double_text(1.5), "1.5");
/// assert_eq!(double_text(3.0), "3");
/// assert_eq!(double_text(1e20), "1e+20");
/// assert_eq!(double_text(-2.5e-7), "-2.5e-07");
/// assert_eq!(double_text(f64::NEG_INFINITY), "-inf");
/// ```
pub fn double_text(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` has the shortest digits that read back: `1.5e20`, `-2.5e-7`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` of a finite double has an exponent");
    let exponent: i32 = exponent.parse().expect("a decimal exponent");
    if (-4..17).contains(&exponent) {
        value.to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

fn line(out: &mut BytesMut, kind: u8, body: &[u8]) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// A line of `kind` holding the number `n` in decimal, written straight into `out` (no
/// string allocated per integer, length or count).
fn number_line(out: &mut BytesMut, kind: u8, n: impl itoa::Integer) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out.reserve(digits.len() + 3);
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, &'static str> {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        while let Some(request) = decoder.decode(&mut buf).map_err(message)? {
            requests.push(request);
        }
        Ok(requests)
    }

    fn message(error: Error) -> &'static str {
        match error {
            Error::Protocol(message) => message,
            other => panic!("not a protocol error: {other}"),
        }
    }

    #[test]
    fn decodes_multibulk_and_inline_requests_in_a_pipeline() {
        let requests =
            decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a 'b c'\n").unwrap();
        assert_eq!(
            requests,
            vec![
                vec![Bytes::from("GET"), Bytes::from("k")],
                vec![Bytes::from("PING")],
                vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")],
            ]
        );
    }

    #[test]
    fn a_request_split_anywhere_decodes_the_same() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
        for split in 0..input.len() {
            let mut decoder = Decoder::default();
            let mut buf = BytesMut::from(&input[..split]);
            assert!(
                decoder.decode(&mut buf).unwrap().is_none(),
                "split at {split}"
            );
            buf.extend_from_slice(&input[split..]);
            let request = decoder.decode(&mut buf).unwrap().unwrap();
            assert_eq!(request[2], "va\r\nl");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_huge_declared_bulk_is_refused_before_anything_is_reserved() {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$10000000000\r\n"[..]);
        let capacity = buf.capacity();
        assert_eq!(
            decoder.decode(&mut buf).map_err(message),
            Err("invalid bulk length")
        );
        assert_eq!(buf.capacity(), capacity);
    }

    #[test]
    fn limits_are_enforced() {
        let too_many = format!("*{}\r\n", 1024 * 1024 + 1);
        assert_eq!(
            decode_all(too_many.as_bytes()),
            Err("invalid multibulk length")
        );
        // The largest count is accepted (and waits for its arguments).
        let most = format!("*{}\r\n", 1024 * 1024);
        assert_eq!(decode_all(most.as_bytes()), Ok(vec![]));
        let long_line = vec![b'a'; 64 * 1024 + 3];
        assert_eq!(decode_all(&long_line), Err("too big inline request"));
        let mut small = Decoder::new(Limits {
            max_bulk: 4,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\n"[..]);
        assert_eq!(
            small.decode(&mut buf).map_err(message),
            Err("invalid bulk length")
        );
    }

    #[test]
    fn an_empty_argument_header_is_a_protocol_error() {
        assert_eq!(decode_all(b"*1\r\n\r\n"), Err("expected '$'"));
        assert_eq!(decode_all(b"*2\r\n$4\r\nPING\r\n\n"), Err("expected '$'"));
    }

    #[test]
    fn a_declared_bulk_is_reserved_as_it_arrives_not_at_its_header() {
        let mut decoder = Decoder::default();
        let len = 8 * 1024 * 1024;
        let header = format!("*2\r\n$3\r\nSET\r\n${len}\r\n");
        let mut buf = BytesMut::from(header.as_bytes());
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        // Fifty such 30-byte headers must not hold fifty bulk limits.
        assert!(buf.capacity() < 64 * 1024, "{} reserved", buf.capacity());
        let chunk = vec![b'v'; 100_000];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            buf.extend_from_slice(&chunk[..n]);
            sent += n;
            assert_eq!(decoder.decode(&mut buf).unwrap(), None);
            // In proportion to what has arrived (a reserve may double the capacity).
            assert!(
                buf.capacity() <= 4 * (buf.len() + MIN_GROWTH),
                "{} reserved for {} bytes",
                buf.capacity(),
                buf.len()
            );
        }
        buf.extend_from_slice(b"\r\n");
        let request = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(request[1].len(), len);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_request_declaring_more_than_the_request_limit_is_refused() {
        let limits = Limits {
            max_bulk: 10,
            max_request: 25,
            ..Limits::default()
        };
        let mut decoder = Decoder::new(limits);
        let mut buf =
            BytesMut::from(&b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$6\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buf).map_err(message),
            Err("request exceeds the query buffer limit")
        );
        // Up to the limit is accepted.
        let mut decoder = Decoder::new(limits);
        let mut buf =
            BytesMut::from(&b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$5\r\n01234\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().len(), 3);
        assert_eq!(Limits::default().max_request, 1 << 30);
    }

    #[test]
    fn before_authentication_requests_are_small() {
        let mut decoder = Decoder::default();
        decoder.set_authenticated(false);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buf).map_err(message),
            Err("unauthenticated multibulk length")
        );
        let mut decoder = Decoder::default();
        decoder.set_authenticated(false);
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buf).map_err(message),
            Err("unauthenticated bulk length")
        );
        // At the limits: accepted (waiting for the rest).
        let mut decoder = Decoder::default();
        decoder.set_authenticated(false);
        let mut buf = BytesMut::from(&b"*10\r\n$4\r\nAUTH\r\n$16384\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        // Once authenticated, the usual limits.
        let mut decoder = Decoder::default();
        decoder.set_authenticated(false);
        decoder.set_authenticated(true);
        let mut buf = BytesMut::from(&b"*11\r\n$17000\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn malformed_requests_are_protocol_errors() {
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$1\r\nabc\r\n",
            b"get \"k\n",
            b"get 'k'x\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn inline_quotes_and_escapes() {
        let args = split_inline(br#"set "a\x00b\n" 'it\'s' plain"#).unwrap();
        assert_eq!(args, vec![&b"set"[..], b"a\x00b\n", b"it's", b"plain"]);
        assert_eq!(split_inline(b"get \"open"), None);
        // Escapes Redis reads inside double quotes only; an unknown or unfinished one is
        // the byte itself.
        let args = split_inline(br#""\t\a\b\r" "\xZZ\q" '\n' "end\"#);
        assert_eq!(args, None, "a trailing backslash escapes the closing quote");
        let args = split_inline(br#""\t\a\b\r" "\xZZ\q" '\n'"#).unwrap();
        assert_eq!(args, [&b"\t\x07\x08\r"[..], b"xZZq", b"\\n"]);
    }

    #[test]
    fn encodes_resp3_kinds_with_their_resp2_forms() {
        let reply = Reply::Array(vec![
            Reply::Status("PONG".into()),
            Reply::Double(1.5),
            Reply::Boolean(true),
            Reply::Set(vec![Reply::bulk("a")]),
            Reply::BigNumber("12345678901234567890".into()),
            Reply::Verbatim("hi".into()),
        ]);
        let mut two = BytesMut::new();
        encode(&reply, Protocol::Resp2, &mut two);
        assert_eq!(
            &two[..],
            &b"*6\r\n+PONG\r\n$3\r\n1.5\r\n:1\r\n*1\r\n$1\r\na\r\n$20\r\n12345678901234567890\r\n$2\r\nhi\r\n"[..]
        );
        let mut three = BytesMut::new();
        encode(&reply, Protocol::Resp3, &mut three);
        assert_eq!(
            &three[..],
            &b"*6\r\n+PONG\r\n,1.5\r\n#t\r\n~1\r\n$1\r\na\r\n(12345678901234567890\r\n=6\r\ntxt:hi\r\n"[..]
        );
    }

    #[test]
    fn encodes_for_each_protocol() {
        let reply = Reply::Array(vec![
            Reply::Nil,
            Reply::Integer(-3),
            Reply::bulk("ab"),
            Reply::Map(vec![(Reply::bulk("k"), Reply::OK)]),
            Reply::error("ERR bad\r\nthing"),
        ]);
        let mut two = BytesMut::new();
        encode(&reply, Protocol::Resp2, &mut two);
        assert_eq!(
            &two[..],
            b"*5\r\n$-1\r\n:-3\r\n$2\r\nab\r\n*2\r\n$1\r\nk\r\n+OK\r\n-ERR bad  thing\r\n"
        );
        let mut three = BytesMut::new();
        encode(&reply, Protocol::Resp3, &mut three);
        assert_eq!(
            &three[..],
            b"*5\r\n_\r\n:-3\r\n$2\r\nab\r\n%1\r\n$1\r\nk\r\n+OK\r\n-ERR bad  thing\r\n"
        );
    }
}
