//! `kv repair --to NEWDIR`: salvages a damaged store into a new one, the way
//! `redis-check-aof --fix` salvages an append-only file, except that the damaged store is
//! never changed: it is read through a read-only view ([`open::view`]) in
//! `RecoveryMode::Salvage`, which skips damaged units instead of refusing them, and every
//! live entry read is written to a fresh store at NEWDIR with its deadline as it was.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use kv_store::{RecoveryMode, WriteBatch};

use crate::failure::{Failure, Outcome};
use crate::open;

/// Entries a batch of the copy holds.
const BATCH: usize = 1_000;

/// Copies what can be read of the store in `dir` into a new store at `to`.
pub fn repair(dir: &Path, to: &Path) -> Outcome {
    refuse_unless_empty(to)?;
    if overlaps(dir, to) {
        return Err(Failure::Usage(format!(
            "--to must name a directory outside the store being repaired ({})",
            dir.display()
        )));
    }
    let source = open::view(dir, RecoveryMode::Salvage)?;
    let report = source.open_report().clone();
    // Synced before the report, whatever the mode: the cheapest is enough.
    let target = open::create(to, open::ONE_SHOT)?;

    let mut copied = 0u64;
    let mut batch = WriteBatch::new();
    let mut scan = source.range::<&[u8]>(..)?;
    while let Some((key, value, deadline)) = scan.next_with_deadline() {
        match deadline {
            Some(at) => batch.put_with_deadline(key, value, UNIX_EPOCH + Duration::from_millis(at)),
            None => batch.put(key, value),
        };
        if batch.len() == BATCH {
            copied += flush(&target, &mut batch)?;
        }
    }
    copied += flush(&target, &mut batch)?;
    drop(scan);
    target.sync()?;
    target.close()?;

    let damage = open::damage_lines(&report.recovery);
    for line in &damage {
        println!("{line}");
    }
    let skipped: u64 = report.recovery.corruptions.iter().map(|c| c.bytes).sum();
    println!(
        "salvaged {copied} entries from {} into {}; {} damaged ranges ({skipped} bytes) left \
         behind; {} was not changed",
        dir.display(),
        to.display(),
        damage.len(),
        dir.display()
    );
    Ok(())
}

fn flush(target: &kv_store::KvStore, batch: &mut WriteBatch) -> Outcome<u64> {
    let entries = batch.len() as u64;
    if entries > 0 {
        target.write(std::mem::take(batch))?;
    }
    Ok(entries)
}

/// `to` must be missing or an empty directory: a repair never writes over anything.
fn refuse_unless_empty(to: &Path) -> Outcome {
    match std::fs::read_dir(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Failure::Usage(format!(
            "{} is a file: kv repair writes only into a new or empty directory",
            to.display()
        ))),
        Err(e) => Err(Failure::Runtime(format!(
            "cannot read {}: {e}",
            to.display()
        ))),
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(Failure::Usage(format!(
                "{} is not empty: kv repair writes only into a new or empty directory",
                to.display()
            ))),
        },
    }
}

/// Whether `store` and `to` are one inside the other (or the same): writing the new store
/// there would change the one being repaired. `to` may not exist yet, so its nearest
/// existing ancestor stands for it.
fn overlaps(store: &Path, to: &Path) -> bool {
    let Ok(store) = store.canonicalize() else {
        return false;
    };
    let mut existing = to.to_path_buf();
    let mut rest = Vec::new();
    while existing.canonicalize().is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => return false,
        }
    }
    let mut to = existing.canonicalize().unwrap_or(existing);
    to.extend(rest.iter().rev());
    to.starts_with(&store) || store.starts_with(&to)
}
