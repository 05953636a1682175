//! The command table, and parsing a request's arguments into a typed [`Command`].
//!
//! One table for the server and the shell: a command's name, arity, flags and key
//! positions, as `COMMAND INFO` reports them, and one parser whose errors are Redis 7's
//! exact strings (clients match on them).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kv_store::TtlUpdate;

use crate::codec::Protocol;
use crate::LongDouble;

/// One command of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Lower-case name (`client|setname` for a subcommand).
    pub name: &'static str,
    /// Redis's arity: `n` exactly `n` arguments (the name included), `-n` at least `n`.
    pub arity: i32,
    /// Redis's flags (`write`, `readonly`, `fast`, `no_auth`, ...).
    pub flags: &'static [&'static str],
    /// First key argument, last (`-1`: the last argument), step; `0, 0, 0` for none.
    pub keys: (i32, i32, i32),
}

impl Spec {
    /// Whether the command may write (it may wait for the disk).
    pub fn writes(&self) -> bool {
        self.flags.contains(&"write")
    }

    /// Whether it may take long with no write of its own: its work grows with the number
    /// of keys (`KEYS`, and `DBSIZE` once any key has a deadline), or it waits for the
    /// log's lock, which a commit holds across its fsync (`INFO`, for the log's figures).
    /// A server runs it where waiting holds up no other connection.
    pub fn may_stall(&self) -> bool {
        matches!(self.name, "info" | "dbsize" | "keys")
    }

    /// Whether `MULTI` refuses to queue it (and aborts the block).
    pub fn no_multi(&self) -> bool {
        self.flags.contains(&"no_multi")
    }

    /// Whether it runs before `AUTH` succeeds.
    pub fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    /// Whether the table's arity allows `args` arguments (the name included).
    pub fn accepts(&self, args: usize) -> bool {
        let args = args as i32;
        if self.arity >= 0 {
            args == self.arity
        } else {
            args >= -self.arity
        }
    }
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
    }
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom", "fast"];
const WSLOW: &[&str] = &["write", "denyoom"];
const DEL: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "loading", "stale"];
const NOAUTH: &[&str] = &["no_auth", "fast", "loading", "stale"];
const MULTI: &[&str] = &["no_script", "loading", "stale", "fast", "allow_busy"];
const ADMIN: &[&str] = &["admin", "loading", "stale"];
const NONE: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);

/// Every command, in `COMMAND`'s order.
pub const COMMANDS: &[Spec] = &[
    spec("ping", -1, CONN, NONE),
    spec("echo", 2, CONN, NONE),
    spec("hello", -1, NOAUTH, NONE),
    spec("auth", -2, NOAUTH, NONE),
    spec("select", 2, CONN, NONE),
    spec("quit", -1, NOAUTH, NONE),
    spec("reset", 1, NOAUTH, NONE),
    spec("client", -2, &["loading", "stale"], NONE),
    spec("command", -1, &["loading", "stale"], NONE),
    spec("config", -2, ADMIN, NONE),
    spec("info", -1, &["loading", "stale"], NONE),
    spec("dbsize", 1, R, NONE),
    spec("time", 1, CONN, NONE),
    spec("flushdb", -1, DEL, NONE),
    spec("flushall", -1, DEL, NONE),
    spec("get", 2, R, ONE),
    spec("set", -3, WSLOW, ONE),
    spec("setnx", 3, W, ONE),
    spec("setex", 4, WSLOW, ONE),
    spec("psetex", 4, WSLOW, ONE),
    spec("getset", 3, W, ONE),
    spec("getdel", 2, W, ONE),
    spec("getex", -2, W, ONE),
    spec("msetnx", -3, WSLOW, (1, -1, 2)),
    spec("incrbyfloat", 3, W, ONE),
    spec("getrange", 4, &["readonly"], ONE),
    spec("setrange", 4, WSLOW, ONE),
    spec("mget", -2, R, ALL),
    spec("mset", -3, WSLOW, (1, -1, 2)),
    spec("incr", 2, W, ONE),
    spec("decr", 2, W, ONE),
    spec("incrby", 3, W, ONE),
    spec("decrby", 3, W, ONE),
    spec("append", 3, W, ONE),
    spec("strlen", 2, R, ONE),
    spec("del", -2, DEL, ALL),
    spec("unlink", -2, &["write", "fast"], ALL),
    spec("exists", -2, R, ALL),
    spec("expire", -3, &["write", "fast"], ONE),
    spec("pexpire", -3, &["write", "fast"], ONE),
    spec("expireat", -3, &["write", "fast"], ONE),
    spec("pexpireat", -3, &["write", "fast"], ONE),
    spec("expiretime", 2, R, ONE),
    spec("pexpiretime", 2, R, ONE),
    spec("ttl", 2, R, ONE),
    spec("pttl", 2, R, ONE),
    spec("persist", 2, &["write", "fast"], ONE),
    spec("type", 2, R, ONE),
    spec("keys", 2, &["readonly"], NONE),
    spec("rename", 3, &["write"], (1, 2, 1)),
    spec("renamenx", 3, &["write", "fast"], (1, 2, 1)),
    spec("randomkey", 1, &["readonly"], NONE),
    spec("scan", -2, &["readonly"], NONE),
    spec("multi", 1, MULTI, NONE),
    // EXEC writes what was queued.
    spec(
        "exec",
        1,
        &["no_script", "loading", "stale", "skip_slowlog", "write"],
        NONE,
    ),
    spec("discard", 1, MULTI, NONE),
    spec("watch", -2, MULTI, ALL),
    spec("unwatch", 1, MULTI, NONE),
    // The store's own maintenance under Redis's names: a compaction rewrites the log as
    // BGREWRITEAOF rewrites the AOF, in the background; SAVE answers once every write so
    // far is on disk. SAVE waits for the disk, so it is flagged `write` (which the server
    // runs off its runtime threads), unlike in Redis.
    spec("bgrewriteaof", 1, &["admin", "noscript"], NONE),
    spec("save", 1, &["write", "admin", "noscript", "no_multi"], NONE),
];

/// Subcommands, named `container|sub`.
pub const SUBCOMMANDS: &[Spec] = &[
    spec("client|setname", 3, CONN, NONE),
    spec("client|getname", 2, CONN, NONE),
    spec("client|id", 2, CONN, NONE),
    spec("client|setinfo", 4, CONN, NONE),
    spec("client|list", -2, &["admin", "loading", "stale"], NONE),
    spec("command|count", 2, &["loading", "stale"], NONE),
    spec("command|docs", -2, &["loading", "stale"], NONE),
    spec("command|info", -2, &["loading", "stale"], NONE),
    spec("config|get", -3, ADMIN, NONE),
];

/// The table's entry for a command name (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

fn lookup_sub(container: &str, sub: &[u8]) -> Option<&'static Spec> {
    SUBCOMMANDS.iter().find(|s| {
        s.name
            .split_once('|')
            .is_some_and(|(c, n)| c == container && n.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// A request refused before it ran; its text is Redis's error reply (code first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `ERR unknown command '<name>', with args beginning with: '<arg>' ...`
    Unknown(Vec<Bytes>),
    /// `ERR unknown subcommand '<sub>'. Try <CONTAINER> HELP.`
    UnknownSubcommand(&'static str, Bytes),
    /// `ERR wrong number of arguments for '<name>' command`
    WrongArity(&'static str),
    /// `ERR syntax error`
    Syntax,
    /// `ERR value is not an integer or out of range`
    NotAnInteger,
    /// `ERR invalid expire time in '<name>' command`
    InvalidExpire(&'static str),
    /// Any other error, its whole text (code first).
    Other(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown(args) => {
                write!(
                    f,
                    "ERR unknown command '{}', with args beginning with: ",
                    lossy(&args[0], 128)
                )?;
                // As Redis: quoted arguments, each followed by a space, until 128 bytes.
                let mut written = 0;
                for arg in &args[1..] {
                    if written >= 128 {
                        break;
                    }
                    let shown = lossy(arg, 128 - written);
                    written += shown.len() + 3;
                    write!(f, "'{shown}' ")?;
                }
                Ok(())
            }
            CommandError::UnknownSubcommand(container, sub) => write!(
                f,
                "ERR unknown subcommand '{}'. Try {} HELP.",
                lossy(sub, 128),
                container.to_ascii_uppercase()
            ),
            CommandError::WrongArity(name) => {
                write!(f, "ERR wrong number of arguments for '{name}' command")
            }
            CommandError::Syntax => f.write_str("ERR syntax error"),
            CommandError::NotAnInteger => {
                f.write_str("ERR value is not an integer or out of range")
            }
            CommandError::InvalidExpire(name) => {
                write!(f, "ERR invalid expire time in '{name}' command")
            }
            CommandError::Other(text) => f.write_str(text),
        }
    }
}

impl CommandError {
    /// Whether Redis refuses it before the command runs, given the request's `args`
    /// (name first): an unknown command or subcommand, or a number of arguments the
    /// table's arity refuses. Such a request is not queued in a `MULTI` block, and makes
    /// `EXEC` abort. The other errors are the command's own, answered when it runs
    /// (`MSET a 1 b`, whose arity the table allows, is refused by `MSET` itself).
    pub fn is_refused_before_running(&self, args: &[Bytes]) -> bool {
        match self {
            CommandError::Unknown(_) | CommandError::UnknownSubcommand(..) => true,
            CommandError::WrongArity(name) => {
                name.contains('|')
                    || args
                        .first()
                        .and_then(|n| lookup(n))
                        .is_none_or(|spec| !spec.accepts(args.len()))
            }
            _ => false,
        }
    }
}

fn lossy(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// `SET`'s condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `NX`: only if the key holds nothing.
    IfAbsent,
    /// `XX`: only if it holds a value.
    IfPresent,
}

/// `EXPIRE`'s conditions (`NX XX GT LT`): each one given must hold, checked in that
/// order as Redis does (`XX LT` on a key without a deadline fails at `XX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireConditions {
    /// `NX`: only if the key has no deadline.
    pub nx: bool,
    /// `XX`: only if it has one.
    pub xx: bool,
    /// `GT`: only if the new deadline is later (no deadline counts as infinite).
    pub gt: bool,
    /// `LT`: only if it is sooner (no deadline counts as infinite).
    pub lt: bool,
}

/// When an `EXPIRE` family command sets a key to expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Milliseconds from now.
    In(i64),
    /// Milliseconds since the Unix epoch.
    At(i64),
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `PING [message]`
    Ping(Option<Bytes>),
    /// `ECHO message`
    Echo(Bytes),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`
    Hello {
        /// The version asked for.
        protocol: Option<Protocol>,
        /// User and password.
        auth: Option<(Bytes, Bytes)>,
        /// The connection's new name.
        name: Option<Bytes>,
    },
    /// `AUTH [user] password`
    Auth {
        /// The user (only `default` exists).
        user: Option<Bytes>,
        /// The password.
        password: Bytes,
    },
    /// `SELECT index` (only 0 exists).
    Select(i64),
    /// `QUIT`
    Quit,
    /// `RESET`
    Reset,
    /// `CLIENT SETNAME name`
    ClientSetName(Bytes),
    /// `CLIENT GETNAME`
    ClientGetName,
    /// `CLIENT ID`
    ClientId,
    /// `CLIENT SETINFO attr value` (accepted, ignored).
    ClientSetInfo,
    /// `CLIENT LIST` (`TYPE normal` accepted).
    ClientList,
    /// `COMMAND`: every command's info.
    CommandAll,
    /// `COMMAND COUNT`
    CommandCount,
    /// `COMMAND DOCS [name ...]`
    CommandDocs(Vec<Bytes>),
    /// `COMMAND INFO [name ...]`
    CommandInfo(Vec<Bytes>),
    /// `CONFIG GET pattern ...`
    ConfigGet(Vec<Bytes>),
    /// `INFO [section ...]`
    Info(Vec<Bytes>),
    /// `DBSIZE`
    DbSize,
    /// `TIME`
    Time,
    /// `FLUSHDB` and `FLUSHALL` (`[ASYNC|SYNC]` accepted).
    Flush,
    /// `GET key`
    Get(Bytes),
    /// `SET`, `SETEX`, `PSETEX`, `GETSET`.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// `NX` or `XX`.
        condition: Option<Condition>,
        /// The deadline (`Remove` unless `EX PX EXAT PXAT KEEPTTL`).
        ttl: TtlUpdate,
        /// `GET`: answer the old value.
        get: bool,
    },
    /// `SETNX key value`
    SetNx(Bytes, Bytes),
    /// `GETDEL key`
    GetDel(Bytes),
    /// `MGET key ...`
    MGet(Vec<Bytes>),
    /// `MSET key value ...`
    MSet(Vec<(Bytes, Bytes)>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`.
    IncrBy(Bytes, i64),
    /// `APPEND key value`
    Append(Bytes, Bytes),
    /// `STRLEN key`
    StrLen(Bytes),
    /// `DEL` and `UNLINK`.
    Del(Vec<Bytes>),
    /// `EXISTS key ...`
    Exists(Vec<Bytes>),
    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (a deadline already past deletes).
    Expire {
        /// The key.
        key: Bytes,
        /// When.
        deadline: Deadline,
        /// `NX XX GT LT`.
        conditions: ExpireConditions,
    },
    /// `TTL` (seconds) and `PTTL` (milliseconds).
    Ttl {
        /// The key.
        key: Bytes,
        /// Whether in milliseconds.
        millis: bool,
    },
    /// `EXPIRETIME` (seconds) and `PEXPIRETIME` (milliseconds).
    ExpireTime {
        /// The key.
        key: Bytes,
        /// Whether in milliseconds.
        millis: bool,
    },
    /// `PERSIST key`
    Persist(Bytes),
    /// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`
    GetEx {
        /// The key.
        key: Bytes,
        /// The new deadline, if any option was given; a value that is not a valid time is
        /// refused only for a key that exists, since Redis 7 checks it after the lookup
        /// (`GETEX missing EX 0` answers nil).
        ttl: Result<Option<TtlUpdate>, CommandError>,
    },
    /// `MSETNX key value ...`
    MSetNx(Vec<(Bytes, Bytes)>),
    /// `INCRBYFLOAT key increment`
    IncrByFloat(Bytes, LongDouble),
    /// `GETRANGE key start end`
    GetRange(Bytes, i64, i64),
    /// `SETRANGE key offset value`
    SetRange(Bytes, usize, Bytes),
    /// `RENAME` and `RENAMENX`.
    Rename {
        /// The key renamed.
        from: Bytes,
        /// Its new name.
        to: Bytes,
        /// `RENAMENX`: only if `to` holds nothing.
        only_if_absent: bool,
    },
    /// `RANDOMKEY`
    RandomKey,
    /// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`
    Scan {
        /// Where to go on from (0: the start).
        cursor: u64,
        /// Only keys matching this glob.
        pattern: Option<Bytes>,
        /// About how many keys to look at.
        count: usize,
        /// Only keys of this type (`string` is every key).
        kind: Option<Bytes>,
    },
    /// `TYPE key`
    Type(Bytes),
    /// `KEYS pattern`
    Keys(Bytes),
    /// `MULTI`
    Multi,
    /// `EXEC`
    Exec,
    /// `DISCARD`
    Discard,
    /// `WATCH key ...`
    Watch(Vec<Bytes>),
    /// `UNWATCH`
    Unwatch,
    /// `BGREWRITEAOF`: compacts the store's log, in the background.
    RewriteLog,
    /// `SAVE`: every write so far made durable.
    Save,
}

/// Parses a request (name first; an empty one is an error) into a [`Command`] and its table entry.
///
/// # Errors
///
/// A [`CommandError`] whose text is Redis's reply: unknown command or subcommand, wrong
/// number of arguments, syntax error, a value that is not an integer, ...
///
/// ```
/// use kv_server::command::{parse, Command};
/// let args: Vec<bytes::Bytes> = vec!["get".into(), "k".into()];
/// assert_eq!(parse(&args).unwrap().0, Command::Get("k".into()));
/// let args: Vec<bytes::Bytes> = vec!["GET".into()];
/// assert_eq!(
///     parse(&args).unwrap_err().to_string(),
///     "ERR wrong number of arguments for 'get' command"
/// );
/// ```
pub fn parse(args: &[Bytes]) -> Result<(Command, &'static Spec), CommandError> {
    let Some(name) = args.first() else {
        // The decoder never yields one; a caller building requests might.
        return Err(CommandError::Other("ERR empty request".into()));
    };
    let spec = lookup(name).ok_or_else(|| CommandError::Unknown(args.to_vec()))?;
    if !spec.accepts(args.len()) {
        return Err(CommandError::WrongArity(spec.name));
    }
    let a = &args[1..];
    let key = || a[0].clone();
    let command = match spec.name {
        "ping" => match a {
            [] => Command::Ping(None),
            [message] => Command::Ping(Some(message.clone())),
            _ => return Err(CommandError::WrongArity(spec.name)),
        },
        "echo" => Command::Echo(key()),
        "hello" => parse_hello(a)?,
        "auth" => match a {
            [password] => Command::Auth {
                user: None,
                password: password.clone(),
            },
            [user, password] => Command::Auth {
                user: Some(user.clone()),
                password: password.clone(),
            },
            _ => return Err(CommandError::Syntax),
        },
        "select" => {
            // Redis reads the index as a C `int`.
            let index = integer(&a[0])?;
            if i32::try_from(index).is_err() {
                return Err(CommandError::Other(
                    "ERR value is out of range, value must between -2147483648 and 2147483647"
                        .into(),
                ));
            }
            Command::Select(index)
        }
        "quit" => Command::Quit,
        "reset" => Command::Reset,
        "client" => return parse_sub("client", args),
        "command" if a.is_empty() => Command::CommandAll,
        "command" => return parse_sub("command", args),
        "config" => return parse_sub("config", args),
        "info" => Command::Info(a.to_vec()),
        "dbsize" => Command::DbSize,
        "time" => Command::Time,
        "flushdb" | "flushall" => match a {
            [] => Command::Flush,
            [mode] if is(mode, "async") || is(mode, "sync") => Command::Flush,
            _ => return Err(CommandError::Syntax),
        },
        "get" => Command::Get(key()),
        "set" => parse_set(a)?,
        "setnx" => Command::SetNx(key(), a[1].clone()),
        "setex" | "psetex" => {
            let unit_ms = if spec.name == "setex" { 1000 } else { 1 };
            Command::Set {
                key: key(),
                value: a[2].clone(),
                condition: None,
                ttl: set_deadline(integer(&a[1])?, unit_ms, false, spec.name)?,
                get: false,
            }
        }
        "getset" => Command::Set {
            key: key(),
            value: a[1].clone(),
            condition: None,
            ttl: TtlUpdate::Remove,
            get: true,
        },
        "getdel" => Command::GetDel(key()),
        "mget" => Command::MGet(a.to_vec()),
        "mset" => {
            if !a.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity(spec.name));
            }
            Command::MSet(a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
        }
        "incr" => Command::IncrBy(key(), 1),
        "decr" => Command::IncrBy(key(), -1),
        "incrby" => Command::IncrBy(key(), integer(&a[1])?),
        "decrby" => Command::IncrBy(
            key(),
            integer(&a[1])?
                .checked_neg()
                .ok_or_else(|| CommandError::Other("ERR decrement would overflow".into()))?,
        ),
        "append" => Command::Append(key(), a[1].clone()),
        "strlen" => Command::StrLen(key()),
        "del" | "unlink" => Command::Del(a.to_vec()),
        "exists" => Command::Exists(a.to_vec()),
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            // Redis reads the options before the time: `EXPIRE k x FOO` is about FOO.
            let conditions = parse_expire_conditions(&a[2..])?;
            let n = integer(&a[1])?;
            let invalid = || CommandError::InvalidExpire(spec.name);
            let millis = if spec.name.starts_with('p') {
                n
            } else {
                n.checked_mul(1000).ok_or_else(invalid)?
            };
            // As Redis: a relative deadline must not overflow once added to now (negative
            // ones are allowed: they delete).
            if !spec.name.ends_with("at") {
                millis.checked_add(now_millis()).ok_or_else(invalid)?;
            }
            Command::Expire {
                key: key(),
                deadline: if spec.name.ends_with("at") {
                    Deadline::At(millis)
                } else {
                    Deadline::In(millis)
                },
                conditions,
            }
        }
        "expiretime" | "pexpiretime" => Command::ExpireTime {
            key: key(),
            millis: spec.name == "pexpiretime",
        },
        "getex" => Command::GetEx {
            key: key(),
            ttl: parse_getex(&a[1..])?,
        },
        "msetnx" => {
            if !a.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity(spec.name));
            }
            Command::MSetNx(a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
        }
        "incrbyfloat" => Command::IncrByFloat(key(), float(&a[1])?),
        "getrange" => Command::GetRange(key(), integer(&a[1])?, integer(&a[2])?),
        "setrange" => {
            let offset = usize::try_from(integer(&a[1])?)
                .map_err(|_| CommandError::Other("ERR offset is out of range".into()))?;
            Command::SetRange(key(), offset, a[2].clone())
        }
        "rename" | "renamenx" => Command::Rename {
            from: key(),
            to: a[1].clone(),
            only_if_absent: spec.name == "renamenx",
        },
        "randomkey" => Command::RandomKey,
        "scan" => parse_scan(a)?,
        "ttl" | "pttl" => Command::Ttl {
            key: key(),
            millis: spec.name == "pttl",
        },
        "persist" => Command::Persist(key()),
        "type" => Command::Type(key()),
        "keys" => Command::Keys(key()),
        "multi" => Command::Multi,
        "exec" => Command::Exec,
        "discard" => Command::Discard,
        "watch" => Command::Watch(a.to_vec()),
        "unwatch" => Command::Unwatch,
        "bgrewriteaof" => Command::RewriteLog,
        "save" => Command::Save,
        _ => return Err(CommandError::Unknown(args.to_vec())),
    };
    Ok((command, spec))
}

fn parse_sub(
    container: &'static str,
    args: &[Bytes],
) -> Result<(Command, &'static Spec), CommandError> {
    let spec = lookup_sub(container, &args[1])
        .ok_or_else(|| CommandError::UnknownSubcommand(container, args[1].clone()))?;
    if !spec.accepts(args.len()) {
        return Err(CommandError::WrongArity(spec.name));
    }
    let a = &args[2..];
    let command = match spec.name {
        "client|setname" => {
            check_client_name(&a[0])?;
            Command::ClientSetName(a[0].clone())
        }
        "client|getname" => Command::ClientGetName,
        "client|id" => Command::ClientId,
        "client|setinfo" => Command::ClientSetInfo,
        "client|list" => match a {
            [] => Command::ClientList,
            [option, kind] if is(option, "type") && is(kind, "normal") => Command::ClientList,
            _ => return Err(CommandError::Syntax),
        },
        "command|count" => Command::CommandCount,
        "command|docs" => Command::CommandDocs(a.to_vec()),
        "command|info" => Command::CommandInfo(a.to_vec()),
        "config|get" => Command::ConfigGet(a.to_vec()),
        _ => return Err(CommandError::UnknownSubcommand(container, args[1].clone())),
    };
    Ok((command, spec))
}

/// Refuses a connection name that would break `CLIENT LIST`'s format, as Redis does
/// (`CLIENT SETNAME`, `HELLO ... SETNAME`).
///
/// # Errors
///
/// `ERR Client names cannot contain spaces, newlines or special characters.`
pub fn check_client_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().any(|&b| b <= b' ' || b > b'~') {
        return Err(CommandError::Other(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        ));
    }
    Ok(())
}

fn parse_hello(a: &[Bytes]) -> Result<Command, CommandError> {
    let Some((version, mut rest)) = a.split_first() else {
        return Ok(Command::Hello {
            protocol: None,
            auth: None,
            name: None,
        });
    };
    let protocol = match integer(version).map_err(|_| {
        CommandError::Other("ERR Protocol version is not an integer or out of range".into())
    })? {
        2 => Protocol::Resp2,
        3 => Protocol::Resp3,
        _ => {
            return Err(CommandError::Other(
                "NOPROTO unsupported protocol version".into(),
            ))
        }
    };
    let (mut auth, mut name) = (None, None);
    while let Some((option, tail)) = rest.split_first() {
        match tail {
            [user, password, more @ ..] if is(option, "auth") => {
                auth = Some((user.clone(), password.clone()));
                rest = more;
            }
            [new_name, more @ ..] if is(option, "setname") => {
                name = Some(new_name.clone());
                rest = more;
            }
            _ => {
                return Err(CommandError::Other(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    lossy(option, 128)
                )))
            }
        }
    }
    Ok(Command::Hello {
        protocol: Some(protocol),
        auth,
        name,
    })
}

fn parse_set(a: &[Bytes]) -> Result<Command, CommandError> {
    let (mut condition, mut expiry, mut get) = (None, None, false);
    let mut options = a[2..].iter();
    while let Some(option) = options.next() {
        if expiry_option(option, Expiry::KeepTtl, &mut options, &mut expiry)? {
            continue;
        }
        let new_condition = if is(option, "nx") {
            Condition::IfAbsent
        } else if is(option, "xx") {
            Condition::IfPresent
        } else if is(option, "get") {
            get = true;
            continue;
        } else {
            return Err(CommandError::Syntax);
        };
        if condition.is_some_and(|c| c != new_condition) {
            return Err(CommandError::Syntax);
        }
        condition = Some(new_condition);
    }
    Ok(Command::Set {
        key: a[0].clone(),
        value: a[1].clone(),
        condition,
        ttl: expiry_update(expiry, "set")?.unwrap_or(TtlUpdate::Remove),
        get,
    })
}

/// An expiry option of `SET` or `GETEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Ex,
    Px,
    ExAt,
    PxAt,
    /// `SET`'s `KEEPTTL`.
    KeepTtl,
    /// `GETEX`'s `PERSIST`.
    Persist,
}

/// Reads `option` into `chosen` if it is an expiry option (`EX PX EXAT PXAT`, or `own`:
/// `KEEPTTL` for `SET`, `PERSIST` for `GETEX`), taking its value from `rest`; `false`
/// if it is none. As Redis 7 reads them: the same option again replaces the value
/// (`EX 10 EX 20` expires in 20 s), two different ones are a syntax error, and the value
/// is only checked once every option is read ([`expiry_update`]).
fn expiry_option<'a>(
    option: &[u8],
    own: Expiry,
    rest: &mut std::slice::Iter<'a, Bytes>,
    chosen: &mut Option<(Expiry, Option<&'a Bytes>)>,
) -> Result<bool, CommandError> {
    let kind = if is(option, "ex") {
        Expiry::Ex
    } else if is(option, "px") {
        Expiry::Px
    } else if is(option, "exat") {
        Expiry::ExAt
    } else if is(option, "pxat") {
        Expiry::PxAt
    } else if (own == Expiry::KeepTtl && is(option, "keepttl"))
        || (own == Expiry::Persist && is(option, "persist"))
    {
        own
    } else {
        return Ok(false);
    };
    if chosen.is_some_and(|(k, _)| k != kind) {
        return Err(CommandError::Syntax);
    }
    let value = match kind {
        Expiry::KeepTtl | Expiry::Persist => None,
        _ => Some(rest.next().ok_or(CommandError::Syntax)?),
    };
    *chosen = Some((kind, value));
    Ok(true)
}

/// The deadline change the expiry option chosen makes (`None`: none chosen).
fn expiry_update(
    chosen: Option<(Expiry, Option<&Bytes>)>,
    name: &'static str,
) -> Result<Option<TtlUpdate>, CommandError> {
    let Some((kind, value)) = chosen else {
        return Ok(None);
    };
    let (unit_ms, absolute) = match kind {
        Expiry::KeepTtl => return Ok(Some(TtlUpdate::Keep)),
        Expiry::Persist => return Ok(Some(TtlUpdate::Remove)),
        Expiry::Ex => (1000, false),
        Expiry::Px => (1, false),
        Expiry::ExAt => (1000, true),
        Expiry::PxAt => (1, true),
    };
    let n = integer(value.ok_or(CommandError::Syntax)?)?;
    set_deadline(n, unit_ms, absolute, name).map(Some)
}

fn parse_scan(a: &[Bytes]) -> Result<Command, CommandError> {
    let cursor = std::str::from_utf8(&a[0])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| CommandError::Other("ERR invalid cursor".into()))?;
    let (mut pattern, mut count, mut kind) = (None, 10, None);
    let mut options = a[1..].iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or(CommandError::Syntax)?;
        if is(option, "match") {
            pattern = Some(value.clone());
        } else if is(option, "count") {
            count = usize::try_from(integer(value)?).map_err(|_| CommandError::Syntax)?;
            if count < 1 {
                return Err(CommandError::Syntax);
            }
        } else if is(option, "type") {
            kind = Some(value.clone());
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        kind,
    })
}

/// `GETEX`'s options: a syntax error refuses the command; a bad value is kept for the
/// execution to answer once it knows the key exists.
fn parse_getex(a: &[Bytes]) -> Result<Result<Option<TtlUpdate>, CommandError>, CommandError> {
    let mut expiry = None;
    let mut options = a.iter();
    while let Some(option) = options.next() {
        if !expiry_option(option, Expiry::Persist, &mut options, &mut expiry)? {
            return Err(CommandError::Syntax);
        }
    }
    Ok(expiry_update(expiry, "getex"))
}

fn parse_expire_conditions(a: &[Bytes]) -> Result<ExpireConditions, CommandError> {
    let mut conditions = ExpireConditions::default();
    for option in a {
        let flag = if is(option, "nx") {
            &mut conditions.nx
        } else if is(option, "xx") {
            &mut conditions.xx
        } else if is(option, "gt") {
            &mut conditions.gt
        } else if is(option, "lt") {
            &mut conditions.lt
        } else {
            return Err(CommandError::Other(format!(
                "ERR Unsupported option {}",
                lossy(option, 128)
            )));
        };
        *flag = true;
    }
    let ExpireConditions { nx, xx, gt, lt } = conditions;
    if nx && (xx || gt || lt) {
        return Err(CommandError::Other(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if gt && lt {
        return Err(CommandError::Other(
            "ERR GT and LT options at the same time are not compatible".into(),
        ));
    }
    Ok(conditions)
}

/// The deadline `SET`, `SETEX`, `PSETEX` or `GETEX` sets: `n` units of `unit_ms`
/// milliseconds, from now or (`absolute`) from the epoch. As in Redis, it must be positive
/// and fit 64-bit milliseconds since the epoch, once converted and (relative) added to
/// now: otherwise `ERR invalid expire time in '<name>' command`.
fn set_deadline(
    n: i64,
    unit_ms: i64,
    absolute: bool,
    name: &'static str,
) -> Result<TtlUpdate, CommandError> {
    let invalid = || CommandError::InvalidExpire(name);
    let ms = n
        .checked_mul(unit_ms)
        .filter(|&ms| ms > 0)
        .ok_or_else(invalid)?;
    if absolute {
        return Ok(TtlUpdate::At(UNIX_EPOCH + Duration::from_millis(ms as u64)));
    }
    ms.checked_add(now_millis()).ok_or_else(invalid)?;
    Ok(TtlUpdate::After(Duration::from_millis(ms as u64)))
}

/// Milliseconds since the Unix epoch, as Redis's deadlines count them.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether `arg` is `word`, in any case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A signed 64-bit decimal integer, as Redis reads one (no spaces, no `+`).
///
/// # Errors
///
/// [`CommandError::NotAnInteger`].
pub fn integer(arg: &[u8]) -> Result<i64, CommandError> {
    let text = std::str::from_utf8(arg).map_err(|_| CommandError::NotAnInteger)?;
    if text.starts_with('+') || (text.len() > 1 && text.starts_with('0')) || text.starts_with("-0")
    {
        return Err(CommandError::NotAnInteger);
    }
    text.parse().map_err(|_| CommandError::NotAnInteger)
}

/// A number as Redis reads one for `INCRBYFLOAT` (its `string2ld`).
///
/// # Errors
///
/// `ERR value is not a valid float`.
pub fn float(arg: &[u8]) -> Result<LongDouble, CommandError> {
    LongDouble::parse(arg)
        .ok_or_else(|| CommandError::Other("ERR value is not a valid float".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, String> {
        let args: Vec<Bytes> = line.split(' ').map(|a| Bytes::from(a.to_owned())).collect();
        parse(&args).map(|(c, _)| c).map_err(|e| e.to_string())
    }

    #[test]
    fn redis_error_strings() {
        assert_eq!(
            parse_str("get").unwrap_err(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            parse_str("foo a b").unwrap_err(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            parse_str("foo").unwrap_err(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(parse_str("set k v nx xx").unwrap_err(), "ERR syntax error");
        assert_eq!(
            parse_str("set k v ex 1 px 2").unwrap_err(),
            "ERR syntax error"
        );
        assert_eq!(parse_str("set k v ex").unwrap_err(), "ERR syntax error");
        assert_eq!(
            parse_str("set k v ex 0").unwrap_err(),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            parse_str("incrby k x").unwrap_err(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            parse_str("incrby k 01").unwrap_err(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            parse_str("mset a 1 b").unwrap_err(),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            parse_str("client nope").unwrap_err(),
            "ERR unknown subcommand 'nope'. Try CLIENT HELP."
        );
        assert_eq!(
            parse_str("client setname").unwrap_err(),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            parse_str("hello 4").unwrap_err(),
            "NOPROTO unsupported protocol version"
        );
        assert_eq!(
            parse_str("expire k 10 nx xx").unwrap_err(),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            parse_str("lpush l a").unwrap_err(),
            "ERR unknown command 'lpush', with args beginning with: 'l' 'a' "
        );
    }

    #[test]
    fn set_options() {
        assert_eq!(
            parse_str("SET k v NX GET PX 1500").unwrap(),
            Command::Set {
                key: "k".into(),
                value: "v".into(),
                condition: Some(Condition::IfAbsent),
                ttl: TtlUpdate::After(Duration::from_millis(1500)),
                get: true,
            }
        );
        assert!(matches!(
            parse_str("set k v keepttl").unwrap(),
            Command::Set {
                ttl: TtlUpdate::Keep,
                ..
            }
        ));
        assert!(matches!(
            parse_str("set k v exat 10").unwrap(),
            Command::Set {
                ttl: TtlUpdate::At(_),
                ..
            }
        ));
        assert_eq!(
            parse_str("decrby k -9223372036854775808").unwrap_err(),
            "ERR decrement would overflow"
        );
    }

    #[test]
    fn every_command_has_a_parse() {
        for spec in COMMANDS {
            let mut args: Vec<Bytes> = vec![Bytes::from(spec.name)];
            while !spec.accepts(args.len()) {
                args.push(Bytes::from("1"));
            }
            if let Err(CommandError::Unknown(_)) = parse(&args) {
                panic!("{} is in the table but not parsed", spec.name);
            }
        }
    }
}
