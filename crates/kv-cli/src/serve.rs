//! `kv serve`: the store over the Redis protocol, until SIGTERM or SIGINT.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use kv_server::{ReplicatedServer, Server, ServerOptions};
use kv_store::{Durability, KvStore, Options};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ServeArgs;
use crate::failure::{Failure, Outcome};
use crate::open::tell_damage;

/// Opens the store in `dir` (creating it), serves it on `args.bind`, and closes it
/// cleanly on SIGTERM or SIGINT once the requests in flight are answered.
pub fn run(dir: &Path, durability: Durability, args: &ServeArgs) -> Outcome {
    // An empty KV_REQUIREPASS is no password, as an empty `requirepass` is none in Redis.
    let requirepass = args.requirepass.clone().filter(|p| !p.is_empty());
    if !args.bind.ip().is_loopback() && requirepass.is_none() && args.protected_mode == "yes" {
        return Err(Failure::Usage(format!(
            "refusing to listen on {} without a password: anyone who can reach it could read \
             and change every key. Give --requirepass (or KV_REQUIREPASS), bind to a loopback \
             address, or pass --protected-mode no",
            args.bind
        )));
    }
    let options = ServerOptions {
        bind: args.bind,
        requirepass,
        maxclients: usize::try_from(args.maxclients).unwrap_or(usize::MAX),
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        output_limit: usize::try_from(args.output_limit).unwrap_or(usize::MAX),
        write_timeout: Duration::from_secs(args.write_timeout),
        ..ServerOptions::default()
    };
    if let Some(id) = args.node_id {
        return serve_node(dir, durability, args, options, id);
    }
    // A node's directory holds a Raft log and a state machine, not a store: opening it as
    // one would serve an empty store beside them.
    if let Some(stored) = kv_raft::stored_node_id(dir).map_err(Failure::runtime)? {
        return Err(Failure::Usage(format!(
            "{} is the directory of cluster node {stored}: start it with --node-id {stored}",
            dir.display()
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_threads(args.threads))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Both signals are caught before the store opens (their handlers replace the
        // default, which kills the process), so one that comes during the open still
        // closes it cleanly. `tokio::signal::ctrl_c()` would register SIGINT's handler
        // only when first polled, after the open.
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let store = KvStore::open_with(dir, Options::default().durability(durability))?;
        tell_damage(&store, dir);
        let stop_during_open = tokio::select! {
            biased;
            _ = terminate.recv() => true,
            _ = interrupt.recv() => true,
            () = std::future::ready(()) => false,
        };
        if stop_during_open {
            store.close()?;
            return Ok(());
        }
        let server = match Server::bind(store.clone(), options).await {
            Ok(server) => server,
            Err(error) => {
                store.close()?;
                return Err(Failure::runtime(error));
            }
        };
        let addr = server.local_addr().map_err(Failure::runtime)?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "ready: listening on {addr}")?;
        stdout.flush()?;
        server
            .run_until(async {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            })
            .await
            .map_err(Failure::runtime)
    })
}

/// The runtime's worker threads: `asked`, or else one per core.
///
/// Fewer threads than cores cost fewer context switches per request, but not throughput
/// where the clients share the machine: measured on 2 cores against redis-benchmark
/// (`-c 50 -P 1`), one thread took 0.14 context switches and 10 µs of CPU per GET, two
/// took 0.32 and 8.7 µs, and two answered 83k GETs/s against one's 73k.
fn runtime_threads(asked: Option<u64>) -> usize {
    match asked {
        Some(n) => usize::try_from(n).unwrap_or(1),
        None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    }
}

/// `kv serve --node-id N`: node N of a replicated cluster, its writes through Raft.
fn serve_node(
    dir: &Path,
    durability: Durability,
    args: &ServeArgs,
    options: ServerOptions,
    id: u64,
) -> Outcome {
    let raft_bind = match args.raft_bind {
        Some(addr) => addr,
        None => {
            let port = args
                .bind
                .port()
                .checked_add(10_000)
                .filter(|_| args.bind.port() != 0);
            let Some(port) = port else {
                return Err(Failure::Usage(format!(
                    "the Raft address defaults to the client port + 10000, which {} has not: give --raft-bind",
                    args.bind
                )));
            };
            std::net::SocketAddr::new(args.bind.ip(), port)
        }
    };
    // As a client password, an empty secret is none.
    let cluster_secret = args
        .cluster_secret
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| options.requirepass.clone());
    if !raft_bind.ip().is_loopback() && cluster_secret.is_none() && args.protected_mode == "yes" {
        return Err(Failure::Usage(format!(
            "refusing to serve Raft on {raft_bind} without a cluster secret: anyone who can \
             reach it could vote, append entries and replace the store with a snapshot. Give \
             --cluster-secret (or KV_CLUSTER_SECRET, or --requirepass), the same on every node, \
             bind --raft-bind to a loopback address, or pass --protected-mode no"
        )));
    }
    // Refused before anything starts, with the directory untouched.
    kv_raft::claim_node_id(dir, id).map_err(|e| match e {
        kv_raft::Error::NodeId { .. } => Failure::Usage(e.to_string()),
        e => Failure::runtime(e),
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_threads(args.threads))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut node_options = kv_raft::NodeOptions::new(id, raft_bind);
        node_options.store = Options::default().durability(durability);
        node_options.cluster_secret = cluster_secret;
        let node = kv_raft::Node::start(dir, node_options)
            .await
            .map_err(Failure::runtime)?;
        let server = match ReplicatedServer::bind(node.clone(), options).await {
            Ok(server) => server,
            Err(error) => {
                let _ = node.shutdown().await;
                return Err(Failure::runtime(error));
            }
        };
        let addr = server.local_addr().map_err(Failure::runtime)?;
        let mut stdout = std::io::stdout();
        writeln!(
            stdout,
            "ready: listening on {addr} (node {id}, raft on {})",
            node.raft_addr()
        )?;
        stdout.flush()?;
        let served = server
            .run_until(async {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            })
            .await
            .map_err(Failure::runtime);
        node.shutdown().await.map_err(Failure::runtime)?;
        served
    })
}
