//! The one-shot subcommands that read or write single entries: get, put, del, scan, stats,
//! compact. Each opens the store, does its work, and closes it.

use std::ffi::OsStr;
use std::io::Write;
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use kv_store::Durability;

use crate::cli::ScanArgs;
use crate::failure::{Failure, Outcome};
use crate::{open, stats};
use kv_cli::output;

/// `kv get`: prints the value (or `(nil)` and fails with [`Failure::Missing`]).
pub fn get(dir: &Path, durability: Durability, key: &OsStr, raw: bool) -> Outcome {
    let store = open::for_reading(dir, durability)?;
    let value = store.get(key.as_bytes());
    store.close()?;
    let mut out = std::io::stdout().lock();
    match value {
        Some(value) if raw => out.write_all(&value)?,
        Some(value) => writeln!(out, "{}", output::word(&value))?,
        None => {
            writeln!(out, "{}", output::NIL)?;
            out.flush()?;
            return Err(Failure::Missing);
        }
    }
    out.flush()?;
    Ok(())
}

/// `kv put`: writes, closes (which syncs), prints `OK`.
pub fn put(
    dir: &Path,
    durability: Durability,
    key: &OsStr,
    value: &OsStr,
    ttl: Option<u64>,
) -> Outcome {
    let store = open::create(dir, durability)?;
    let (key, value) = (key.as_bytes(), value.as_bytes());
    match ttl {
        Some(seconds) => store.put_with_ttl(key, value, Duration::from_secs(seconds))?,
        None => store.put(key, value)?,
    }
    store.close()?;
    println!("OK");
    Ok(())
}

/// `kv del`: removes the key from an existing store, prints `OK`.
pub fn del(dir: &Path, durability: Durability, key: &OsStr) -> Outcome {
    let store = open::existing(dir, durability)?;
    store.delete(key.as_bytes())?;
    store.close()?;
    println!("OK");
    Ok(())
}

/// `kv scan`: `key value` lines of the range [from, to) within the prefix.
pub fn scan(dir: &Path, durability: Durability, args: &ScanArgs) -> Outcome {
    let store = open::for_reading(dir, durability)?;
    let bytes = |s: &Option<std::ffi::OsString>| s.as_deref().map(|s| s.as_bytes().to_vec());
    let (lower, upper) = bounds(
        bytes(&args.prefix).as_deref(),
        bytes(&args.from),
        bytes(&args.to),
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !is_empty_range(&lower, &upper) {
        let limit = args.limit.unwrap_or(usize::MAX);
        for (key, value) in store.range((lower, upper))?.take(limit) {
            write_pair(&mut out, &key, &value)?;
        }
    }
    out.flush()?;
    drop(out);
    store.close()?;
    Ok(())
}

/// Writes one `key value` line of a scan.
pub fn write_pair(out: &mut impl Write, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    writeln!(out, "{} {}", output::word(key), output::word(value))
}

/// The key range of a scan: at or after `from` and the prefix, before `to` and the first
/// key past the prefix.
fn bounds(
    prefix: Option<&[u8]>,
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let lower = match (prefix, from) {
        (Some(p), Some(f)) => Some(f.max(p.to_vec())),
        (Some(p), None) => Some(p.to_vec()),
        (None, f) => f,
    };
    let upper = match (prefix.and_then(kv_store::prefix_end), to) {
        (Some(p), Some(t)) => Some(t.min(p)),
        (p, t) => p.or(t),
    };
    (
        lower.map_or(Bound::Unbounded, Bound::Included),
        upper.map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// Whether the range holds no key (an inverted range is empty, not an error).
fn is_empty_range(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Excluded(u)) => l >= u,
        _ => false,
    }
}

/// `kv stats`: the figures as text or JSON.
pub fn stats(dir: &Path, durability: Durability, as_json: bool) -> Outcome {
    let store = open::for_reading(dir, durability)?;
    let figures = store.stats();
    let opened = store.open_report().clone();
    store.close()?;
    if as_json {
        println!("{}", stats::json(&figures, &opened));
    } else {
        print!("{}", stats::text(&figures));
    }
    Ok(())
}

/// `kv compact`: rewrites the live data as a snapshot and drops the log before it; prints
/// `OK` and what it did.
pub fn compact(dir: &Path, durability: Durability) -> Outcome {
    let store = open::existing(dir, durability)?;
    let result = store.compact();
    store.close()?;
    let report = result?;
    println!(
        "OK snapshot {}: {} entries, {} bytes of log and snapshot before, {} after, {:.1} ms",
        report.snapshot,
        report.entries,
        report.bytes_before,
        report.bytes_after,
        report.duration.as_secs_f64() * 1e3
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn included(b: &[u8]) -> Bound<Vec<u8>> {
        Bound::Included(b.to_vec())
    }

    fn excluded(b: &[u8]) -> Bound<Vec<u8>> {
        Bound::Excluded(b.to_vec())
    }

    #[test]
    fn a_prefix_is_the_range_up_to_its_successor() {
        assert_eq!(
            bounds(Some(b"user:"), None, None),
            (included(b"user:"), excluded(b"user;"))
        );
        assert_eq!(
            bounds(Some(b"a\xff\xff"), None, None),
            (included(b"a\xff\xff"), excluded(b"b"))
        );
        assert_eq!(
            bounds(Some(b"\xff"), None, None),
            (included(b"\xff"), Bound::Unbounded)
        );
    }

    #[test]
    fn from_and_to_narrow_the_prefix() {
        assert_eq!(
            bounds(Some(b"k"), Some(b"k5".to_vec()), Some(b"k7".to_vec())),
            (included(b"k5"), excluded(b"k7"))
        );
        assert_eq!(
            bounds(Some(b"k"), Some(b"a".to_vec()), Some(b"z".to_vec())),
            (included(b"k"), excluded(b"l"))
        );
        assert_eq!(
            bounds(None, None, Some(b"m".to_vec())),
            (Bound::Unbounded, excluded(b"m"))
        );
    }

    #[test]
    fn an_inverted_range_is_empty() {
        let (lower, upper) = bounds(None, Some(b"z".to_vec()), Some(b"a".to_vec()));
        assert!(is_empty_range(&lower, &upper));
        let (lower, upper) = bounds(Some(b"k"), Some(b"x".to_vec()), None);
        assert!(is_empty_range(&lower, &upper));
    }
}
