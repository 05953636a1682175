//! `kv verify`: reads and checks every record of a store's log, reports damage, and changes
//! nothing: not a byte of a segment, not a file of the directory.
//!
//! The store is opened with `RecoveryMode::Strict`, which refuses any damage, a torn tail
//! included, instead of repairing it, through [`ReadOnlyLog`], which refuses every write
//! anyway (see that module for why Strict alone is not enough). While it reads, verify holds
//! a shared lock on the store's `wal/` directory, so no writer can open the store meanwhile, and a
//! store that a writer has open is reported as locked rather than read half-written.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kv_store::{Damage, Durability, KvStore, Options, RecoveryMode, WAL_DIR};

use crate::failure::{describe, find_in_chain, Failure, Outcome};
use crate::open;
use crate::readonly_fs::ReadOnlyLog;

/// Checks the store in `dir`; fails (exit code 1) on damage.
pub fn verify(dir: &Path) -> Outcome {
    open::require_store(dir)?;
    let real = dir.join(WAL_DIR);
    let _lock = open::lock_shared(dir)?;
    let segments = segment_ids(&real)?;
    let Some(&newest) = segments.last() else {
        println!("checked {}: the log holds no segment yet", dir.display());
        println!("OK");
        return Ok(());
    };

    let private = tempfile::tempdir()?;
    // The store's directories, empty: each log (the store's, and each snapshot's) takes its
    // lock on these, past the layer; every other path maps onto `dir`.
    open::mirror_directories(dir, private.path())?;
    let options = Options::default()
        .durability(Durability::None)
        .recovery_mode(RecoveryMode::Strict)
        .sweep_interval(Duration::ZERO)
        .auto_compact(None)
        .file_system(Arc::new(ReadOnlyLog::new(
            private.path().to_path_buf(),
            dir.to_path_buf(),
        )));
    // Messages name the private directory; show the real one instead.
    let in_real_terms = |message: String| {
        message.replace(
            &private.path().display().to_string(),
            &dir.display().to_string(),
        )
    };

    let store = match KvStore::open_with(private.path(), options) {
        Ok(store) => store,
        Err(e) if store_damage(&e) => {
            println!("DAMAGED: {}", in_real_terms(describe(&e)));
            return Err(Failure::Runtime(format!(
                "the store in {} is damaged (nothing was changed)",
                dir.display()
            )));
        }
        Err(e) => {
            let Some(damage) = damage_in(&e) else {
                return Err(Failure::Runtime(in_real_terms(describe(&e))));
            };
            let in_log = matches!(
                e,
                kv_store::Error::Corrupt {
                    damage: Damage::Log | Damage::MissingSegment { .. },
                    ..
                }
            );
            if in_log {
                println!("DAMAGED: {}", in_real_terms(damage.to_string()));
            } else {
                println!("DAMAGED: {}", in_real_terms(describe(&e)));
            }
            if let kv_wal::Error::Corrupt { segment, .. } = damage {
                if in_log && *segment == newest {
                    println!(
                        "note: this is the newest segment: when nothing valid follows the \
                         damage it is the torn tail a crash leaves, which opening the store \
                         normally cuts off"
                    );
                }
            }
            return Err(Failure::Runtime(format!(
                "the store in {} is damaged (nothing was changed)",
                dir.display()
            )));
        }
    };

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
        "checked {}: {} segments, {} records, {} bytes of records; every checksum holds",
        dir.display(),
        recovery.recovery.segments_scanned,
        recovery.recovery.records,
        recovery.recovery.bytes_scanned
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
