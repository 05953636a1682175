//! `kv serve`: the store over the Redis protocol, until SIGTERM or SIGINT; with
//! `--node-id N`, node N of a replicated cluster instead (its writes through Raft).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kv_server::{ReplicatedServer, Server, ServerOptions};
use kv_store::{Durability, KvStore, WAL_DIR};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::ServeArgs;
use crate::failure::{Failure, Outcome};
use crate::open::{refuse_node_dir, tell_damage};

/// What a node needs besides the server's options.
struct NodeSettings {
    id: u64,
    raft_bind: SocketAddr,
    cluster_secret: Option<String>,
    snapshot_log_bytes: u64,
}

/// Serves the store in `dir` (creating it), or node `args.node_id` on `dir`, on
/// `args.bind`, and closes it cleanly on SIGTERM or SIGINT once the requests in flight are
/// answered. Every check of the arguments and of the directory is made before anything
/// starts or is written.
pub fn run(dir: &Path, durability: Durability, args: &ServeArgs) -> Outcome {
    let options = server_options(args)?;
    let node = match args.node_id {
        Some(id) => {
            let node = node_settings(args, &options, id)?;
            refuse_single_node_store(dir, id)?;
            Some(node)
        }
        None => {
            refuse_node_dir(dir)?;
            None
        }
    };
    let runtime = kv_server::runtime(runtime_threads(args.threads, node.is_some()))?;
    runtime.block_on(async {
        // Both signals are caught before the store opens (their handlers replace the
        // default, which kills the process), so one that comes during the open still
        // closes it cleanly. `tokio::signal::ctrl_c()` would register SIGINT's handler
        // only when first polled, after the open.
        let stop = Stop {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        };
        match node {
            Some(node) => serve_node(dir, durability, options, node, stop).await,
            None => serve_store(dir, durability, options, stop).await,
        }
    })
}

/// The server's options from the arguments; refuses a non-loopback address without a
/// password in protected mode.
fn server_options(args: &ServeArgs) -> Outcome<ServerOptions> {
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
    Ok(ServerOptions {
        bind: args.bind,
        requirepass,
        maxclients: usize::try_from(args.maxclients).unwrap_or(usize::MAX),
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        output_limit: usize::try_from(args.output_limit).unwrap_or(usize::MAX),
        write_timeout: Duration::from_secs(args.write_timeout),
        commit_timeout: Duration::from_secs(args.commit_timeout),
        ..ServerOptions::default()
    })
}

/// Node `id`'s Raft address and secret from the arguments; refuses a non-loopback Raft
/// address without a secret in protected mode.
fn node_settings(args: &ServeArgs, options: &ServerOptions, id: u64) -> Outcome<NodeSettings> {
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
            SocketAddr::new(args.bind.ip(), port)
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
    Ok(NodeSettings {
        id,
        raft_bind,
        cluster_secret,
        snapshot_log_bytes: args.snapshot_log_bytes,
    })
}

/// Refuses to start node `id` on a directory that holds a single-node store: the node would
/// start empty beside it (in `raft/` and `sm/`) and hide its data.
fn refuse_single_node_store(dir: &Path, id: u64) -> Outcome {
    if !dir.join(WAL_DIR).exists() {
        return Ok(());
    }
    let dir = dir.display();
    Err(Failure::Usage(format!(
        "{dir} holds a single-node store ({dir}/{WAL_DIR}/): node {id} started there would \
         begin empty beside it and hide that data. Serve the store as it is with `kv --dir {dir} \
         serve` (without --node-id), or give the node an empty --dir; to bring the data into a \
         cluster, export it (`kv --dir {dir} export`) and write the entries through a node"
    )))
}

/// SIGTERM and SIGINT, caught from before anything opens.
struct Stop {
    terminate: Signal,
    interrupt: Signal,
}

impl Stop {
    /// Completes at the first of the signals.
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }

    /// Whether a signal came already (during an open).
    async fn came(&mut self) -> bool {
        // A signal reaches `Signal` only once the runtime's driver has run: on a
        // current-thread runtime nothing ran it during the open, which held the thread.
        tokio::task::yield_now().await;
        tokio::select! {
            biased;
            () = self.wait() => true,
            () = std::future::ready(()) => false,
        }
    }
}

/// Says on standard output that the server accepts connections.
fn ready(line: &str) -> Outcome {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready: listening on {line}")?;
    stdout.flush()?;
    Ok(())
}

/// The single-node server.
async fn serve_store(
    dir: &Path,
    durability: Durability,
    options: ServerOptions,
    mut stop: Stop,
) -> Outcome {
    let store = KvStore::open_with(dir, kv_server::store_options().durability(durability))?;
    tell_damage(&store, dir);
    if stop.came().await {
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
    ready(&server.local_addr().map_err(Failure::runtime)?.to_string())?;
    server
        .run_until(stop.wait())
        .await
        .map_err(Failure::runtime)
}

/// `kv serve --node-id N`: node N of a replicated cluster, its writes through Raft.
async fn serve_node(
    dir: &Path,
    durability: Durability,
    options: ServerOptions,
    settings: NodeSettings,
    mut stop: Stop,
) -> Outcome {
    let id = settings.id;
    let mut node_options = kv_raft::NodeOptions::new(id, settings.raft_bind);
    node_options.store = kv_server::store_options().durability(durability);
    node_options.cluster_secret = settings.cluster_secret;
    node_options.snapshot_log_bytes = settings.snapshot_log_bytes;
    // The start claims the directory for the id first, and refuses another node's with the
    // directory untouched.
    let node = kv_raft::Node::start(dir, node_options)
        .await
        .map_err(|e| match e {
            kv_raft::Error::NodeId { .. } => Failure::Usage(e.to_string()),
            e => Failure::runtime(e),
        })?;
    let server = match ReplicatedServer::bind(node.clone(), options).await {
        Ok(server) => server,
        Err(error) => {
            let _ = node.shutdown().await;
            return Err(Failure::runtime(error));
        }
    };
    let addr = server.local_addr().map_err(Failure::runtime)?;
    ready(&format!("{addr} (node {id}, raft on {})", node.raft_addr()))?;
    let served = server
        .run_until(stop.wait())
        .await
        .map_err(Failure::runtime);
    node.shutdown().await.map_err(Failure::runtime)?;
    served
}

/// The runtime's worker threads: `asked`, or else half the cores (at least one) for the
/// single-node server, one per core for a node (its Raft tasks run on them too).
///
/// The server has threads of its own besides (the writer, the log's flusher and the one
/// that prepares its next pages), and the kernel's network work takes CPU of its own; a
/// second runtime thread on 2 cores then costs more in context switches and wake-ups
/// than it brings. Measured on 2 cores against redis-benchmark (50 clients, 1 s batch
/// window), one thread against two: `SET -P 1` 176-181k requests/s against 147k, `INCR
/// -P 1` 171-178k against 155-157k, `GET -P 1` level; at `-P 16`, where one thread now
/// gathers its replies ([`kv_server`]'s connections do when their runtime has one
/// thread), `SET` 700-717k against 609-646k and `INCR` 808-832k against 722-821k.
fn runtime_threads(asked: Option<u64>, node: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match asked {
        Some(n) => usize::try_from(n).unwrap_or(1),
        None if node => cores,
        None => (cores / 2).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::runtime_threads;

    #[test]
    fn the_single_node_server_takes_half_the_cores_and_a_node_every_one() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(runtime_threads(None, false), (cores / 2).max(1));
        assert!(runtime_threads(None, false) >= 1);
        assert_eq!(runtime_threads(None, true), cores);
        assert_eq!(runtime_threads(Some(3), false), 3);
        assert_eq!(runtime_threads(Some(3), true), 3);
    }
}
