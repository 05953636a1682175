//! The one-shot subcommands that read or write single entries: get, put, del, scan, stats,
//! compact. Each opens the store, does its work, and closes it. Those that only read open it
//! through a read-only view ([`open::for_reading`]): no lock, no byte changed.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::cli::ScanArgs;
use crate::failure::{Failure, Outcome};
use crate::key_arg::{self, Encoding};
use crate::{open, progress, stats};
use kv_cli::output;

/// `kv get`: prints the value (or `(nil)` and fails with [`Failure::Missing`]).
pub fn get(dir: &Path, key: &OsStr, encoding: Encoding, raw: bool) -> Outcome {
    let key = key_arg::decode(key, encoding, "the key")?;
    let store = open::for_reading(dir)?;
    let value = store.get(&key);
    drop(store);
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
    key: &OsStr,
    value: &OsStr,
    encoding: Encoding,
    ttl: Option<u64>,
) -> Outcome {
    let key = key_arg::decode(key, encoding, "the key")?;
    // A value is taken as typed (JSON, paths and text keep their backslashes and quotes),
    // unless --hex says otherwise: only keys must match what kv printed.
    let value = match encoding {
        Encoding::Hex => key_arg::decode(value, encoding, "the value")?,
        Encoding::Escaped => value.as_bytes().to_vec(),
    };
    let store = open::create(dir, open::ONE_SHOT)?;
    let written = match ttl {
        Some(seconds) => store.put_with_ttl(key, value, Duration::from_secs(seconds)),
        None => store.put(key, value),
    };
    let closed = store.close();
    written?;
    closed?;
    println!("OK");
    Ok(())
}

/// `kv del`: removes the key from an existing store and prints `OK`; an absent key writes
/// nothing, prints `(nil)` and fails with [`Failure::Missing`].
pub fn del(dir: &Path, key: &OsStr, encoding: Encoding) -> Outcome {
    let key = key_arg::decode(key, encoding, "the key")?;
    let store = open::existing(dir, open::ONE_SHOT)?;
    let removed = store.remove(key);
    let closed = store.close();
    let removed = removed?;
    closed?;
    if removed.is_none() {
        println!("{}", output::NIL);
        return Err(Failure::Missing);
    }
    println!("OK");
    Ok(())
}

/// `kv scan`: `key value` lines of the range [from, to) within the prefix.
pub fn scan(dir: &Path, args: &ScanArgs) -> Outcome {
    let encoding = Encoding::hex_if(args.hex);
    let bytes = |word: &Option<OsString>, what: &str| {
        word.as_deref()
            .map(|word| key_arg::decode(word, encoding, what))
            .transpose()
    };
    let prefix = bytes(&args.prefix, "--prefix")?;
    let (lower, upper) = bounds(
        prefix.as_deref(),
        bytes(&args.from, "--from")?,
        bytes(&args.to, "--to")?,
    );
    let store = open::for_reading(dir)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !is_empty_range(&lower, &upper) {
        let limit = args.limit.unwrap_or(usize::MAX);
        for (key, value) in store.range((lower, upper))?.take(limit) {
            match write_pair(&mut out, &key, &value) {
                // Whoever reads the scan stopped reading (`kv scan | head`): not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                other => other?,
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
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
pub fn stats(dir: &Path, as_json: bool) -> Outcome {
    let store = open::for_reading(dir)?;
    let figures = store.stats();
    let opened = store.open_report().clone();
    drop(store);
    if as_json {
        println!("{}", stats::json(&figures, &opened));
    } else {
        print!("{figures}");
    }
    Ok(())
}

/// `kv compact`: rewrites the live data as a snapshot and drops the log before it; prints
/// `OK` and what it did.
pub fn compact(dir: &Path) -> Outcome {
    let store = open::existing(dir, open::ONE_SHOT)?;
    let spinner = progress::compaction(dir, store.len() as u64);
    let result = store.compact();
    spinner.finish_and_clear();
    let closed = store.close();
    let report = result?;
    closed?;
    println!("OK {report}");
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
