//! Opening the store a command works on: always with the ordered index (so scans work),
//! creating the directory only for commands that write. Commands that only read open it
//! through a read-only view ([`for_reading`]) that takes no lock and changes no byte, so
//! that they work while another process has the store open, and on a read-only mount.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_store::{Durability, IndexKind, KvStore, Options, RecoveryMode, WAL_DIR};
use kv_wal::DirLock;

use crate::failure::{describe, Failure, Outcome};
use crate::progress;
use crate::settle::{self, Unsettled};
use crate::view_fs::ReadOnlyView;

/// The durability of the one-shot commands that write (put, del, import, compact, repair):
/// they answer only after closing the store, which syncs it, so every mode makes the same
/// promise when they answer, and the one that syncs least is the fastest.
pub const ONE_SHOT: Durability = Durability::None;

/// The options every command but `verify` and `serve` opens a store with. Compactions go
/// as fast as the disk takes them: the store is this process's alone, and no writer's sync
/// waits behind them (`kv serve` keeps the library's pace).
pub fn options(durability: Durability) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .durability(durability)
        .compaction_rate(None)
}

/// Opens the store in `dir`, creating it if needed (for commands that write).
pub fn create(dir: &Path, durability: Durability) -> Outcome<KvStore> {
    refuse_node_dir(dir)?;
    let opening = progress::opening(dir);
    let store = KvStore::open_with(dir, options(durability));
    opening.finish_and_clear();
    let store = store?;
    tell_damage(&store, dir);
    Ok(store)
}

/// Says on standard error what opening the store in `dir` cut or skipped, if anything: an
/// open that changes the log never does it silently.
pub fn tell_damage(store: &KvStore, dir: &Path) {
    for line in damage_lines(&store.open_report().recovery) {
        eprintln!("kv: note: {}: {line}", dir.display());
    }
}

/// One line for each piece of damage recovery dealt with.
pub fn damage_lines(recovery: &kv_wal::RecoveryInfo) -> Vec<String> {
    recovery
        .corruptions
        .iter()
        .map(|c| {
            let what = match c.action {
                kv_wal::DamageAction::Truncated => "cut off the end of",
                kv_wal::DamageAction::Skipped => "skipped damaged bytes in",
            };
            format!(
                "{what} {}/{} at offset {}: {} bytes ({})",
                WAL_DIR,
                kv_wal::segment::file_name(c.segment),
                c.offset,
                c.bytes,
                c.kind
            )
        })
        .collect()
}

/// Opens the store in `dir`, which must exist: reading commands report a missing store
/// instead of creating an empty one.
pub fn existing(dir: &Path, durability: Durability) -> Outcome<KvStore> {
    require_store(dir)?;
    create(dir, durability)
}

/// Opens the store in `dir` for a command that only reads: through a read-only view that
/// takes no lock, as the store is at that moment, even while another process writes and
/// compacts it. An open that such a process disturbs is tried again ([`settle`]).
pub fn for_reading(dir: &Path) -> Outcome<View> {
    require_store(dir)?;
    let opening = progress::opening(dir);
    // `None`: a compaction overlapped the open, which may have missed what it deleted.
    let view = settle::settle(
        dir,
        || match settle::unchanged_manifest(dir, || {
            open_view(dir, RecoveryMode::TolerateTornTail, Vec::new())
        }) {
            Ok(opened) => opened.map_err(Some),
            Err(settle::Compacted) => Err(None),
        },
        |failure| failure.as_ref().map(|failure| format!("{failure:?}")),
    );
    opening.finish_and_clear();
    let view = view.map_err(|unsettled| match unsettled {
        Unsettled::Stable(Some(failure)) => failure,
        Unsettled::Stable(None) | Unsettled::Changing(_) => Failure::Runtime(format!(
            "the store in {} kept changing while it was read (another process is writing \
             and compacting it): {} opens failed, the last {}",
            dir.display(),
            settle::ATTEMPTS,
            match unsettled {
                Unsettled::Changing(Some(
                    Failure::Usage(m) | Failure::Runtime(m) | Failure::Damaged(m),
                )) => format!("with: {m}"),
                _ => "because a compaction ran during it".to_string(),
            }
        )),
    })?;
    tell_view_cuts(&view, dir);
    Ok(view)
}

/// Says on standard error what a view left out at the end of the log: it changed nothing,
/// and the bytes left out are a write still in progress or a crash's torn tail (which the
/// next open that writes cuts off, with a note of its own).
fn tell_view_cuts(store: &KvStore, dir: &Path) {
    for c in &store.open_report().recovery.corruptions {
        eprintln!(
            "kv: note: {}: left out the end of {}/{} at offset {}: {} bytes ({}): a write still \
             in progress, or the torn tail of a crash (nothing was changed)",
            dir.display(),
            WAL_DIR,
            kv_wal::segment::file_name(c.segment),
            c.offset,
            c.bytes,
            c.kind
        );
    }
}

/// A store opened through a [`ReadOnlyView`]: whatever the open does (cutting a torn tail,
/// skipping damage, cleaning up after a crash) is seen by this process only, and the store's
/// directory keeps every byte. Dropping it closes nothing real.
pub struct View {
    // Dropped in this order: the store, then its private directory, then the locks (if any).
    store: KvStore,
    _private: tempfile::TempDir,
    _locks: Vec<DirLock>,
}

impl Deref for View {
    type Target = KvStore;

    fn deref(&self) -> &KvStore {
        &self.store
    }
}

/// Opens the store in `dir` through a read-only view, recovering with `mode`, under a shared
/// lock, so that no writer opens the store meanwhile (what `kv repair` reads must hold still).
pub fn view(dir: &Path, mode: RecoveryMode) -> Outcome<View> {
    require_store(dir)?;
    let locks = lock_shared(dir)?;
    open_view(dir, mode, locks)
}

/// Opens the store in `dir` through a read-only view, recovering with `mode`; `locks` are
/// kept as long as the view.
fn open_view(dir: &Path, mode: RecoveryMode, locks: Vec<DirLock>) -> Outcome<View> {
    let private = tempfile::tempdir().map_err(|e| {
        Failure::Runtime(format!(
            "cannot make a private directory under {} for a read-only view: {e}",
            std::env::temp_dir().display()
        ))
    })?;
    mirror_directories(dir, private.path())?;
    let options = options(Durability::None)
        .recovery_mode(mode)
        .sweep_interval(Duration::ZERO)
        .auto_compact(None)
        .file_system(Arc::new(ReadOnlyView::new(
            private.path().to_path_buf(),
            dir.to_path_buf(),
        )));
    let store = KvStore::open_with(private.path(), options).map_err(|e| {
        // Messages name the private directory; show the real one instead.
        Failure::Runtime(describe(&e).replace(
            &private.path().display().to_string(),
            &dir.display().to_string(),
        ))
    })?;
    Ok(View {
        store,
        _private: private,
        _locks: locks,
    })
}

/// Shared locks on the store's directory and on its `wal/`: a writer holds both exclusively
/// (the store's first, and it cleans up nothing before it has it), so while these are held no
/// writer can open the store, or start cleaning up after a crash under a reader, and a store
/// that a writer has open is reported as locked rather than read half-written. Locking a
/// directory writes nothing and needs no write access, so this works on a read-only mount.
pub fn lock_shared(dir: &Path) -> Outcome<Vec<DirLock>> {
    let mut locks = Vec::new();
    for locked in [dir.to_path_buf(), dir.join(WAL_DIR)] {
        if !locked.is_dir() {
            continue;
        }
        match DirLock::acquire_shared(&locked) {
            Ok(lock) => locks.push(lock),
            Err(kv_wal::Error::DirectoryLocked { .. }) => {
                return Err(kv_store::Error::Locked {
                    path: dir.to_path_buf(),
                }
                .into())
            }
            Err(e) => return Err(Failure::Runtime(describe(&e))),
        }
    }
    Ok(locks)
}

/// Creates in `to` every directory there is under `from`, empty.
pub fn mirror_directories(from: &Path, to: &Path) -> Outcome {
    let cannot_read = |e: std::io::Error| {
        Failure::Runtime(format!("cannot read the directory {}: {e}", from.display()))
    };
    for entry in std::fs::read_dir(from).map_err(cannot_read)? {
        let entry = entry.map_err(cannot_read)?;
        // Following links: a store may keep `wal/` on another disk through one.
        if std::fs::metadata(entry.path())
            .map_err(cannot_read)?
            .is_dir()
        {
            let target = to.join(entry.file_name());
            std::fs::create_dir(&target).map_err(|e| {
                Failure::Runtime(format!("cannot create {}: {e}", target.display()))
            })?;
            mirror_directories(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Refuses a directory that holds a cluster node's state (`kv serve --node-id`): a store
/// opened or created there would stand beside the node's, empty, hiding its data.
pub fn refuse_node_dir(dir: &Path) -> Outcome {
    let node_parts: Vec<&str> = [
        kv_raft::NODE_ID_FILE,
        kv_raft::RAFT_LOG_DIR,
        kv_raft::STATE_MACHINE_DIR,
    ]
    .into_iter()
    .filter(|part| dir.join(part).exists())
    .collect();
    if node_parts.is_empty() {
        return Ok(());
    }
    let stored = kv_raft::stored_node_id(dir).map_err(|e| Failure::Runtime(describe(&e)))?;
    let (node, serve) = match stored {
        Some(id) => (format!("cluster node {id}"), format!("--node-id {id}")),
        None => ("a cluster node".to_string(), "--node-id N".to_string()),
    };
    Err(Failure::Usage(format!(
        "{} holds the state of {node} ({}), not a single-node store: a store opened there \
         would start empty beside it and hide its data. Serve it with `kv --dir {} serve {serve}` \
         and reach its data through the node (`kv --connect HOST:PORT`), or give another --dir",
        dir.display(),
        node_parts.join(", "),
        dir.display(),
    )))
}

/// Fails with "no store at DIR" unless `dir` holds a log directory.
pub fn require_store(dir: &Path) -> Outcome {
    refuse_node_dir(dir)?;
    if dir.join(WAL_DIR).is_dir() {
        Ok(())
    } else {
        Err(Failure::Runtime(format!(
            "no store at {} (no {WAL_DIR}/ directory inside); `kv put` or `kv import` creates one",
            dir.display()
        )))
    }
}
