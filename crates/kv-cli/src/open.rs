//! Opening the store a command works on: always with the ordered index (so scans work),
//! creating the directory only for commands that write. Commands that only read fall back to
//! a read-only view ([`view`]) on a file system they cannot write.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_store::{Durability, IndexKind, KvStore, Options, RecoveryMode, WAL_DIR};
use kv_wal::DirLock;

use crate::failure::{describe, find_in_chain, Failure, Outcome};
use crate::view_fs::ReadOnlyView;

/// The options every command but `verify` opens a store with.
pub fn options(durability: Durability) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .durability(durability)
}

/// Opens the store in `dir`, creating it if needed (for commands that write).
pub fn create(dir: &Path, durability: Durability) -> Outcome<KvStore> {
    let store = KvStore::open_with(dir, options(durability))?;
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

/// Opens the store in `dir` for a command that only reads: in place when it can, and through
/// a read-only [`view`] when the store cannot be written (a read-only mount, or a directory
/// this user may read but not write), where an open in place cannot even start.
pub fn for_reading(dir: &Path, durability: Durability) -> Outcome<Reading> {
    require_store(dir)?;
    match KvStore::open_with(dir, options(durability)) {
        Ok(store) => {
            tell_damage(&store, dir);
            Ok(Reading::InPlace(store))
        }
        Err(e) if cannot_write(&e) => {
            let view = view(dir, RecoveryMode::TolerateTornTail)?;
            tell_damage(&view, dir);
            Ok(Reading::Viewed(view))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `error` says the store's directory cannot be written: a file system mounted
/// read-only, or no permission.
fn cannot_write(error: &kv_store::Error) -> bool {
    find_in_chain::<std::io::Error>(error, |io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
        )
    })
    .is_some()
}

/// A store opened for reading, in place or through a view.
pub enum Reading {
    /// Opened as any command opens it.
    InPlace(KvStore),
    /// Opened through a read-only view.
    Viewed(View),
}

impl Reading {
    /// Closes the store (a view has nothing to close: it changed nothing).
    pub fn close(self) -> Outcome {
        match self {
            Reading::InPlace(store) => Ok(store.close()?),
            Reading::Viewed(_) => Ok(()),
        }
    }
}

impl Deref for Reading {
    type Target = KvStore;

    fn deref(&self) -> &KvStore {
        match self {
            Reading::InPlace(store) => store,
            Reading::Viewed(view) => &view.store,
        }
    }
}

/// A store opened through a [`ReadOnlyView`]: whatever the open does (cutting a torn tail,
/// skipping damage, cleaning up after a crash) is seen by this process only, and the store's
/// directory keeps every byte. While it lives it holds a shared lock on the store, so no
/// writer opens it meanwhile.
pub struct View {
    // Dropped in this order: the store, then its private directory, then the lock.
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

/// Opens the store in `dir` through a read-only view, recovering with `mode`.
pub fn view(dir: &Path, mode: RecoveryMode) -> Outcome<View> {
    require_store(dir)?;
    let lock = lock_shared(dir)?;
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
        _locks: lock,
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

/// Fails with "no store at DIR" unless `dir` holds a log directory.
pub fn require_store(dir: &Path) -> Outcome {
    if dir.join(WAL_DIR).is_dir() {
        Ok(())
    } else {
        Err(Failure::Runtime(format!(
            "no store at {} (no {WAL_DIR}/ directory inside); `kv put` or `kv import` creates one",
            dir.display()
        )))
    }
}
