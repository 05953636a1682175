//! Opening the store a command works on: always with the ordered index (so scans work),
//! creating the directory only for commands that write.

use std::path::Path;

use kv_store::{Durability, IndexKind, KvStore, Options, WAL_DIR};

use crate::failure::{Failure, Outcome};

/// The options every command but `verify` opens a store with.
pub fn options(durability: Durability) -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .durability(durability)
}

/// Opens the store in `dir`, creating it if needed (for commands that write).
pub fn create(dir: &Path, durability: Durability) -> Outcome<KvStore> {
    Ok(KvStore::open_with(dir, options(durability))?)
}

/// Opens the store in `dir`, which must exist: reading commands report a missing store
/// instead of creating an empty one.
pub fn existing(dir: &Path, durability: Durability) -> Outcome<KvStore> {
    require_store(dir)?;
    create(dir, durability)
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
