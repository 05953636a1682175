//! Three nodes on 127.0.0.1, each with its Raft service over HTTP (the crate's network):
//! writes replicate; a node stopped while the others snapshot and purge comes back from
//! its directory and catches up from a snapshot sent in chunks over the network; a node
//! takes a snapshot when its log outgrows a size, not after a count of entries.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use kv_raft::openraft::async_runtime::watch::WatchReceiver;
use kv_raft::{is_reserved, Node, NodeAddr, NodeOptions, Request, StoreReader};

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

fn user_data(reader: &StoreReader) -> BTreeMap<Vec<u8>, Vec<u8>> {
    reader
        .store()
        .iter()
        .filter(|(k, _)| !is_reserved(k))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

const SECRET: &str = "the cluster's secret";

async fn start(id: u64, dir: &std::path::Path, addr: SocketAddr) -> Node {
    let mut options = NodeOptions::new(id, addr);
    options.cluster_secret = Some(SECRET.into());
    Node::start(dir, options).await.unwrap()
}

/// Posts `body` to `route` of `node` with the given headers; answers the status.
async fn post(
    node: &Node,
    route: &str,
    secret: Option<&str>,
    target: Option<u64>,
    body: Vec<u8>,
) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{route}", node.raft_addr()))
        .body(body);
    if let Some(secret) = secret {
        request = request.header("x-kv-cluster-secret", secret);
    }
    if let Some(target) = target {
        request = request.header("x-kv-target-node", target);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Three nodes on 127.0.0.1, initialized; the nodes by id.
async fn three_nodes(dirs: &[tempfile::TempDir]) -> BTreeMap<u64, Node> {
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let dir = dirs[id as usize - 1].path();
        nodes.insert(id, start(id, dir, "127.0.0.1:0".parse().unwrap()).await);
    }
    let members: BTreeMap<u64, NodeAddr> = nodes
        .iter()
        .map(|(id, n)| {
            let raft = n.raft_addr().to_string();
            (
                *id,
                NodeAddr {
                    raft,
                    client: String::new(),
                },
            )
        })
        .collect();
    nodes[&1].raft().initialize(members).await.unwrap();
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_replicate_to_every_node_within_seconds() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = three_nodes(&dirs).await;
    write(&nodes, Request::put("small", "first")).await;
    // A batch of several large entries, each alone over the byte bound of one message.
    let value: Vec<u8> = (0..12 << 20).map(|i: u32| (i % 251) as u8).collect();
    let started = std::time::Instant::now();
    let mut last = 0;
    for n in 0..3 {
        last = tokio::time::timeout(
            Duration::from_secs(20),
            write(&nodes, Request::put(format!("big{n}"), value.clone())),
        )
        .await
        .expect("a write of a 12 MiB value was not acknowledged in 20 s");
    }
    // Several large writes at once: openraft batches them, and a batch over the byte bound
    // goes as several messages (a partial success each).
    let concurrent =
        (0..4).map(|n| write(&nodes, Request::put(format!("many{n}"), vec![n; 5 << 20])));
    for index in futures_util::future::join_all(concurrent).await {
        last = last.max(index);
    }
    let took = started.elapsed();
    for node in nodes.values() {
        node.raft()
            .wait(Some(Duration::from_secs(20)))
            .applied_index_at_least(Some(last), "applied")
            .await
            .unwrap();
        let data = user_data(node.reader());
        assert_eq!(data[b"big2".as_slice()], value);
        assert_eq!(data[b"many3".as_slice()], vec![3; 5 << 20]);
    }
    eprintln!(
        "3 writes of 12 MiB, then 4 of 5 MiB at once, through 3 nodes acknowledged in {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    for node in nodes.values() {
        node.shutdown().await.unwrap();
    }
}

/// The status a request to node 7 gets that announces a body of `len` bytes, sends 16
/// bytes of it and waits (at most 5 s) for the answer: an answer that comes was decided
/// without reading the body. (A client sending the whole body could see the connection
/// closed under it instead of the answer.)
async fn announcing_a_body(node: &Node, route: &str, secret: Option<&str>, len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(node.raft_addr())
        .await
        .unwrap();
    let secret = secret.map_or(String::new(), |s| format!("x-kv-cluster-secret: {s}\r\n"));
    let head = format!(
        "POST {route} HTTP/1.1\r\nhost: x\r\nx-kv-target-node: 7\r\n{secret}content-length: {len}\r\n\r\n0123456789abcdef"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer))
        .await
        .expect("no answer before the body: the body is being read first")
        .unwrap();
    String::from_utf8_lossy(&answer[9..12]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_service_refuses_strangers_before_reading_and_bounds_each_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(7, dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let small = b"not a message".to_vec();
    // No secret, a wrong one, one that is a prefix of the right one: refused.
    assert_eq!(
        post(&node, "/raft/vote", None, Some(7), small.clone()).await,
        401
    );
    for wrong in ["nope", "the cluster's secre", "the cluster's secret!"] {
        assert_eq!(
            post(&node, "/raft/vote", Some(wrong), Some(7), small.clone()).await,
            401,
            "{wrong:?}"
        );
    }
    // Refused before the body is read: a stranger announcing 100 MB and sending a few
    // bytes is answered at once (were the body read first, the answer would never come).
    for route in ["/raft/append", "/raft/vote"] {
        assert_eq!(
            announcing_a_body(&node, route, None, 100_000_000).await,
            "401"
        );
    }
    // The secret, but meant for another node (or for none): refused.
    assert_eq!(
        post(&node, "/raft/vote", Some(SECRET), Some(8), small.clone()).await,
        421
    );
    assert_eq!(
        post(&node, "/raft/vote", Some(SECRET), None, small.clone()).await,
        421
    );
    // Per-route limits: a vote is small, a snapshot chunk is one chunk; append takes more.
    // Just over each limit, so the server has read all but a little when it answers.
    let limits = [
        ("/raft/vote", kv_raft::MAX_VOTE_BYTES),
        (
            "/raft/snapshot/chunk",
            kv_raft::MAX_SNAPSHOT_CHUNK_MESSAGE_BYTES,
        ),
        ("/raft/snapshot/begin", kv_raft::MAX_SNAPSHOT_CONTROL_BYTES),
    ];
    for (route, limit) in limits {
        let body = vec![0; limit + 1];
        assert_eq!(
            post(&node, route, Some(SECRET), Some(7), body).await,
            413,
            "{route}"
        );
    }
    // Admitted: the answer is the receiver's own error for a body that does not decode.
    assert_eq!(
        post(
            &node,
            "/raft/append",
            Some(SECRET),
            Some(7),
            vec![0xff; 4 << 20]
        )
        .await,
        200
    );
    assert_eq!(
        post(&node, "/raft/vote", Some(SECRET), Some(7), small).await,
        200
    );
    node.shutdown().await.unwrap();
}

async fn write(nodes: &BTreeMap<u64, Node>, request: Request) -> u64 {
    for _ in 0..100 {
        for node in nodes.values() {
            if let Ok(done) = node.raft().client_write(request.clone()).await {
                return done.log_id().index();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader took the write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_replicate_over_http_and_a_restarted_node_catches_up_from_a_chunked_snapshot() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut nodes = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=3u64 {
            let node = start(
                id,
                dirs[id as usize - 1].path(),
                "127.0.0.1:0".parse().unwrap(),
            )
            .await;
            addrs.insert(id, node.raft_addr());
            nodes.insert(id, node);
        }
        let members: BTreeMap<u64, NodeAddr> = addrs
            .iter()
            .map(|(id, a)| {
                (
                    *id,
                    NodeAddr {
                        raft: a.to_string(),
                        client: String::new(),
                    },
                )
            })
            .collect();
        nodes[&1].raft().initialize(members).await.unwrap();
        let mut last = 0;
        for i in 0..30 {
            last = write(&nodes, Request::put(format!("k{i}"), vec![b'v'; 3000])).await;
        }
        for node in nodes.values() {
            node.raft()
                .wait(WAIT)
                .applied_index_at_least(Some(last), "applied")
                .await
                .unwrap();
        }
        let leader = nodes[&1].raft().current_leader().await.unwrap();
        let down = (1..=3).find(|id| *id != leader).unwrap();
        let stopped = nodes.remove(&down).unwrap();
        stopped.shutdown().await.unwrap();
        drop(stopped);
        // Values big enough that the snapshot spans several 1 MiB chunks.
        for i in 30..700 {
            write(&nodes, Request::put(format!("k{i}"), vec![b'w'; 4000])).await;
        }
        // On every node that is up, so that whichever leads when the follower returns lacks
        // the entries it needs.
        let mut upto = u64::MAX;
        for node in nodes.values() {
            node.raft().trigger().snapshot().await.unwrap();
            let m = node
                .raft()
                .wait(WAIT)
                .metrics(|m| m.snapshot.is_some(), "snapshot")
                .await
                .unwrap();
            let at = m.snapshot.unwrap().index();
            node.raft().trigger().purge_log(at).await.unwrap();
            node.raft()
                .wait(WAIT)
                .metrics(
                    |m| m.purged.as_ref().is_some_and(|p| p.index() >= at),
                    "purged",
                )
                .await
                .unwrap();
            upto = upto.min(at);
        }
        nodes.insert(
            down,
            start(down, dirs[down as usize - 1].path(), addrs[&down]).await,
        );
        let last = write(&nodes, Request::put("after", "restart")).await;
        for node in nodes.values() {
            node.raft()
                .wait(WAIT)
                .applied_index_at_least(Some(last), "caught up")
                .await
                .unwrap();
        }
        let back = &nodes[&down];
        assert!(
            back.raft()
                .metrics()
                .borrow_watched()
                .snapshot
                .is_some_and(|s| s.index() >= upto),
            "the follower installed no snapshot taken after it stopped"
        );
        let expected = user_data(nodes[&leader].reader());
        assert_eq!(expected.len(), 701);
        assert_eq!(user_data(back.reader()), expected);
        for node in nodes.values() {
            node.shutdown().await.unwrap();
        }
    })
    .await
    .expect("the test took over 90 s");
}

/// A node alone in its cluster, with a snapshot once its log holds `snapshot_log_bytes`.
async fn alone(dir: &std::path::Path, snapshot_log_bytes: Option<u64>) -> Node {
    let mut options = NodeOptions::new(1, "127.0.0.1:0".parse().unwrap());
    if let Some(bytes) = snapshot_log_bytes {
        options.snapshot_log_bytes = bytes;
    }
    let node = Node::start(dir, options).await.unwrap();
    let me = NodeAddr {
        raft: node.raft_addr().to_string(),
        client: String::new(),
    };
    node.raft()
        .initialize(BTreeMap::from([(1, me)]))
        .await
        .unwrap();
    node.raft()
        .wait(WAIT)
        .current_leader(1, "it leads")
        .await
        .unwrap();
    node
}

/// Writes `count` entries of `len`-byte values, many at a time.
async fn fill(node: &Node, count: usize, len: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(250) {
        let writes = chunk.iter().map(|i| {
            node.raft()
                .client_write(Request::put(format!("k{i}"), vec![b'v'; len]))
        });
        for done in futures_util::future::join_all(writes).await {
            done.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_taken_when_the_log_outgrows_a_size_not_after_a_count_of_entries() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // 6,000 small entries: openraft's own policy would have copied the store at 5,000.
        let dir = tempfile::tempdir().unwrap();
        let node = alone(dir.path(), None).await;
        fill(&node, 6_000, 10).await;
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(
            node.raft().metrics().borrow_watched().snapshot,
            None,
            "a snapshot of a store far smaller than its log's floor"
        );
        node.shutdown().await.unwrap();
        // A log past the floor (and past the store's live data) is snapshotted and purged.
        let dir = tempfile::tempdir().unwrap();
        let node = alone(dir.path(), Some(64 << 10)).await;
        fill(&node, 1_000, 200).await;
        let m = node
            .raft()
            .wait(WAIT)
            .metrics(|m| m.snapshot.is_some(), "a snapshot")
            .await
            .unwrap();
        assert!(m.snapshot.unwrap().index() > 500);
        node.shutdown().await.unwrap();
    })
    .await
    .expect("the test took over 60 s");
}

#[test]
fn a_directory_keeps_its_node_id() {
    let dir = tempfile::tempdir().unwrap();
    kv_raft::claim_node_id(dir.path(), 2).unwrap();
    kv_raft::claim_node_id(dir.path(), 2).unwrap();
    let err = kv_raft::claim_node_id(dir.path(), 3).unwrap_err();
    assert!(
        matches!(
            err,
            kv_raft::Error::NodeId {
                stored: 2,
                given: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(kv_raft::stored_node_id(dir.path()).unwrap(), Some(2));
}
