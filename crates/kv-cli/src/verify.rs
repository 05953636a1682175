//! `kv verify`: reads and checks every record of a store's log, reports damage, and changes
//! nothing: not a byte of a segment, not a file of the directory.
//!
//! The store is opened with `RecoveryMode::Strict`, which refuses any damage, a torn tail
//! included, instead of repairing it, through [`ReadOnlyLog`], which refuses every write
//! anyway (see that module for why Strict alone is not enough). verify takes no lock: it
//! reads the store as it is, even while another process writes and compacts it. A record
//! that process is writing at the end of the log looks like a torn tail, and a compaction
//! can remove files under the open; such a failure does not hold still, so the check is
//! run again ([`settle`]): damage is what fails the same way with the files unchanged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_store::{Damage, Durability, KvStore, Options, RecoveryMode, WAL_DIR};

use crate::failure::{describe, find_in_chain, Failure, Outcome};
use crate::readonly_fs::ReadOnlyLog;
use crate::settle::{self, Unsettled};
use crate::{open, progress};

/// Why one attempt to open the store for checking failed.
#[derive(Debug)]
enum Refusal {
    /// A compaction ran during the open, which may have missed what it deleted: try again.
    Compacted,
    /// The store refused to open: damage, or an error reading it. With the error, its whole
    /// message and the message of the log's or snapshot's damage in it, if any, both naming
    /// the store's directory.
    Store(kv_store::Error, String, Option<String>),
    /// Something around the open failed (the private directory, listing the store).
    Other(Failure),
}

/// Checks the store in `dir`; fails with [`Failure::Damaged`] (exit code 4) on damage.
pub fn verify(dir: &Path) -> Outcome {
    open::require_store(dir)?;
    let real = dir.join(WAL_DIR);
    if segment_ids(&real)?.is_empty() {
        println!("checked {}: the log holds no segment yet", dir.display());
        println!("OK");
        return Ok(());
    }
    let opening = progress::opening(dir);
    let opened = settle::settle(
        dir,
        || settle::unchanged_manifest(dir, || open_checked(dir)).unwrap_or(Err(Refusal::Compacted)),
        |refusal| match refusal {
            Refusal::Compacted => None,
            Refusal::Store(_, message, _) => Some(message.clone()),
            Refusal::Other(failure) => Some(format!("{failure:?}")),
        },
    );
    opening.finish_and_clear();
    let store = match opened {
        Ok(store) => store,
        Err(Unsettled::Stable(Refusal::Store(e, message, damage))) => {
            return report_damage(dir, &e, &message, damage.as_deref())
        }
        Err(Unsettled::Stable(Refusal::Other(failure))) => return Err(failure),
        Err(Unsettled::Stable(Refusal::Compacted) | Unsettled::Changing(Refusal::Compacted)) => {
            return Err(Failure::Runtime(format!(
                "the store in {} was compacted during each of {} checks (another process is \
                 writing and compacting it)",
                dir.display(),
                settle::ATTEMPTS
            )))
        }
        Err(Unsettled::Changing(refusal)) => {
            return Err(Failure::Runtime(format!(
                "the store in {} kept changing while it was checked (another process is \
                 writing or compacting it); {} checks failed, the last with: {}",
                dir.display(),
                settle::ATTEMPTS,
                match refusal {
                    Refusal::Store(_, message, _) => message,
                    other => format!("{other:?}"),
                }
            )))
        }
    };
    let (store, _private) = store;

    let (mut keys, mut bytes) = (0u64, 0u64);
    store.for_each(|key, value, _| {
        keys += 1;
        bytes += (key.len() + value.len()) as u64;
    });
    let stats = store.stats();
    let recovery = store.open_report().clone();
    // Dropped, not closed: closing would try to sync and trim, which the layer refuses.
    drop(store);
    println!(
        "checked {}: the log's {}, {}, {}; every checksum holds",
        dir.display(),
        counted(recovery.recovery.segments_scanned, "segment"),
        counted(recovery.recovery.records, "record"),
        counted(recovery.recovery.bytes_scanned, "byte"),
    );
    if stats.snapshot_bytes > 0 {
        println!(
            "snapshot: {} bytes, every record checked",
            stats.snapshot_bytes
        );
    }
    println!(
        "live: {keys} keys, {bytes} bytes of keys and values read ({} expired entries skipped)",
        recovery.expired_dropped
    );
    println!("OK");
    Ok(())
}

/// `n` and `what`, in the plural unless `n` is one.
fn counted(n: impl Into<u64>, what: &str) -> String {
    match n.into() {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// Opens the store in `dir` strictly through a [`ReadOnlyLog`] over a private directory,
/// which is returned with it (the store's logs take their locks there).
fn open_checked(dir: &Path) -> Result<(KvStore, tempfile::TempDir), Refusal> {
    let private = tempfile::tempdir().map_err(|e| Refusal::Other(e.into()))?;
    // The store's directories, empty: each log (the store's, and each snapshot's) takes its
    // lock on these, past the layer; every other path maps onto `dir`.
    open::mirror_directories(dir, private.path()).map_err(Refusal::Other)?;
    let options = Options::default()
        .durability(Durability::None)
        .recovery_mode(RecoveryMode::Strict)
        .sweep_interval(Duration::ZERO)
        .auto_compact(None)
        .file_system(Arc::new(ReadOnlyLog::new(
            private.path().to_path_buf(),
            dir.to_path_buf(),
        )));
    match KvStore::open_with(private.path(), options) {
        Ok(store) => Ok((store, private)),
        Err(e) => {
            // Messages name the private directory; show the real one instead.
            let in_real_terms = |text: String| {
                text.replace(
                    &private.path().display().to_string(),
                    &dir.display().to_string(),
                )
            };
            let message = in_real_terms(describe(&e));
            let damage = damage_in(&e).map(|damage| in_real_terms(describe(damage)));
            Err(Refusal::Store(e, message, damage))
        }
    }
}

/// Prints what is damaged, from the error `e` (whose whole message is `message`, and its
/// log's or snapshot's damage's `damage_message`), and fails.
fn report_damage(
    dir: &Path,
    e: &kv_store::Error,
    message: &str,
    damage_message: Option<&str>,
) -> Outcome {
    let damaged = || {
        Failure::Damaged(format!(
            "the store in {} is damaged (nothing was changed)",
            dir.display()
        ))
    };
    if store_damage(e) {
        println!("DAMAGED: {message}");
        return Err(damaged());
    }
    let (Some(damage), Some(damage_message)) = (damage_in(e), damage_message) else {
        return Err(Failure::Runtime(message.to_string()));
    };
    let in_log = matches!(
        e,
        kv_store::Error::Corrupt {
            damage: Damage::Log | Damage::MissingSegment { .. },
            ..
        }
    );
    if in_log {
        println!("DAMAGED: {damage_message}");
    } else {
        println!("DAMAGED: {message}");
    }
    if let kv_wal::Error::Corrupt { segment, .. } = damage {
        let newest = segment_ids(&dir.join(WAL_DIR))?.last().copied();
        if in_log && Some(*segment) == newest {
            println!(
                "note: this is the newest segment: when nothing valid follows the damage it is \
                 the torn tail a crash leaves, which opening the store normally cuts off"
            );
        }
    }
    Err(damaged())
}

/// Whether `error` is damage to what the store keeps beside its log: a damaged or missing
/// manifest, or a snapshot that is not what the manifest says.
fn store_damage(error: &kv_store::Error) -> bool {
    match error {
        kv_store::Error::Corrupt { damage, .. } => matches!(
            damage,
            Damage::Manifest | Damage::MissingManifest | Damage::Snapshot { .. }
        ),
        _ => false,
    }
}

/// The damage of the log or of a snapshot behind `error`, if damage is what it is.
fn damage_in(error: &kv_store::Error) -> Option<&kv_wal::Error> {
    find_in_chain::<kv_wal::Error>(error, |e| {
        matches!(
            e,
            kv_wal::Error::Corrupt { .. } | kv_wal::Error::MissingSegment { .. }
        )
    })
}

/// The ids of the segments in `wal`, in order.
fn segment_ids(wal: &Path) -> Outcome<Vec<u64>> {
    let cannot_read = |e: std::io::Error| {
        Failure::Runtime(format!("cannot read the directory {}: {e}", wal.display()))
    };
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(wal).map_err(cannot_read)? {
        let name = entry.map_err(cannot_read)?.file_name();
        if let Some(id) = name.to_str().and_then(kv_wal::segment::parse_file_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("snapshots");
        let message = |failure: Failure| match failure {
            Failure::Runtime(message) => message,
            other => panic!("{other:?}"),
        };
        let shown = message(open::mirror_directories(&missing, dir.path()).unwrap_err());
        assert!(shown.contains(&missing.display().to_string()), "{shown}");
        let shown = message(segment_ids(&missing).unwrap_err());
        assert!(shown.contains(&missing.display().to_string()), "{shown}");
    }
}
