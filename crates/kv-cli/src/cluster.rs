//! `kv cluster`: forms a cluster of `kv serve --node-id` nodes and shows its state, through
//! each node's Redis-protocol port (`KVRAFT ID`, `KVRAFT INIT`, `INFO replication`).

use std::time::Duration;

use redis::{ConnectionLike, Value};

use crate::cli::ClusterCommand;
use crate::failure::{Failure, Outcome};

/// How long reaching a node and its answer may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a `kv cluster` subcommand.
pub fn run(command: &ClusterCommand) -> Outcome {
    match command {
        ClusterCommand::Init { addrs, password } => init(addrs, password.as_deref()),
        ClusterCommand::Status { addr, password } => {
            let info = ask(addr, password.as_deref(), &["INFO", "replication"])?;
            match info {
                Value::BulkString(text) => print!("{}", String::from_utf8_lossy(&text)),
                Value::VerbatimString { text, .. } => print!("{text}"),
                other => return Err(Failure::runtime(format!("{addr} answered {other:?}"))),
            }
            Ok(())
        }
    }
}

fn connect(addr: &str, password: Option<&str>) -> Result<redis::Connection, Failure> {
    let unreachable = |e: redis::RedisError| {
        Failure::runtime(format!(
            "cannot reach the node at {addr}: {e}; is `kv serve --node-id N --bind {addr}` running there?"
        ))
    };
    let client = redis::Client::open(format!("redis://{addr}/"))
        .map_err(|e| Failure::Usage(format!("{addr} is not a HOST:PORT address: {e}")))?;
    let mut connection = client
        .get_connection_with_timeout(TIMEOUT)
        .map_err(unreachable)?;
    connection
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    // As KV_REQUIREPASS, an empty password is none.
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        redis::cmd("AUTH")
            .arg(password)
            .exec(&mut connection)
            .map_err(|e| Failure::runtime(format!("{addr} refused the password: {e}")))?;
    }
    Ok(connection)
}

fn ask(addr: &str, password: Option<&str>, words: &[&str]) -> Result<Value, Failure> {
    let mut connection = connect(addr, password)?;
    let mut command = redis::Cmd::new();
    for word in words {
        command.arg(*word);
    }
    let value = connection
        .req_command(&command)
        .map_err(|e| Failure::runtime(format!("{addr}: {e}")))?;
    if let Value::ServerError(error) = &value {
        return Err(Failure::runtime(format!("{addr}: {error:?}")));
    }
    Ok(value)
}

fn init(addrs: &[String], password: Option<&str>) -> Outcome {
    let mut members = Vec::new();
    for addr in addrs {
        let Value::Array(parts) = ask(addr, password, &["KVRAFT", "ID"])? else {
            return Err(Failure::runtime(format!(
                "{addr} is not a replicated node: start it with `kv serve --node-id N`"
            )));
        };
        let (Some(Value::Int(id)), Some(Value::BulkString(raft))) = (parts.first(), parts.get(1))
        else {
            return Err(Failure::runtime(format!(
                "{addr} answered KVRAFT ID with {parts:?}"
            )));
        };
        if members.iter().any(|(other, _, _)| other == id) {
            return Err(Failure::Usage(format!(
                "two of the nodes given have the id {id}: each node needs an id of its own"
            )));
        }
        let member = kv_raft::NodeAddr {
            raft: String::from_utf8_lossy(raft).into_owned(),
            client: addr.clone(),
        };
        // Before any node is asked to change: nothing is initialized.
        member
            .check_reachable(*id as u64)
            .map_err(|e| Failure::Usage(format!("{addr}: {e}")))?;
        members.push((*id, member.raft, member.client));
    }
    let mut words = vec!["KVRAFT".to_string(), "INIT".to_string()];
    for (id, raft, client) in &members {
        words.extend([id.to_string(), raft.clone(), client.clone()]);
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    ask(&addrs[0], password, &words)?;
    for (id, raft, client) in &members {
        println!("node {id}: client {client}, raft {raft}");
    }
    println!("initialized a cluster of {} nodes", members.len());
    Ok(())
}
