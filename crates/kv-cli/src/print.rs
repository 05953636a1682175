//! Printing a [`Reply`] the way redis-cli prints one on a terminal (its `--no-raw` form),
//! so that what the shell shows is what a Redis user expects, and a reply printed by
//! `kv` and by `redis-cli` is the same text:
//!
//! ```text
//! OK                          a status, bare
//! (error) ERR syntax error    an error
//! (integer) 2                 an integer
//! "a\x00b\n"                  a string, quoted ([`quote`])
//! (nil)                       no value (and no array)
//! (empty array)               an empty array ((empty hash), (empty set) in RESP3)
//! 1) "a"                      an array: numbered, nested arrays indented
//! 2) 1) (integer) 1
//!    2) (integer) 2
//! (double) 1.5                RESP3's double, boolean, big number
//! (true)
//! 1# "key" => "value"         RESP3's map
//! 1~ "member"                 RESP3's set
//! ```
//!
//! A long reply can be cut short: [`print`](fn@print) asks its `stop` function before each element.
//! As redis-cli, reports meant for people (`INFO`, `CLIENT LIST`: [`prints_raw`]) are
//! shown as their raw text instead ([`print_raw`]).

use std::io::{self, Write};

use kv_server::codec::double_text;
use kv_server::Reply;

/// Whether a reply was printed whole or cut short by its `stop` function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    /// Every element was printed.
    Whole,
    /// `stop` answered true: the elements after that point were left out.
    Cut,
}

/// Prints `reply` to `out`; before each element of an array, map or set, `stop()` may cut
/// the rest short.
///
/// # Errors
///
/// Any error of `out`.
pub fn print(
    out: &mut impl Write,
    reply: &Reply,
    stop: &mut dyn FnMut() -> bool,
) -> io::Result<Printed> {
    write_reply(out, reply, "", false, stop)
}

/// `reply` as [`print`](fn@print) prints it, whole.
///
/// ```
/// use kv_server::Reply;
/// let reply = Reply::Array(vec![Reply::bulk("a"), Reply::Integer(2), Reply::Nil]);
/// assert_eq!(kv_cli::print::to_text(&reply), "1) \"a\"\n2) (integer) 2\n3) (nil)\n");
/// ```
pub fn to_text(reply: &Reply) -> String {
    let mut out = Vec::new();
    print(&mut out, reply, &mut || false).expect("a Vec takes any write");
    // Strings are escaped; only a verbatim text (shown as it is) can hold other bytes.
    String::from_utf8_lossy(&out).into_owned()
}

/// `bytes` in double quotes, as redis-cli shows a string: `\\ \" \n \r \t \a \b`, printable
/// ASCII as it is, and every other byte (UTF-8 included) as `\xHH`. What the shell's
/// [line](crate::line) parser reads back as the same bytes.
///
/// ```
/// assert_eq!(kv_cli::print::quote("a\"é\0".as_bytes()), r#""a\"\xc3\xa9\x00""#);
/// ```
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Whether redis-cli shows the reply to `args` (name first) as its raw text, not quoted:
/// the commands whose replies are reports meant for people (`INFO`, `CLIENT LIST`,
/// `MEMORY DOCTOR`, ...). Print those with [`print_raw`].
pub fn prints_raw(args: &[impl AsRef<[u8]>]) -> bool {
    let word = |i: usize| {
        args.get(i)
            .map(|w| String::from_utf8_lossy(w.as_ref()).to_ascii_lowercase())
            .unwrap_or_default()
    };
    let (name, sub, count) = (word(0), word(1), args.len());
    match name.as_str() {
        "info" | "lolwut" => true,
        "debug" => matches!(sub.as_str(), "htstats" | "htstats-key" | "client-eviction"),
        "memory" => matches!(sub.as_str(), "malloc-stats" | "doctor"),
        "cluster" => count == 2 && matches!(sub.as_str(), "nodes" | "info"),
        "client" => matches!(sub.as_str(), "list" | "info"),
        "latency" => (count == 3 && sub == "graph") || (count == 2 && sub == "doctor"),
        "proxy" => sub == "info",
        _ => false,
    }
}

/// Prints `reply` as redis-cli prints the replies of [`prints_raw`] commands: strings as
/// their bytes with no newline added (the text brings its own), integers bare, an
/// error's text and a newline, nothing for nil, elements one a line, a map's key and value
/// separated by a space.
///
/// # Errors
///
/// Any error of `out`.
pub fn print_raw(
    out: &mut impl Write,
    reply: &Reply,
    stop: &mut dyn FnMut() -> bool,
) -> io::Result<Printed> {
    if let Reply::Array(items) | Reply::Set(items) = reply {
        for (i, item) in items.iter().enumerate() {
            if stop() {
                return Ok(Printed::Cut);
            }
            if i > 0 {
                out.write_all(b"\n")?;
            }
            if print_raw(out, item, stop)? == Printed::Cut {
                return Ok(Printed::Cut);
            }
        }
        return Ok(Printed::Whole);
    }
    if let Reply::Map(pairs) = reply {
        for (i, (key, value)) in pairs.iter().enumerate() {
            if stop() {
                return Ok(Printed::Cut);
            }
            if i > 0 {
                out.write_all(b"\n")?;
            }
            print_raw(out, key, &mut || false)?;
            out.write_all(b" ")?;
            if print_raw(out, value, stop)? == Printed::Cut {
                return Ok(Printed::Cut);
            }
        }
        return Ok(Printed::Whole);
    }
    print_raw_scalar(out, reply).map(|()| Printed::Whole)
}

fn print_raw_scalar(out: &mut impl Write, reply: &Reply) -> io::Result<()> {
    match reply {
        Reply::Simple(status) => out.write_all(status.as_bytes()),
        Reply::Status(status) => out.write_all(status.as_bytes()),
        Reply::Error(message) => writeln!(out, "{message}"),
        Reply::Integer(n) => write!(out, "{n}"),
        Reply::Bulk(bytes) | Reply::Verbatim(bytes) => out.write_all(bytes),
        Reply::Nil | Reply::NilArray => Ok(()),
        Reply::Double(value) => write!(out, "{}", double_text(*value)),
        Reply::Boolean(value) => write!(out, "({value})"),
        Reply::BigNumber(digits) => write!(out, "{digits}"),
        Reply::Array(_) | Reply::Set(_) | Reply::Map(_) => {
            unreachable!("aggregates are written by print_raw")
        }
    }
}

/// An aggregate's elements: single replies, or a map's pairs.
enum Elements<'a> {
    Items(&'a [Reply]),
    Pairs(&'a [(Reply, Reply)]),
}

/// The elements of `reply` and the mark after their numbers, if it is an aggregate.
fn elements(reply: &Reply) -> Option<(Elements<'_>, char, &'static str)> {
    match reply {
        Reply::Array(items) => Some((Elements::Items(items), ')', "(empty array)")),
        Reply::Set(items) => Some((Elements::Items(items), '~', "(empty set)")),
        Reply::Map(pairs) => Some((Elements::Pairs(pairs), '#', "(empty hash)")),
        _ => None,
    }
}

/// Whether `reply`, as a map's value, takes lines of its own (after its key's line), as
/// redis-cli decides: an aggregate of more than one element, or of one that does.
fn is_multiline(reply: &Reply) -> bool {
    match elements(reply) {
        Some((Elements::Items(items), ..)) => match items {
            [] => false,
            [only] => is_multiline(only),
            _ => true,
        },
        Some((Elements::Pairs(pairs), ..)) => match pairs {
            [] => false,
            [(_, value)] => is_multiline(value),
            _ => true,
        },
        None => false,
    }
}

/// Writes `reply` whose first line is already indented (after its parent's number), unless
/// `indent_first`: then every element's line starts with `prefix`, as redis-cli lays out
/// an aggregate that is a map's value (on the lines after its key).
fn write_reply(
    out: &mut impl Write,
    reply: &Reply,
    prefix: &str,
    indent_first: bool,
    stop: &mut dyn FnMut() -> bool,
) -> io::Result<Printed> {
    let Some((elements, mark, empty)) = elements(reply) else {
        return write_scalar(out, reply).map(|()| Printed::Whole);
    };
    let count = match elements {
        Elements::Items(items) => items.len(),
        Elements::Pairs(pairs) => pairs.len(),
    };
    if count == 0 {
        writeln!(out, "{empty}")?;
        return Ok(Printed::Whole);
    }
    let width = count.to_string().len();
    let inner = format!("{prefix}{}", " ".repeat(width + 2));
    for i in 0..count {
        if stop() {
            return Ok(Printed::Cut);
        }
        let lead = if i == 0 && !indent_first { "" } else { prefix };
        write!(out, "{lead}{:>width$}{mark} ", i + 1)?;
        let printed = match &elements {
            Elements::Items(items) => write_reply(out, &items[i], &inner, false, stop)?,
            Elements::Pairs(pairs) => {
                let (key, value) = &pairs[i];
                let mut key_text = Vec::new();
                write_reply(&mut key_text, key, &inner, false, &mut || false)?;
                if key_text.last() == Some(&b'\n') {
                    key_text.pop();
                }
                out.write_all(&key_text)?;
                out.write_all(b" => ")?;
                if is_multiline(value) {
                    out.write_all(b"\n")?;
                    write_reply(out, value, &inner, true, stop)?
                } else {
                    write_reply(out, value, &inner, false, stop)?
                }
            }
        };
        if printed == Printed::Cut {
            return Ok(Printed::Cut);
        }
    }
    Ok(Printed::Whole)
}

fn write_scalar(out: &mut impl Write, reply: &Reply) -> io::Result<()> {
    match reply {
        Reply::Simple(status) => writeln!(out, "{}", no_controls(status)),
        Reply::Status(status) => writeln!(out, "{}", no_controls(status)),
        Reply::Error(message) => writeln!(out, "(error) {}", no_controls(message)),
        Reply::Integer(n) => writeln!(out, "(integer) {n}"),
        Reply::Bulk(bytes) => writeln!(out, "{}", quote(bytes)),
        Reply::Nil | Reply::NilArray => writeln!(out, "(nil)"),
        Reply::Double(value) => writeln!(out, "(double) {}", double_text(*value)),
        Reply::Boolean(value) => writeln!(out, "({value})"),
        Reply::BigNumber(digits) => writeln!(out, "(big number) {digits}"),
        // Shown as it is: the server meant it for people (RESP3's INFO).
        Reply::Verbatim(text) => {
            out.write_all(text)?;
            out.write_all(b"\n")
        }
        Reply::Array(_) | Reply::Set(_) | Reply::Map(_) => {
            unreachable!("aggregates are written by write_reply")
        }
    }
}

/// `text` with its control characters as `\xHH`: an error can quote a request's bytes
/// (`ERR unknown command '...'`), and a terminal escape or a NUL in them must not reach
/// the terminal. (redis-cli prints them raw; no ordinary reply holds one.)
fn no_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reply: &Reply) -> String {
        to_text(reply)
    }

    #[test]
    fn scalars_print_as_redis_cli_prints_them() {
        assert_eq!(text(&Reply::OK), "OK\n");
        assert_eq!(text(&Reply::Status("PONG".into())), "PONG\n");
        assert_eq!(
            text(&Reply::error("ERR syntax error")),
            "(error) ERR syntax error\n"
        );
        assert_eq!(
            text(&Reply::error("ERR unknown command '\u{1b}[2J\0'")),
            "(error) ERR unknown command '\\x1b[2J\\x00'\n",
            "no terminal escape or NUL reaches the terminal"
        );
        assert_eq!(text(&Reply::Integer(-2)), "(integer) -2\n");
        assert_eq!(text(&Reply::Nil), "(nil)\n");
        assert_eq!(text(&Reply::NilArray), "(nil)\n");
        assert_eq!(text(&Reply::bulk("")), "\"\"\n");
        assert_eq!(text(&Reply::Double(1.5)), "(double) 1.5\n");
        assert_eq!(text(&Reply::Double(1e20)), "(double) 1e+20\n");
        assert_eq!(text(&Reply::Double(f64::INFINITY)), "(double) inf\n");
        assert_eq!(text(&Reply::Boolean(true)), "(true)\n");
        assert_eq!(text(&Reply::Boolean(false)), "(false)\n");
        assert_eq!(
            text(&Reply::BigNumber("123456789012345678901234567890".into())),
            "(big number) 123456789012345678901234567890\n"
        );
        assert_eq!(
            text(&Reply::Verbatim("# Server\r\nx:1".into())),
            "# Server\r\nx:1\n"
        );
    }

    #[test]
    fn strings_are_quoted_with_redis_cli_escapes() {
        assert_eq!(
            quote(b"x\x00y\n\r\t\x07\x08\xc3\xa9 \"q\" \\\x7f~"),
            r#""x\x00y\n\r\t\a\b\xc3\xa9 \"q\" \\\x7f~""#
        );
        let all: Vec<u8> = (0..=255).collect();
        let quoted = quote(&all);
        let back = crate::line::split(quoted.as_bytes()).unwrap();
        assert_eq!(back, [all], "a quoted string reads back as its bytes");
    }

    #[test]
    fn arrays_are_numbered_aligned_and_nested() {
        let ten: Vec<Reply> = (1..=10).map(|n| Reply::bulk(n.to_string())).collect();
        let expected: String = (1..=10).map(|n| format!("{n:>2}) \"{n}\"\n")).collect();
        assert_eq!(text(&Reply::Array(ten)), expected);
        let nested = Reply::Array(vec![
            Reply::Integer(1),
            Reply::Array(vec![
                Reply::Integer(2),
                Reply::Array(vec![Reply::Integer(3), Reply::Integer(4)]),
            ]),
            Reply::Integer(5),
            Reply::Array(vec![]),
        ]);
        assert_eq!(
            text(&nested),
            "1) (integer) 1\n\
             2) 1) (integer) 2\n   \
                2) 1) (integer) 3\n      \
                   2) (integer) 4\n\
             3) (integer) 5\n\
             4) (empty array)\n"
        );
        assert_eq!(text(&Reply::Array(vec![])), "(empty array)\n");
    }

    #[test]
    fn maps_and_sets_print_as_in_resp3() {
        assert_eq!(text(&Reply::Map(vec![])), "(empty hash)\n");
        assert_eq!(text(&Reply::Set(vec![])), "(empty set)\n");
        assert_eq!(
            text(&Reply::Set(vec![Reply::bulk("a"), Reply::bulk("b")])),
            "1~ \"a\"\n2~ \"b\"\n"
        );
        // As redis-cli 7 prints `EVAL "return {map={a={}, b={map={c={1,{2,3}}}}, d={1..10}}}"`.
        let ints = |range: std::ops::RangeInclusive<i64>| {
            Reply::Array(range.map(Reply::Integer).collect())
        };
        let map = Reply::Map(vec![
            (Reply::bulk("a"), Reply::Array(vec![])),
            (Reply::bulk("d"), ints(1..=10)),
            (
                Reply::bulk("b"),
                Reply::Map(vec![(
                    Reply::bulk("c"),
                    Reply::Array(vec![Reply::Integer(1), ints(2..=3)]),
                )]),
            ),
        ]);
        let mut expected = String::from("1# \"a\" => (empty array)\n2# \"d\" => \n");
        for n in 1..=10 {
            expected.push_str(&format!("   {n:>2}) (integer) {n}\n"));
        }
        expected.push_str(
            "3# \"b\" => \n   \
             1# \"c\" => \n      \
             1) (integer) 1\n      \
             2) 1) (integer) 2\n         \
             2) (integer) 3\n",
        );
        assert_eq!(text(&map), expected);
        // A map inside an array, as EXEC answers HGETALL in RESP3.
        let exec = Reply::Array(vec![
            Reply::Map(vec![
                (Reply::bulk("f"), Reply::bulk("v")),
                (Reply::bulk("f2"), Reply::bulk("v2")),
            ]),
            Reply::Set(vec![Reply::bulk("a")]),
            Reply::error("ERR syntax error"),
        ]);
        assert_eq!(
            text(&exec),
            "1) 1# \"f\" => \"v\"\n   2# \"f2\" => \"v2\"\n2) 1~ \"a\"\n3) (error) ERR syntax error\n"
        );
    }

    #[test]
    fn reports_print_raw() {
        assert!(prints_raw(&["INFO"]));
        assert!(prints_raw(&["info", "keyspace"]));
        assert!(prints_raw(&["Client", "LIST"]));
        assert!(!prints_raw(&["client", "id"]));
        assert!(!prints_raw(&["get", "info"]));
        let raw = |reply: &Reply| {
            let mut out = Vec::new();
            print_raw(&mut out, reply, &mut || false).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            raw(&Reply::bulk("# Keyspace\r\ndb0:keys=1\r\n")),
            "# Keyspace\r\ndb0:keys=1\r\n"
        );
        assert_eq!(raw(&Reply::bulk("")), "");
        assert_eq!(raw(&Reply::error("ERR no")), "ERR no\n");
        assert_eq!(
            raw(&Reply::Array(vec![
                Reply::Integer(1),
                Reply::bulk("a"),
                Reply::Nil
            ])),
            "1\na\n"
        );
        assert_eq!(
            raw(&Reply::Map(vec![(Reply::bulk("k"), Reply::bulk("v"))])),
            "k v"
        );
    }

    #[test]
    fn a_map_value_of_one_element_stays_on_its_key_line() {
        let one = |value: Reply| Reply::Map(vec![(Reply::bulk("k"), value)]);
        assert_eq!(
            to_text(&one(one(Reply::Integer(1)))),
            "1# \"k\" => 1# \"k\" => (integer) 1\n"
        );
        assert_eq!(
            to_text(&one(Reply::Array(vec![Reply::Integer(1)]))),
            "1# \"k\" => 1) (integer) 1\n"
        );
        assert_eq!(
            to_text(&one(Reply::Array(vec![
                Reply::Integer(1),
                Reply::Integer(2)
            ]))),
            "1# \"k\" => \n   1) (integer) 1\n   2) (integer) 2\n"
        );
    }

    #[test]
    fn stop_cuts_a_raw_reply_too() {
        let long = Reply::Array((0..1000).map(Reply::Integer).collect());
        let mut out = Vec::new();
        let mut asked = 0;
        let printed = print_raw(&mut out, &long, &mut || {
            asked += 1;
            asked > 2
        })
        .unwrap();
        assert_eq!(printed, Printed::Cut);
        assert_eq!(String::from_utf8(out).unwrap(), "0\n1");
    }

    #[test]
    fn stop_cuts_a_long_reply_between_elements() {
        let long = Reply::Array((0..1000).map(Reply::Integer).collect());
        let mut out = Vec::new();
        let mut asked = 0;
        let printed = print(&mut out, &long, &mut || {
            asked += 1;
            asked > 3
        })
        .unwrap();
        assert_eq!(printed, Printed::Cut);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "   1) (integer) 0\n   2) (integer) 1\n   3) (integer) 2\n"
        );
    }
}
