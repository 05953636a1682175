//! What each command of the [table](crate::command::COMMANDS) is for and how it is
//! written: the shell's `HELP <command>` (redis-cli keeps such a table of its own).

/// One command's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    /// The table's name (`client|setname` for a subcommand).
    pub name: &'static str,
    /// How it is written, arguments after the name (`key value [NX|XX]`).
    pub arguments: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// Redis's group (`string`, `generic`, `connection`, `server`, `transactions`).
    pub group: &'static str,
}

impl Doc {
    /// The command as typed: `CLIENT SETNAME` for `client|setname`.
    pub fn title(&self) -> String {
        self.name.replace('|', " ").to_ascii_uppercase()
    }

    /// The whole syntax line: `SET key value [NX|XX] ...`.
    pub fn syntax(&self) -> String {
        if self.arguments.is_empty() {
            self.title()
        } else {
            format!("{} {}", self.title(), self.arguments)
        }
    }
}

const fn doc(
    name: &'static str,
    arguments: &'static str,
    summary: &'static str,
    group: &'static str,
) -> Doc {
    Doc {
        name,
        arguments,
        summary,
        group,
    }
}

const CONN: &str = "connection";
const SERVER: &str = "server";
const STRING: &str = "string";
const KEYS: &str = "generic";
const TX: &str = "transactions";

/// Every command and subcommand of the table, in the table's order.
pub const DOCS: &[Doc] = &[
    doc("ping", "[message]", "Answers PONG, or the message.", CONN),
    doc("echo", "message", "Answers the message.", CONN),
    doc(
        "hello",
        "[protover [AUTH username password] [SETNAME clientname]]",
        "Authenticates, names the connection, picks RESP2 or RESP3; answers the server's facts.",
        CONN,
    ),
    doc("auth", "[username] password", "Authenticates the connection.", CONN),
    doc("select", "index", "Selects a database: only 0 exists.", CONN),
    doc("quit", "", "Closes the connection (the shell: leaves it).", CONN),
    doc("reset", "", "Resets the connection's state (protocol, name, MULTI, WATCH, AUTH).", CONN),
    doc("client", "subcommand [arguments ...]", "Connection commands: SETNAME GETNAME ID SETINFO LIST.", CONN),
    doc("command", "[subcommand [arguments ...]]", "Every command's details; COUNT, DOCS, INFO.", SERVER),
    doc("config", "subcommand [arguments ...]", "Server settings: GET.", SERVER),
    doc(
        "info",
        "[section [section ...]]",
        "Figures of the server and the store: server, clients, memory, persistence, stats, keyspace.",
        SERVER,
    ),
    doc("dbsize", "", "The number of keys.", SERVER),
    doc("time", "", "The server's time: seconds and microseconds.", SERVER),
    doc("flushdb", "[ASYNC|SYNC]", "Deletes every key.", SERVER),
    doc("flushall", "[ASYNC|SYNC]", "Deletes every key.", SERVER),
    doc("get", "key", "The value of a key, or nil.", STRING),
    doc(
        "set",
        "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]",
        "Sets a key's value (the shell also calls it PUT).",
        STRING,
    ),
    doc("setnx", "key value", "Sets a key only if it holds nothing; answers 1 or 0.", STRING),
    doc("setex", "key seconds value", "Sets a key that expires in so many seconds.", STRING),
    doc("psetex", "key milliseconds value", "Sets a key that expires in so many milliseconds.", STRING),
    doc("getset", "key value", "Sets a key; answers its old value.", STRING),
    doc("getdel", "key", "Deletes a key; answers its value.", STRING),
    doc(
        "getex",
        "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]",
        "Answers a key's value and changes its expiry.",
        STRING,
    ),
    doc("msetnx", "key value [key value ...]", "Sets keys only if none holds anything; answers 1 or 0.", STRING),
    doc("incrbyfloat", "key increment", "Adds a decimal number to a key's value.", STRING),
    doc("getrange", "key start end", "A substring of a key's value (negative: from the end).", STRING),
    doc("setrange", "key offset value", "Overwrites part of a key's value; answers its new length.", STRING),
    doc("mget", "key [key ...]", "The values of keys (nil for each absent one).", STRING),
    doc("mset", "key value [key value ...]", "Sets keys, all at once.", STRING),
    doc("incr", "key", "Adds 1 to a key's integer value (absent: 0).", STRING),
    doc("decr", "key", "Subtracts 1 from a key's integer value.", STRING),
    doc("incrby", "key increment", "Adds an integer to a key's integer value.", STRING),
    doc("decrby", "key decrement", "Subtracts an integer from a key's integer value.", STRING),
    doc("append", "key value", "Appends to a key's value; answers its new length.", STRING),
    doc("strlen", "key", "The length of a key's value.", STRING),
    doc("del", "key [key ...]", "Deletes keys; answers how many existed.", KEYS),
    doc("unlink", "key [key ...]", "Deletes keys; answers how many existed.", KEYS),
    doc("exists", "key [key ...]", "How many of the keys exist.", KEYS),
    doc("expire", "key seconds [NX|XX|GT|LT]", "Sets a key to expire in so many seconds.", KEYS),
    doc("pexpire", "key milliseconds [NX|XX|GT|LT]", "Sets a key to expire in so many milliseconds.", KEYS),
    doc("expireat", "key unix-time-seconds [NX|XX|GT|LT]", "Sets a key to expire at a Unix time.", KEYS),
    doc(
        "pexpireat",
        "key unix-time-milliseconds [NX|XX|GT|LT]",
        "Sets a key to expire at a Unix time in milliseconds.",
        KEYS,
    ),
    doc("expiretime", "key", "When a key expires, in Unix seconds (-1: never, -2: absent).", KEYS),
    doc("pexpiretime", "key", "When a key expires, in Unix milliseconds.", KEYS),
    doc("ttl", "key", "Seconds left before a key expires (-1: never, -2: absent).", KEYS),
    doc("pttl", "key", "Milliseconds left before a key expires.", KEYS),
    doc("persist", "key", "Removes a key's expiry.", KEYS),
    doc("type", "key", "A key's type: string, or none.", KEYS),
    doc("keys", "pattern", "Every key matching a glob pattern.", KEYS),
    doc("rename", "key newkey", "Renames a key.", KEYS),
    doc("renamenx", "key newkey", "Renames a key only if the new name holds nothing.", KEYS),
    doc("randomkey", "", "A random key, or nil.", KEYS),
    doc(
        "scan",
        "cursor [MATCH pattern] [COUNT count] [TYPE type]",
        "Walks the keys a few at a time; answers the next cursor (0: done) and keys.",
        KEYS,
    ),
    doc("multi", "", "Starts a transaction: the commands after it are queued.", TX),
    doc("exec", "", "Runs the queued commands as one atomic batch (nil if a watched key changed).", TX),
    doc("discard", "", "Drops the queued commands.", TX),
    doc("watch", "key [key ...]", "Makes the next EXEC fail if one of these keys changes.", TX),
    doc("unwatch", "", "Forgets the watched keys.", TX),
    doc(
        "bgrewriteaof",
        "",
        "Compacts the store's log down to the live data, in the background.",
        SERVER,
    ),
    doc("save", "", "Makes every write so far durable (answers once on disk).", SERVER),
    doc("client|setname", "connection-name", "Names the connection.", CONN),
    doc("client|getname", "", "The connection's name, or nil.", CONN),
    doc("client|id", "", "The connection's id.", CONN),
    doc("client|setinfo", "LIB-NAME name|LIB-VER version", "Accepted and ignored.", CONN),
    doc("client|list", "[TYPE NORMAL]", "One line per connection.", CONN),
    doc("command|count", "", "The number of commands.", SERVER),
    doc("command|docs", "[command-name ...]", "Commands' documentation (empty for now).", SERVER),
    doc("command|info", "[command-name ...]", "Commands' details.", SERVER),
    doc("config|get", "parameter [parameter ...]", "Settings matching glob patterns.", SERVER),
];

/// The documentation of a command: `get`, `client setname` or `client|setname`, in any case.
pub fn lookup(name: &str) -> Option<&'static Doc> {
    let wanted = name.split_whitespace().collect::<Vec<_>>().join("|");
    DOCS.iter()
        .find(|doc| doc.name.eq_ignore_ascii_case(&wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{COMMANDS, SUBCOMMANDS};

    #[test]
    fn every_command_of_the_table_is_documented_once() {
        for spec in COMMANDS.iter().chain(SUBCOMMANDS) {
            let docs = DOCS.iter().filter(|d| d.name == spec.name).count();
            assert_eq!(docs, 1, "{} has {docs} docs", spec.name);
        }
        assert_eq!(
            DOCS.len(),
            COMMANDS.len() + SUBCOMMANDS.len(),
            "no doc of a missing command"
        );
    }

    #[test]
    fn lookup_takes_any_case_and_subcommands_with_a_space() {
        assert_eq!(lookup("GET").map(|d| d.name), Some("get"));
        assert_eq!(
            lookup("client  SetName").map(|d| d.syntax()),
            Some("CLIENT SETNAME connection-name".into())
        );
        assert_eq!(lookup("config|get").map(|d| d.group), Some("server"));
        assert!(lookup("frob").is_none());
    }
}
