//! Segment files: their names, and the list of them in a directory.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fs::FileSystem;

/// The file name of segment `id`: the id in decimal, zero-padded to six digits, then `.wal`.
pub fn file_name(id: u64) -> String {
    format!("{id:06}.wal")
}

/// The id of the segment named `name`, or `None` when `name` is not a segment's name. Only
/// the canonical spelling counts, so that two files can never claim the same id.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() < 6 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u64 = stem.parse().ok()?;
    (file_name(id) == name).then_some(id)
}

/// The ids of the segments in `dir`, in increasing order.
pub(crate) fn list(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u64>> {
    let names = fs
        .read_dir(dir)
        .map_err(|e| Error::io("list the log directory", dir, e))?;
    let mut ids: Vec<u64> = names.iter().filter_map(|n| parse_file_name(n)).collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(0), "000000.wal");
        assert_eq!(file_name(1_234_567), "1234567.wal");
        assert_eq!(parse_file_name("000042.wal"), Some(42));
        assert_eq!(parse_file_name("1234567.wal"), Some(1_234_567));
    }

    #[test]
    fn other_files_are_not_segments() {
        for name in [
            "LOCK",
            "42.wal",
            "0000042.wal",
            "00004a.wal",
            "000042.wal.tmp",
            ".wal",
        ] {
            assert_eq!(parse_file_name(name), None, "{name}");
        }
    }
}
