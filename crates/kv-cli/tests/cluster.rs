//! Three `kv serve --node-id` processes on 127.0.0.1 formed into a cluster with `kv cluster
//! init`: writes go through the leader and reach the followers; the leader SIGKILLed under
//! writes from several connections loses no acknowledged write, on the new leader and on the
//! killed node once restarted with its identity; a directory refuses another node id.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kv_testkit::cluster::{free_port, Node};
use redis::{Commands, Connection};

/// How long anything the test waits for may take.
const WAIT: Duration = Duration::from_secs(30);

/// How long connecting to a node and each of its answers may take.
const ANSWER: Duration = Duration::from_secs(10);

/// Node `id` of the `kv` binary under test, its store in `dir`.
fn node(id: u64, dir: PathBuf) -> Node {
    Node::new(Path::new(env!("CARGO_BIN_EXE_kv")), id, dir)
}

fn three_nodes(root: &std::path::Path) -> Vec<Node> {
    (1..=3)
        .map(|id| {
            let mut node = node(id, root.join(format!("n{id}")));
            node.start().unwrap();
            node
        })
        .collect()
}

fn cluster_init(nodes: &[Node]) -> std::process::Output {
    let mut args = vec!["cluster", "init"];
    args.extend(nodes.iter().map(|n| n.client.as_str()));
    common::kv(&args).output().unwrap()
}

/// The index (in `nodes`) of the node that says it leads, once one does.
fn leader(nodes: &[Node]) -> usize {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        for (i, node) in nodes.iter().enumerate() {
            if node.is_running()
                && node.info(ANSWER).unwrap().get("role").map(String::as_str) == Some("leader")
            {
                return i;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no leader in time");
}

fn wait_applied(node: &Node, index: u64) {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        let applied: u64 = node.info(ANSWER).unwrap()["applied_index"].parse().unwrap();
        if applied >= index {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("node {} did not apply up to {index} in time", node.id);
}

#[test]
fn a_directory_refuses_another_node_id_and_the_single_node_server() {
    let root = tempfile::tempdir().unwrap();
    let mut node = node(1, root.path().join("n1"));
    node.start().unwrap();
    node.kill();
    let output = node.command(2).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = common::stderr(&output);
    assert!(
        stderr.contains("belongs to node 1, not to node 2"),
        "{stderr}"
    );
    let output = common::kv(&[
        "--dir",
        node.dir.to_str().unwrap(),
        "serve",
        "--bind",
        "127.0.0.1:0",
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(common::stderr(&output).contains("--node-id 1"));
    // The rightful id still starts.
    node.start().unwrap();
}

#[test]
fn with_requirepass_kv_cluster_authenticates_and_a_follower_forwards_writes() {
    let root = tempfile::tempdir().unwrap();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut node = node(id, root.path().join(format!("n{id}")));
            node.extra = vec!["--requirepass".into(), "pw".into()];
            node.start().unwrap();
            node
        })
        .collect();
    let without = cluster_init(&nodes);
    assert!(!without.status.success(), "{without:?}");
    let mut args = vec!["cluster", "init", "--password", "pw"];
    args.extend(nodes.iter().map(|n| n.client.as_str()));
    let init = common::kv(&args).output().unwrap();
    assert!(init.status.success(), "{init:?}");
    let status = common::kv(&["cluster", "status", &nodes[0].client])
        .env("KV_REQUIREPASS", "pw")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    assert!(common::stdout(&status).contains("role:"));
    let connect = |node: &Node| {
        let client = redis::Client::open(format!("redis://:pw@{}/", node.client)).unwrap();
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        connection
    };
    // The leader takes a while to be elected: retry the first write.
    let start = Instant::now();
    let l = loop {
        let l = nodes.iter().position(|n| {
            let info: redis::RedisResult<String> =
                redis::cmd("INFO").arg("replication").query(&mut connect(n));
            info.is_ok_and(|i| i.contains("role:leader"))
        });
        if let Some(l) = l {
            break l;
        }
        assert!(start.elapsed() < WAIT, "no leader in time");
        std::thread::sleep(Duration::from_millis(100));
    };
    let f = (l + 1) % 3;
    // Sent to a follower: forwarded over a link that authenticates first (retried while
    // the follower may not know the leader yet; without AUTH on the link it never passes).
    let start = Instant::now();
    loop {
        let set: redis::RedisResult<()> = connect(&nodes[f]).set("k", "v");
        match set {
            Ok(()) => break,
            Err(e) => assert!(start.elapsed() < WAIT, "the forwarded write failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(connect(&nodes[l]).get::<_, String>("k").unwrap(), "v");
}

#[test]
fn a_wildcard_raft_address_is_refused_by_cluster_init() {
    let root = tempfile::tempdir().unwrap();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut node = node(id, root.path().join(format!("n{id}")));
            node.raft = format!("0.0.0.0:{}", free_port());
            node.extra = vec!["--cluster-secret".into(), "s".into()];
            node.start().unwrap();
            node
        })
        .collect();
    let init = cluster_init(&nodes);
    assert_eq!(init.status.code(), Some(2), "{init:?}");
    let stderr = common::stderr(&init);
    assert!(stderr.contains("0.0.0.0:"), "{stderr}");
    assert!(stderr.contains("--raft-bind"), "{stderr}");
    // Nothing was initialized; KVRAFT INIT itself refuses the wildcard too.
    let info = nodes[0].info(ANSWER).unwrap();
    assert_ne!(
        info.get("role").map(String::as_str),
        Some("leader"),
        "{info:?}"
    );
    let refused: redis::RedisResult<()> = redis::cmd("KVRAFT")
        .arg("INIT")
        .arg(1)
        .arg(&nodes[0].raft)
        .arg(&nodes[0].client)
        .query(&mut nodes[0].connect(ANSWER).unwrap());
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("--raft-bind"), "{error}");
}

#[test]
fn writes_replicate_and_a_sigkilled_leader_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = three_nodes(root.path());
    let init = cluster_init(&nodes);
    assert!(init.status.success(), "{init:?}");
    // `init` returns once every node knows the leader: a write sent to any node right
    // after it is taken, with no retry.
    for node in &nodes {
        let set: redis::RedisResult<()> = node
            .connect(ANSWER)
            .unwrap()
            .set(format!("first-{}", node.id), "v");
        set.unwrap_or_else(|e| panic!("node {} refused the first write: {e}", node.id));
    }
    let again = cluster_init(&nodes);
    assert!(!again.status.success(), "a second init must be refused");
    assert!(
        common::stderr(&again).contains("initialized once"),
        "{}",
        common::stderr(&again)
    );

    let l = leader(&nodes);
    let said = common::stdout(&init);
    assert!(
        said.contains(&format!("node {} leads", nodes[l].id)),
        "{said}"
    );
    let f = (l + 1) % 3;
    let status = common::kv(&["cluster", "status", &nodes[f].client])
        .output()
        .unwrap();
    let status = common::stdout(&status);
    assert!(status.contains("role:follower"), "{status}");
    assert!(
        status.contains(&format!("leader_addr:{}", nodes[l].client)),
        "{status}"
    );
    let unreachable = common::kv(&["cluster", "status", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(common::stderr(&unreachable).contains("cannot reach the node at 127.0.0.1:1"));
    let mut on_leader = nodes[l].connect(ANSWER).unwrap();
    let mut on_follower = nodes[f].connect(ANSWER).unwrap();
    // A write sent to a follower is forwarded to the leader, and so is a linearizable read.
    let () = on_follower.set("k", "v").unwrap();
    assert_eq!(on_leader.get::<_, String>("k").unwrap(), "v");
    assert_eq!(on_follower.get::<_, String>("k").unwrap(), "v");
    // A block with a read-modify-write and a TTL, sent to a follower: one entry, applied
    // everywhere with the deadline the leader set.
    let replies: (i64, String, i64) = redis::pipe()
        .atomic()
        .incr("n", 5)
        .cmd("SET")
        .arg("t")
        .arg("x")
        .arg("EX")
        .arg(100)
        .incr("n", 1)
        .query(&mut on_follower)
        .unwrap();
    assert_eq!(replies, (5, "OK".to_string(), 6));
    let index: u64 = nodes[l].info(ANSWER).unwrap()["applied_index"]
        .parse()
        .unwrap();
    let other = (l + 2) % 3;
    for i in [f, other] {
        wait_applied(&nodes[i], index);
        let mut local = nodes[i].connect(ANSWER).unwrap();
        redis::cmd("READONLY").exec(&mut local).unwrap();
        assert_eq!(local.get::<_, i64>("n").unwrap(), 6);
        let ttl: i64 = local.ttl("t").unwrap();
        assert!((1..=100).contains(&ttl), "{ttl}");
    }
    let deadlines: Vec<i64> = [f, other, l]
        .iter()
        .map(|i| {
            let mut c = nodes[*i].connect(ANSWER).unwrap();
            redis::cmd("READONLY").exec(&mut c).unwrap();
            redis::cmd("PEXPIRETIME").arg("t").query(&mut c).unwrap()
        })
        .collect();
    assert!(
        deadlines.iter().all(|d| *d == deadlines[0] && *d > 0),
        "{deadlines:?}"
    );

    // Writers on several connections, each to whichever node leads.
    let clients: Vec<String> = nodes.iter().map(|n| n.client.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let incrs = Arc::new(Mutex::new((0u64, 0u64))); // (acknowledged, attempted)
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (clients, stop, acked, incrs) =
                (clients.clone(), stop.clone(), acked.clone(), incrs.clone());
            std::thread::spawn(move || {
                let mut target = w % clients.len();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let connection = redis::Client::open(format!("redis://{}/", clients[target]))
                        .unwrap()
                        .get_connection_with_timeout(Duration::from_millis(500));
                    let Ok(mut c) = connection else {
                        target = (target + 1) % clients.len();
                        continue;
                    };
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let (key, value) = (format!("w{w}-{i}"), format!("v{i}"));
                        i += 1;
                        let set: redis::RedisResult<()> = c.set(&key, &value);
                        let incr = if set.is_ok() {
                            acked.lock().unwrap().insert(key, value);
                            incrs.lock().unwrap().1 += 1;
                            let incr: redis::RedisResult<i64> = c.incr("counter", 1);
                            incr.map(|_| ())
                        } else {
                            set
                        };
                        match incr {
                            Ok(()) => incrs.lock().unwrap().0 += 1,
                            Err(_) => {
                                target = (target + 1) % clients.len();
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = acked.lock().unwrap().len();
    nodes[l].kill();
    let killed_at = Instant::now();
    // Until the new leader has acknowledged writes of its own.
    let mut failover = None;
    while acked.lock().unwrap().len() < before_kill + 20 {
        if failover.is_none() && acked.lock().unwrap().len() > before_kill {
            failover = Some(killed_at.elapsed());
        }
        assert!(
            killed_at.elapsed() < WAIT,
            "no write acknowledged after the leader died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let (incr_acked, incr_tried) = *incrs.lock().unwrap();
    assert!(before_kill > 0 && acked.len() > before_kill);

    let check = |c: &mut Connection, who: &str| {
        for (key, value) in &acked {
            let got: Option<String> = c.get(key).unwrap();
            assert_eq!(
                got.as_ref(),
                Some(value),
                "{who} lost the acknowledged {key}"
            );
        }
        let counter: u64 = c.get("counter").unwrap();
        assert!(
            (incr_acked..=incr_tried).contains(&counter),
            "{who}: counter {counter}, {incr_acked} increments acknowledged, {incr_tried} tried"
        );
    };
    let new = leader(&nodes);
    assert_ne!(new, l);
    check(&mut nodes[new].connect(ANSWER).unwrap(), "the new leader");

    // The killed node comes back with its identity and catches up.
    nodes[l].start().unwrap();
    let index: u64 = nodes[new].info(ANSWER).unwrap()["commit_index"]
        .parse()
        .unwrap();
    wait_applied(&nodes[l], index);
    assert_eq!(
        nodes[l].info(ANSWER).unwrap()["node_id"],
        nodes[l].id.to_string()
    );
    let mut back = nodes[l].connect(ANSWER).unwrap();
    redis::cmd("READONLY").exec(&mut back).unwrap();
    check(&mut back, "the restarted node");
    // Every node holds the same data once it has applied the same entries.
    let index: u64 = nodes[new].info(ANSWER).unwrap()["commit_index"]
        .parse()
        .unwrap();
    let dumps: Vec<BTreeMap<String, String>> = nodes
        .iter()
        .map(|node| {
            wait_applied(node, index);
            let mut c = node.connect(ANSWER).unwrap();
            redis::cmd("READONLY").exec(&mut c).unwrap();
            let keys: Vec<String> = c.keys("*").unwrap();
            keys.into_iter()
                .map(|k| {
                    let v: String = c.get(&k).unwrap();
                    (k, v)
                })
                .collect()
        })
        .collect();
    // The acknowledged keys, k, n, t and counter, and any write whose reply the SIGKILL
    // took but that was committed.
    assert!(dumps[0].len() >= acked.len() + 4, "{} keys", dumps[0].len());
    assert!(dumps.iter().all(|d| *d == dumps[0]), "the nodes differ");
    eprintln!(
        "{} writes acknowledged ({before_kill} before the SIGKILL), {incr_acked} increments; \
         the first write acknowledged after the SIGKILL took {failover:?}",
        acked.len()
    );
}

/// `kv args`, its exit code, standard output and standard error.
fn kv_output(args: &[&str]) -> (Option<i32>, String, String) {
    let output = common::kv(args)
        .env_remove("KV_REQUIREPASS")
        .output()
        .unwrap();
    (
        output.status.code(),
        common::stdout(&output),
        common::stderr(&output),
    )
}

/// `kv cluster status ADDR --json`, parsed.
fn status_json(addr: &str) -> serde_json::Value {
    let (code, stdout, stderr) = kv_output(&["cluster", "status", addr, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// The ids of `status`'s members of `kind` (voter or learner).
fn member_ids(status: &serde_json::Value, kind: &str) -> Vec<u64> {
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == kind)
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// Three nodes formed into a cluster whose leader took a first write of `key`; the
/// leader's index.
fn led_cluster(root: &Path, key: &str, value: &str) -> (Vec<Node>, usize) {
    let nodes = three_nodes(root);
    assert!(cluster_init(&nodes).status.success());
    let l = leader(&nodes);
    set_when_led(&nodes[l], key, value);
    (nodes, l)
}

/// Retries `set` of `key` on `node` until a leader takes it.
fn set_when_led(node: &Node, key: &str, value: &str) {
    let start = Instant::now();
    loop {
        let set: redis::RedisResult<()> = node.connect(ANSWER).unwrap().set(key, value);
        match set {
            Ok(()) => return,
            Err(e) => assert!(start.elapsed() < WAIT, "the write was not taken: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_fresh_node_is_refused_by_init_beside_members_then_added_as_a_voter_and_nodes_removed() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = three_nodes(root.path());
    assert!(cluster_init(&nodes).status.success());
    let mut fresh = node(4, root.path().join("n4"));
    fresh.start().unwrap();

    // A fresh node says it is not initialized, and what to do, to `kv cluster status` and
    // to a write.
    let (code, stdout, stderr) = kv_output(&["cluster", "status", &fresh.client]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("node_id:4"), "{stdout}");
    assert!(stdout.contains("role:uninitialized"), "{stdout}");
    assert!(stderr.contains("is not initialized"), "{stderr}");
    assert!(stderr.contains("kv cluster init"), "{stderr}");
    assert!(stderr.contains("kv cluster add"), "{stderr}");
    assert_eq!(status_json(&fresh.client)["initialized"], false);
    let refused: redis::RedisResult<()> = fresh.connect(ANSWER).unwrap().set("x", "1");
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("not initialized"), "{error}");
    assert!(error.contains("kv cluster add"), "{error}");

    // `kv cluster init` with a node of another cluster among fresh ones changes none.
    let (code, _, stderr) = kv_output(&["cluster", "init", &fresh.client, &nodes[1].client]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} (node 2) is a member of a cluster already",
            nodes[1].client
        )),
        "{stderr}"
    );
    assert_eq!(status_json(&fresh.client)["initialized"], false);

    let l = leader(&nodes);
    let f = (l + 1) % 3;
    for i in 0..50 {
        set_when_led(&nodes[l], &format!("k{i}"), &format!("v{i}"));
    }
    // Through a follower, which forwards the changes to the leader.
    let (code, stdout, stderr) = kv_output(&["cluster", "add", &nodes[f].client, &fresh.client]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("added node 4"), "{stdout}");
    assert!(stdout.contains("node 4 has caught up"), "{stdout}");
    assert!(stdout.contains("node 4 is a voter"), "{stdout}");
    // It holds every key, read locally.
    let mut local = fresh.connect(ANSWER).unwrap();
    redis::cmd("READONLY").exec(&mut local).unwrap();
    for i in 0..50 {
        let got: Option<String> = local.get(format!("k{i}")).unwrap();
        assert_eq!(got, Some(format!("v{i}")), "node 4 lacks k{i}");
    }
    assert_eq!(
        fresh.info(ANSWER).unwrap()["member_4"],
        format!("kind=voter,client={},raft={}", fresh.client, fresh.raft)
    );
    let status = status_json(&nodes[l].client);
    assert_eq!(member_ids(&status, "voter"), [1, 2, 3, 4]);
    assert_eq!(status["role"], "leader");
    assert_eq!(status["id"], nodes[l].id);
    assert_eq!(status["leader_id"], nodes[l].id);
    assert_eq!(status["leader_addr"], nodes[l].client.as_str());
    assert!(status["commit_index"].as_u64().unwrap() >= 50);
    assert!(status["applied_index"].as_u64().is_some());
    assert!(status["term"].as_u64().unwrap() >= 1);
    // A second add of a voter is refused.
    let (code, _, stderr) = kv_output(&["cluster", "add", &nodes[l].client, &fresh.client]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("node 4 is a voter of the cluster of"),
        "{stderr}"
    );
    nodes.push(fresh);

    // The leader is removed, through a follower: the others elect another and take writes.
    let removed = nodes[l].id;
    let (code, stdout, stderr) =
        kv_output(&["cluster", "remove", &nodes[f].client, &removed.to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("removed node {removed}")),
        "{stdout}"
    );
    nodes[l].kill();
    let mut rest: Vec<Node> = nodes.into_iter().filter(|n| n.id != removed).collect();
    set_when_led(&rest[0], "after", "removal");
    let new = leader(&rest);
    let status = status_json(&rest[new].client);
    let mut expected: Vec<u64> = rest.iter().map(|n| n.id).collect();
    expected.sort_unstable();
    assert_eq!(member_ids(&status, "voter"), expected);
    assert!(member_ids(&status, "learner").is_empty());
    let got: String = rest[new].connect(ANSWER).unwrap().get("after").unwrap();
    assert_eq!(got, "removal");

    // Down to one voter, which cannot be removed.
    let mut gone_nodes = Vec::new();
    for _ in 0..2 {
        let gone = rest[(leader(&rest) + 1) % rest.len()].id;
        let (code, _, stderr) =
            kv_output(&["cluster", "remove", &rest[0].client, &gone.to_string()]);
        assert_eq!(code, Some(0), "{stderr}");
        let (gone, kept): (Vec<Node>, Vec<Node>) = rest.into_iter().partition(|n| n.id == gone);
        rest = kept;
        gone_nodes.extend(gone);
    }
    // A removed node, still running, is not added back as it is: it holds another cluster's
    // state.
    let (code, _, stderr) = kv_output(&["cluster", "add", &rest[0].client, &gone_nodes[0].client]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("is a member of a cluster already"),
        "{stderr}"
    );
    let last = rest[0].id.to_string();
    let (code, _, stderr) = kv_output(&["cluster", "remove", &rest[0].client, &last]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("last voter"), "{stderr}");
    set_when_led(&rest[0], "alone", "yes");

    // An add that stopped after making the node a learner is resumed by a second run.
    let mut fifth = node(5, root.path().join("n5"));
    fifth.start().unwrap();
    let index: i64 = redis::cmd("KVRAFT")
        .arg("LEARNER")
        .arg(5)
        .arg(&fifth.raft)
        .arg(&fifth.client)
        .query(&mut rest[0].connect(ANSWER).unwrap())
        .unwrap();
    assert!(index > 0);
    let (code, stdout, stderr) = kv_output(&["cluster", "add", &rest[0].client, &fifth.client]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("is a learner of the cluster already"),
        "{stdout}"
    );
    assert!(stdout.contains("node 5 is a voter"), "{stdout}");
    let mut voters = vec![rest[0].id, 5];
    voters.sort_unstable();
    assert_eq!(member_ids(&status_json(&fifth.client), "voter"), voters);
    let mut local = fifth.connect(ANSWER).unwrap();
    redis::cmd("READONLY").exec(&mut local).unwrap();
    let got: Option<String> = local.get("alone").unwrap();
    assert_eq!(got.as_deref(), Some("yes"));
}

/// Runs `command` to its end, or kills it after [`WAIT`] (a server that should have refused
/// to start fails the test instead of hanging it).
fn output_within(mut command: std::process::Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > WAIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_node_refuses_a_single_node_store_and_the_store_commands_refuse_a_node_directory() {
    let root = tempfile::tempdir().unwrap();
    // A single-node store is not hidden behind an empty node.
    let single = root.path().join("single");
    let put = common::kv(&["--dir", single.to_str().unwrap(), "put", "a", "1"])
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");
    let mut node = node(1, single.clone());
    let output = output_within(node.command(1));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = common::stderr(&output);
    assert!(stderr.contains("holds a single-node store"), "{stderr}");
    assert!(stderr.contains("without --node-id"), "{stderr}");
    assert!(!single.join("node-id").exists() && !single.join("raft").exists());
    let get = common::kv(&["--dir", single.to_str().unwrap(), "get", "a"])
        .output()
        .unwrap();
    assert_eq!(common::stdout(&get).trim(), "1");

    // A node's directory is not opened (nor a store created in it) by the store commands.
    node.dir = root.path().join("node");
    node.start().unwrap();
    let init = common::kv(&["cluster", "init", &node.client])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    set_when_led(&node, "kept", "yes");
    node.kill();
    let dir = node.dir.to_str().unwrap();
    for args in [
        vec!["--dir", dir, "put", "x", "y"],
        vec!["--dir", dir, "get", "kept"],
        vec!["--dir", dir, "scan"],
        vec!["--dir", dir, "verify"],
        vec!["--dir", dir, "serve", "--bind", "127.0.0.1:0"],
    ] {
        let output = output_within(common::kv(&args));
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = common::stderr(&output);
        assert!(
            stderr.contains("holds the state of cluster node 1"),
            "{stderr}"
        );
        assert!(stderr.contains("--node-id 1"), "{stderr}");
    }
    let shell = common::run(&["--dir", dir], b"SET x y\n");
    assert_eq!(shell.status.code(), Some(2), "{shell:?}");
    assert!(common::stderr(&shell).contains("holds the state of cluster node 1"));
    assert!(
        !node.dir.join("wal").exists(),
        "a store was created beside the node"
    );
    // The node's data is still there.
    node.start().unwrap();
    let mut c = node.connect(ANSWER).unwrap();
    redis::cmd("READONLY").exec(&mut c).unwrap();
    let start = Instant::now();
    loop {
        let got: Option<String> = c.get("kept").unwrap();
        if got.as_deref() == Some("yes") {
            break;
        }
        assert!(start.elapsed() < WAIT, "the node lost its data");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_write_without_a_majority_is_answered_clusterdown_within_the_commit_timeout() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut node = node(id, root.path().join(format!("n{id}")));
            node.extra = vec!["--commit-timeout".into(), "2".into()];
            node.start().unwrap();
            node
        })
        .collect();
    assert!(cluster_init(&nodes).status.success());
    let l = leader(&nodes);
    set_when_led(&nodes[l], "before", "1");
    let mut survivor = nodes[l].connect(ANSWER).unwrap();
    for i in [(l + 1) % 3, (l + 2) % 3] {
        nodes[i].kill();
    }
    // The first write is proposed and waits for a majority that never comes, until the
    // commit timeout; the second is refused when the leader cannot confirm it leads (its
    // lease lapsed), or at the timeout: both are answered in time.
    for (key, said, least) in [
        (
            "during",
            "may or may not have been applied",
            Duration::from_millis(1500),
        ),
        ("next", "", Duration::ZERO),
    ] {
        let started = Instant::now();
        let set: redis::RedisResult<()> = survivor.set(key, "x");
        let took = started.elapsed();
        let error = set.unwrap_err();
        assert_eq!(error.code(), Some("CLUSTERDOWN"), "{error}");
        assert!(error.to_string().contains(said), "{error}");
        assert!(
            (least..Duration::from_secs(5)).contains(&took),
            "answered after {took:?}: {error}"
        );
    }
    // A linearizable read is bounded too.
    let started = Instant::now();
    let get: redis::RedisResult<Option<String>> = survivor.get("before");
    assert!(get.is_err(), "{get:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // So is a membership change (which commits, or not, once a majority is back).
    let (a, b) = ((l + 1) % 3, (l + 2) % 3);
    let started = Instant::now();
    let (code, _, stderr) = kv_output(&[
        "cluster",
        "remove",
        &nodes[l].client,
        &nodes[a].id.to_string(),
    ]);
    assert_eq!(code, Some(3), "{stderr}");
    // (Or, once the survivor has stepped down for lack of a majority, that no leader is
    // known.)
    assert!(stderr.contains("CLUSTERDOWN"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // With a majority back, writes go through again (node a may be out of the cluster now:
    // it stays down).
    nodes[b].start().unwrap();
    let l = leader(&nodes);
    set_when_led(&nodes[l], "after", "1");
    let got: String = nodes[l].connect(ANSWER).unwrap().get("before").unwrap();
    assert_eq!(got, "1");
}

/// The leader stages a write over the ones still in flight: concurrent read-modify-writes,
/// sent to the leader and through a follower, lose nothing, and each reply is a value no
/// other one got. Staged over the store alone, increments proposed together were lost.
#[test]
fn concurrent_increments_through_the_cluster_lose_none() {
    let root = tempfile::tempdir().unwrap();
    let (nodes, l) = led_cluster(root.path(), "n", "0");
    const CONNECTIONS: usize = 8;
    const EACH: usize = 40;
    let replies = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for c in 0..CONNECTIONS {
            // Half through the leader, half forwarded by a follower.
            let node = &nodes[if c % 2 == 0 { l } else { (l + 1) % 3 }];
            let replies = &replies;
            scope.spawn(move || {
                let mut connection = node.connect(ANSWER).unwrap();
                for _ in 0..EACH {
                    let value: i64 = connection.incr("n", 1).unwrap();
                    replies.lock().unwrap().push(value);
                }
            });
        }
    });
    let mut replies = replies.into_inner().unwrap();
    replies.sort_unstable();
    let expected: Vec<i64> = (1..=(CONNECTIONS * EACH) as i64).collect();
    assert_eq!(replies, expected, "increments lost or answered twice");
    let index: u64 = nodes[l].info(ANSWER).unwrap()["applied_index"]
        .parse()
        .unwrap();
    for node in &nodes {
        wait_applied(node, index);
        let mut c = node.connect(ANSWER).unwrap();
        redis::cmd("READONLY").exec(&mut c).unwrap();
        let n: i64 = c.get("n").unwrap();
        assert_eq!(n, (CONNECTIONS * EACH) as i64, "node {}", node.id);
    }
}

/// A `MULTI` block on a replicated node, sent to the leader and to a follower (which
/// forwards its data commands), answers as Redis 7 and the single node do: connection
/// commands and `INFO` are queued and answered in place, a command refused for its own
/// arguments is answered in place while the others run, `READONLY` and `READWRITE` are
/// queued, `WATCH` inside the block is refused without aborting it, an unknown command
/// aborts it, and `RESET` ends it (and `READONLY`). Before, each of those aborted the block,
/// ran at once or failed, and `RESET` left it open.
#[test]
fn a_transaction_on_a_replicated_node_answers_as_redis_does() {
    use redis::Value;
    let root = tempfile::tempdir().unwrap();
    let (nodes, l) = led_cluster(root.path(), "counter", "1");
    fn text(value: &Value) -> String {
        match value {
            Value::SimpleString(s) => s.clone(),
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Okay => "OK".into(),
            Value::Int(n) => n.to_string(),
            Value::ServerError(e) => {
                format!("error {} {}", e.code(), e.details().unwrap_or_default())
            }
            other => format!("{other:?}"),
        }
    }
    // The reply as sent: errors inside EXEC's array stay in it.
    let query = |c: &mut Connection, args: &[&str]| -> Value {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        match redis::ConnectionLike::req_command(c, &command) {
            Ok(value) => value,
            Err(e) => Value::SimpleString(format!("error {e}")),
        }
    };
    for (i, node) in [&nodes[l], &nodes[(l + 1) % 3]].into_iter().enumerate() {
        let mut c = node.connect(ANSWER).unwrap();
        let key = format!("k{i}");
        assert_eq!(text(&query(&mut c, &["MULTI"])), "OK");
        for args in [
            vec!["PING"],
            vec!["SET", &key, "v"],
            vec!["INCR", "counter"],
            vec!["SET", &key, "w", "EX", "soon"],
            vec!["ECHO", "hi"],
            vec!["INFO", "replication"],
            vec!["INCR", &key],
            vec!["READONLY"],
            vec!["READWRITE"],
        ] {
            assert_eq!(text(&query(&mut c, &args)), "QUEUED", "{args:?}");
        }
        let watch = text(&query(&mut c, &["WATCH", "x"]));
        assert!(watch.contains("WATCH inside MULTI"), "{watch}");
        let Value::Array(replies) = query(&mut c, &["EXEC"]) else {
            panic!("EXEC answered with no array");
        };
        let replies: Vec<String> = replies.iter().map(text).collect();
        assert_eq!(replies.len(), 9, "{replies:?}");
        assert_eq!(replies[7..], ["OK", "OK"], "READONLY and READWRITE queued");
        assert_eq!(replies[0], "PONG");
        assert_eq!(replies[1], "OK");
        assert_eq!(replies[2], (i + 2).to_string(), "{replies:?}");
        assert!(replies[3].contains("not an integer"), "{replies:?}");
        assert_eq!(replies[4], "hi");
        assert!(replies[5].contains("role:"), "{replies:?}");
        assert!(replies[6].contains("not an integer"), "{replies:?}");
        let value: String = c.get(&key).unwrap();
        assert_eq!(value, "v", "the refused SET changed nothing, the other ran");

        if i == 0 {
            // Every request counted once, however it was answered (the second INFO too).
            let processed = |c: &mut Connection| -> u64 {
                let info = text(&query(c, &["INFO", "stats"]));
                info.lines()
                    .find_map(|l| l.strip_prefix("total_commands_processed:"))
                    .expect("the stats section")
                    .trim()
                    .parse()
                    .unwrap()
            };
            let before = processed(&mut c);
            for args in [
                vec!["SET", "x", "1"],
                vec!["GET", "x"],
                vec!["MULTI"],
                vec!["INCR", "x"],
                vec!["PING"],
                vec!["EXEC"],
                vec!["READONLY"],
                vec!["READWRITE"],
            ] {
                query(&mut c, &args);
            }
            assert_eq!(processed(&mut c) - before, 9);
        }

        // An unknown command aborts the block.
        query(&mut c, &["MULTI"]);
        assert!(text(&query(&mut c, &["NOSUCHCOMMAND"])).contains("unknown command"));
        query(&mut c, &["SET", &key, "aborted"]);
        let aborted = text(&query(&mut c, &["EXEC"]));
        assert!(aborted.contains("EXECABORT"), "{aborted}");
        assert_eq!(c.get::<_, String>(&key).unwrap(), "v");

        // RESET ends a block, and READONLY with it.
        query(&mut c, &["READONLY"]);
        query(&mut c, &["MULTI"]);
        query(&mut c, &["SET", &key, "reset"]);
        assert_eq!(text(&query(&mut c, &["RESET"])), "RESET");
        let exec = text(&query(&mut c, &["EXEC"]));
        assert!(exec.contains("EXEC without MULTI"), "{exec}");
        assert_eq!(c.get::<_, String>(&key).unwrap(), "v");
        query(&mut c, &["READWRITE"]);

        // A block whose entry is refused as a whole (a write of the replication's own
        // keys) answers EXEC with that error alone, not inside an array, whether it holds
        // one data command or two.
        for writes in [1, 2] {
            query(&mut c, &["MULTI"]);
            query(&mut c, &["PING"]);
            for _ in 0..writes {
                let mut set = redis::cmd("SET");
                set.arg(&b"\xffkv-raft/mine"[..]).arg("v");
                let queued = redis::ConnectionLike::req_command(&mut c, &set).unwrap();
                assert_eq!(text(&queued), "QUEUED");
            }
            let exec = query(&mut c, &["EXEC"]);
            assert!(
                matches!(&exec, Value::ServerError(e) if e.details().unwrap_or_default().contains("reserved")),
                "{writes} write(s): {exec:?}"
            );
        }
    }
}
