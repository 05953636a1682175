//! `kv cluster`: forms a cluster of `kv serve --node-id` nodes, changes its membership and
//! shows its state, through each node's Redis-protocol port (`KVRAFT ID`, `KVRAFT INIT`,
//! `KVRAFT LEARNER`/`VOTER`/`REMOVE`, `INFO replication`). A membership change may be sent
//! to any member: a follower forwards it to the leader, as it does writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::{ConnectionLike, Value};

use crate::cli::{ClusterArgs, ClusterCommand};
use crate::failure::{Failure, Outcome};

/// How long reaching a node and its answer may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long `kv cluster add` waits for a learner whose applied index does not move before
/// it gives up (a learner receiving a snapshot applies nothing until it is installed).
const STALLED: Duration = Duration::from_secs(60);
/// How often a learner's progress is asked for.
const POLL: Duration = Duration::from_millis(200);
/// How long `kv cluster init` waits for every node to know the leader it elected.
const SETTLE: Duration = Duration::from_secs(30);
/// How often `kv cluster init` asks the nodes whether they know their leader.
const INIT_POLL: Duration = Duration::from_millis(50);

/// Runs a `kv cluster` subcommand.
pub fn run(args: &ClusterArgs) -> Outcome {
    let password = args.password.as_deref();
    match &args.command {
        ClusterCommand::Init { addrs } => init(addrs, password),
        ClusterCommand::Status { addr, json } => status(addr, password, *json),
        ClusterCommand::Add { member, new } => add(member, new, password),
        ClusterCommand::Remove { member, node_id } => remove(member, *node_id, password),
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
        .map_err(|e| {
            Failure::runtime(format!(
                "the node at {addr} did not answer {}: {e}; check that it is running and reachable (`kv cluster status {addr}`)",
                words.first().copied().unwrap_or_default()
            ))
        })?;
    if let Value::ServerError(error) = &value {
        return Err(Failure::runtime(format!(
            "{addr}: {} {}",
            error.code(),
            error.details().unwrap_or("")
        )));
    }
    Ok(value)
}

/// What a node says of itself (`KVRAFT ID`): its id and Raft address.
fn identify(addr: &str, password: Option<&str>) -> Result<(u64, String), Failure> {
    let not_a_node = || {
        Failure::runtime(format!(
            "{addr} is not a replicated node: start it with `kv serve --node-id N`"
        ))
    };
    let Value::Array(parts) = ask(addr, password, &["KVRAFT", "ID"]).map_err(|e| match e {
        // A single-node `kv serve` (or Redis) does not know the command.
        Failure::Runtime(m) if m.contains("unknown command") => not_a_node(),
        e => e,
    })?
    else {
        return Err(not_a_node());
    };
    match (parts.first(), parts.get(1)) {
        (Some(Value::Int(id)), Some(Value::BulkString(raft))) => Ok((
            u64::try_from(*id).map_err(|_| not_a_node())?,
            String::from_utf8_lossy(raft).into_owned(),
        )),
        _ => Err(Failure::runtime(format!(
            "{addr} answered KVRAFT ID with {parts:?}"
        ))),
    }
}

/// A member of a cluster, as `INFO replication` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    voter: bool,
    client: String,
    raft: String,
}

/// A node's `INFO replication`, read.
#[derive(Debug, Clone)]
struct Replication {
    /// The text as the node sent it.
    text: String,
    fields: BTreeMap<String, String>,
    members: BTreeMap<u64, Member>,
}

impl Replication {
    fn ask(addr: &str, password: Option<&str>) -> Result<Replication, Failure> {
        let text = match ask(addr, password, &["INFO", "replication"])? {
            Value::BulkString(text) => String::from_utf8_lossy(&text).into_owned(),
            Value::VerbatimString { text, .. } => text,
            other => return Err(Failure::runtime(format!("{addr} answered {other:?}"))),
        };
        let mut fields = BTreeMap::new();
        let mut members = BTreeMap::new();
        for (name, value) in text.lines().filter_map(|l| l.split_once(':')) {
            match name.strip_prefix("member_").map(str::parse::<u64>) {
                Some(Ok(id)) => {
                    let parts: BTreeMap<&str, &str> = value
                        .split(',')
                        .filter_map(|part| part.split_once('='))
                        .collect();
                    members.insert(
                        id,
                        Member {
                            voter: parts.get("kind") == Some(&"voter"),
                            client: parts.get("client").unwrap_or(&"").to_string(),
                            raft: parts.get("raft").unwrap_or(&"").to_string(),
                        },
                    );
                }
                _ => {
                    fields.insert(name.to_string(), value.to_string());
                }
            }
        }
        if !fields.contains_key("node_id") {
            return Err(Failure::runtime(format!(
                "{addr} is not a replicated node (its INFO has no replication section of one): start it with `kv serve --node-id N`"
            )));
        }
        Ok(Replication {
            text,
            fields,
            members,
        })
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.field(name).and_then(|v| v.parse().ok())
    }

    /// Whether the node knows of a cluster: it was initialized with one, or added to one.
    fn initialized(&self) -> bool {
        !self.members.is_empty()
    }

    /// The members, `id (voter, ADDR)` each.
    fn describe_members(&self) -> String {
        self.members
            .iter()
            .map(|(id, m)| {
                let kind = if m.voter { "voter" } else { "learner" };
                format!("{id} ({kind}, {})", m.client)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn to_json(&self) -> serde_json::Value {
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|(id, m)| {
                serde_json::json!({
                    "id": id,
                    "kind": if m.voter { "voter" } else { "learner" },
                    "client": m.client,
                    "raft": m.raft,
                })
            })
            .collect();
        serde_json::json!({
            "id": self.number("node_id"),
            "role": self.field("role"),
            "initialized": self.initialized(),
            "leader_id": self.number("leader_id"),
            "leader_addr": self.field("leader_addr"),
            "term": self.number("term"),
            "commit_index": self.number("commit_index"),
            "applied_index": self.number("applied_index"),
            "last_log_index": self.number("last_log_index"),
            "members": members,
        })
    }
}

/// What to do with a node that belongs to no cluster.
fn not_initialized(addr: &str) -> String {
    format!(
        "the node at {addr} is not initialized (a member of no cluster): form a cluster with \
         `kv cluster init ADDR1 ADDR2 ADDR3`, or add it to one with `kv cluster add MEMBER-ADDR {addr}`"
    )
}

fn status(addr: &str, password: Option<&str>, json: bool) -> Outcome {
    let replication = Replication::ask(addr, password)?;
    if json {
        println!("{}", replication.to_json());
    } else {
        print!("{}", replication.text);
    }
    if !replication.initialized() {
        eprintln!("kv: note: {}", not_initialized(addr));
    }
    Ok(())
}

fn init(addrs: &[String], password: Option<&str>) -> Outcome {
    let mut members: Vec<(u64, kv_raft::NodeAddr)> = Vec::new();
    // Every node is asked and checked before any is changed.
    for addr in addrs {
        let (id, raft) = identify(addr, password)?;
        if members.iter().any(|(other, _)| *other == id) {
            return Err(Failure::Usage(format!(
                "two of the nodes given have the id {id}: each node needs an id of its own"
            )));
        }
        let replication = Replication::ask(addr, password)?;
        if replication.initialized() {
            return Err(Failure::Usage(format!(
                "the node at {addr} (node {id}) is a member of a cluster already (members: {}): \
                 a cluster is initialized once, and a node belongs to one; give `kv cluster init` \
                 only new nodes, or add a new node to that cluster with `kv cluster add {addr} NEW-ADDR`; \
                 nothing was changed",
                replication.describe_members()
            )));
        }
        let member = kv_raft::NodeAddr {
            raft,
            client: addr.clone(),
        };
        member
            .check_reachable(id)
            .map_err(|e| Failure::Usage(format!("{addr}: {e}")))?;
        members.push((id, member));
    }
    let mut words = vec!["KVRAFT".to_string(), "INIT".to_string()];
    for (id, member) in &members {
        words.extend([id.to_string(), member.raft.clone(), member.client.clone()]);
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    ask(&addrs[0], password, &words)?;
    for (id, member) in &members {
        println!("node {id}: client {}, raft {}", member.client, member.raft);
    }
    let leader = wait_led(addrs, password)?;
    println!(
        "initialized a cluster of {} nodes; node {leader} leads",
        members.len()
    );
    Ok(())
}

/// Waits until every node at `addrs` knows it is a member and knows the same leader, with
/// its address, so that a write sent to any of them right after `kv cluster init` is taken
/// (a follower that knows no leader yet could only refuse it); the leader's id.
fn wait_led(addrs: &[String], password: Option<&str>) -> Result<u64, Failure> {
    let start = Instant::now();
    loop {
        let mut leaders = Vec::with_capacity(addrs.len());
        let mut last_error = None;
        for addr in addrs {
            // A node that does not answer now (a reply lost, a node busy electing) is
            // asked again: the cluster is formed already, and a rerun of init is refused.
            match Replication::ask(addr, password) {
                Ok(node) if node.initialized() && node.field("leader_addr").is_some() => {
                    leaders.extend(node.number("leader_id"));
                }
                Ok(_) => {}
                Err(Failure::Runtime(e) | Failure::Usage(e)) => last_error = Some(e),
                Err(_) => {}
            }
        }
        if leaders.len() == addrs.len() && leaders.iter().all(|l| *l == leaders[0]) {
            return Ok(leaders[0]);
        }
        if start.elapsed() > SETTLE {
            let why = last_error.map_or(String::new(), |e| format!(" (last: {e})"));
            return Err(Failure::runtime(format!(
                "the cluster was initialized, but after {}s not every node knows its \
                 leader{why}: check that the nodes reach one another's Raft addresses and \
                 share the cluster secret (`kv cluster status ADDR` on each)",
                SETTLE.as_secs()
            )));
        }
        std::thread::sleep(INIT_POLL);
    }
}

fn add(member: &str, new: &str, password: Option<&str>) -> Outcome {
    let (id, raft) = identify(new, password)?;
    let cluster = Replication::ask(member, password)?;
    if !cluster.initialized() {
        return Err(Failure::Usage(not_initialized(member)));
    }
    let caught_up_to = match cluster.members.get(&id) {
        Some(known) if known.voter => {
            return Err(Failure::Usage(format!(
            "node {id} is a voter of the cluster of {member} already (at {}); nothing was changed",
            known.client
        )))
        }
        // A learner already: an earlier `kv cluster add` stopped before making it a voter.
        Some(known) if known.client == new => {
            println!("node {id} ({new}) is a learner of the cluster already");
            cluster.number("commit_index").unwrap_or(0)
        }
        Some(known) => {
            return Err(Failure::Usage(format!(
                "the cluster of {member} has a node {id} already, at {}: each node needs an id of \
                 its own; start the new node with another --node-id and an empty --dir",
                known.client
            )))
        }
        None => {
            let joining = Replication::ask(new, password)?;
            if joining.initialized() {
                return Err(Failure::Usage(format!(
                    "the node at {new} (node {id}) is a member of a cluster already (members: {}): \
                     a node belongs to one cluster; remove it there (`kv cluster remove`) and \
                     start it again with an empty --dir; nothing was changed",
                    joining.describe_members()
                )));
            }
            let learner = ["KVRAFT", "LEARNER", &id.to_string(), &raft, new];
            let Value::Int(index) = ask(member, password, &learner)? else {
                return Err(Failure::runtime(format!(
                    "{member} answered KVRAFT LEARNER with something else than a log index"
                )));
            };
            println!("added node {id} ({new}, raft {raft}) as a learner");
            u64::try_from(index).unwrap_or(0)
        }
    };
    wait_caught_up(new, id, caught_up_to, password)?;
    println!("node {id} has caught up (applied up to log index {caught_up_to})");
    ask(member, password, &["KVRAFT", "VOTER", &id.to_string()])?;
    println!("node {id} is a voter");
    let now = Replication::ask(member, password)?;
    println!("members: {}", now.describe_members());
    Ok(())
}

/// Waits until node `id` at `addr` has applied the log up to `index`; fails when its
/// applied index stays still for [`STALLED`].
fn wait_caught_up(addr: &str, id: u64, index: u64, password: Option<&str>) -> Outcome {
    let mut applied = 0;
    let mut moved = Instant::now();
    loop {
        let now = Replication::ask(addr, password)?
            .number("applied_index")
            .unwrap_or(0);
        if now >= index {
            return Ok(());
        }
        if now > applied {
            applied = now;
            moved = Instant::now();
        } else if moved.elapsed() > STALLED {
            return Err(Failure::runtime(format!(
                "node {id} at {addr} has applied up to log index {applied} and made no progress \
                 for {}s (it needs {index}): it stays a learner; check that the leader reaches \
                 its Raft address and that they share the cluster secret, then run `kv cluster add` \
                 again, or take it out with `kv cluster remove MEMBER-ADDR {id}`",
                STALLED.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

fn remove(member: &str, id: u64, password: Option<&str>) -> Outcome {
    let cluster = Replication::ask(member, password)?;
    if !cluster.initialized() {
        return Err(Failure::Usage(not_initialized(member)));
    }
    let Some(removed) = cluster.members.get(&id) else {
        return Err(Failure::Usage(format!(
            "node {id} is not a member of the cluster of {member} (members: {}); nothing was changed",
            cluster.describe_members()
        )));
    };
    let voters = cluster.members.values().filter(|m| m.voter).count();
    if removed.voter && voters == 1 {
        return Err(Failure::Usage(format!(
            "node {id} is the cluster's last voter: without it no node could commit anything; \
             add another node first (`kv cluster add`); nothing was changed"
        )));
    }
    ask(member, password, &["KVRAFT", "REMOVE", &id.to_string()])?;
    println!(
        "removed node {id} ({}) from the cluster: stop it; its directory cannot join another cluster",
        removed.client
    );
    // Asked of a remaining member: the removed one may have been asked first.
    let remaining = if cluster.field("node_id") == Some(&id.to_string()) {
        cluster
            .members
            .iter()
            .find(|(other, _)| **other != id)
            .map_or(member, |(_, m)| m.client.as_str())
    } else {
        member
    };
    if let Ok(now) = Replication::ask(remaining, password) {
        println!("members: {}", now.describe_members());
    }
    Ok(())
}
