//! `kv export` and `kv import`: every live entry as one JSON object a line.
//!
//! ```text
//! {"key":"user:1","value":"ada"}
//! {"key":"session:9","value":"token","expires_at_ms":1767225600000}
//! {"key_b64":"/wA=","value":"binary key"}
//! ```
//!
//! UTF-8 keys and values are JSON strings under `key` and `value`; any other bytes are
//! standard base64 under `key_b64` and `value_b64`. `expires_at_ms`, the entry's deadline in
//! unix milliseconds, is there only for entries that have one.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use indicatif::ProgressBar;
use kv_store::{KvStore, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::failure::{describe, Failure, Outcome};
use crate::{open, progress};

/// One line of the format.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

impl<'a> Line<'a> {
    fn of(key: &'a [u8], value: &'a [u8], deadline: Option<u64>) -> Self {
        let (key, key_b64) = text_or_base64(key);
        let (value, value_b64) = text_or_base64(value);
        Line {
            key,
            key_b64,
            value,
            value_b64,
            expires_at_ms: deadline,
        }
    }

    /// The entry's key, value and deadline, or what is wrong with the line.
    fn into_entry(self) -> Result<Entry, String> {
        let key = bytes_of("key", self.key, self.key_b64)?;
        let value = bytes_of("value", self.value, self.value_b64)?;
        Ok(Entry {
            key,
            value,
            deadline: self.expires_at_ms,
        })
    }
}

fn text_or_base64(bytes: &[u8]) -> (Option<Cow<'_, str>>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(Cow::Borrowed(text)), None),
        Err(_) => (None, Some(BASE64.encode(bytes))),
    }
}

fn bytes_of(
    field: &str,
    text: Option<Cow<'_, str>>,
    base64: Option<String>,
) -> Result<Vec<u8>, String> {
    match (text, base64) {
        (Some(text), None) => Ok(text.into_owned().into_bytes()),
        (None, Some(encoded)) => BASE64
            .decode(encoded.as_bytes())
            .map_err(|e| format!("\"{field}_b64\" is not standard base64: {e}")),
        (Some(_), Some(_)) => Err(format!(
            "both \"{field}\" and \"{field}_b64\"; give one of them"
        )),
        (None, None) => Err(format!("no \"{field}\" (or \"{field}_b64\")")),
    }
}

/// An entry read from a line.
#[derive(Debug)]
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    deadline: Option<u64>,
}

/// `kv export`: every live entry of the store, to `output` or standard output.
pub fn export(dir: &Path, output: Option<&Path>) -> Outcome {
    let store = open::for_reading(dir)?;
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", path.display())))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    let bar = progress::entries("exporting", store.len() as u64);
    let written = write_all(&store, &mut out, &bar).and_then(|()| out.flush());
    bar.finish_and_clear();
    drop(out);
    match written {
        // Whoever reads the export stopped reading (`kv export | head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && output.is_none() => {}
        other => other?,
    }
    Ok(())
}

/// Writes every live entry of `store` as a line to `out`, in key order (the CLI opens every
/// store with the ordered index), so that exporting the same data always gives the same bytes.
fn write_all(store: &KvStore, out: &mut impl Write, bar: &ProgressBar) -> io::Result<()> {
    let mut scan = store.range::<&[u8]>(..).map_err(io::Error::other)?;
    while let Some((key, value, deadline)) = scan.next_with_deadline() {
        serde_json::to_writer(&mut *out, &Line::of(&key, &value, deadline))?;
        out.write_all(b"\n")?;
        bar.inc(1);
    }
    Ok(())
}

/// `kv import`: writes the entries of `file` (standard input when `None` or `-`) in atomic
/// batches of `batch` entries. Entries whose deadline has passed are skipped; every other
/// deadline is written exactly as given. A bad line, or a batch the store refuses, stops the
/// import: earlier batches stay written, the failing one is not, and the message says which
/// lines those are.
pub fn import(dir: &Path, file: Option<&Path>, batch: u64) -> Outcome {
    let (input, size): (Box<dyn BufRead>, Option<u64>) = match file {
        Some(path) if path != Path::new("-") => {
            let file = File::open(path)
                .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))?;
            // A regular file's size is what the bar counts to; a FIFO's says nothing.
            let size = file
                .metadata()
                .ok()
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len());
            (Box::new(BufReader::new(file)), size)
        }
        _ => (Box::new(io::stdin().lock()), None),
    };
    let store = open::create(dir, open::ONE_SHOT)?;
    let bar = progress::input("importing", size);
    let mut importer = Importer {
        bar: &bar,
        store: &store,
        pending: Vec::new(),
        pending_from: 0,
        batch: usize::try_from(batch).unwrap_or(usize::MAX),
        written: 0,
        expired: 0,
        batches: 0,
    };
    let read = importer.read(input);
    bar.finish_and_clear();
    let closed = store.close();
    match (read, closed) {
        (Err(Failure::Runtime(message)), Err(e)) => {
            return Err(Failure::Runtime(format!(
                "{message}; then closing the store failed too: {}",
                describe(&e)
            )))
        }
        (read, closed) => {
            read?;
            closed?;
        }
    }
    println!(
        "imported {} entries in {} batches ({} already expired, skipped)",
        importer.written, importer.batches, importer.expired
    );
    Ok(())
}

/// The state of an import.
struct Importer<'a> {
    /// Counts the bytes read; its message, the entries written.
    bar: &'a ProgressBar,
    store: &'a KvStore,
    pending: Vec<Entry>,
    /// The line number of the first entry in `pending`.
    pending_from: u64,
    batch: usize,
    written: u64,
    expired: u64,
    batches: u64,
}

impl Importer<'_> {
    fn read(&mut self, mut input: Box<dyn BufRead + '_>) -> Outcome {
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let read = input.read_until(b'\n', &mut line)?;
            if read == 0 {
                return self.flush(number);
            }
            self.bar.inc(read as u64);
            number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let entry = parse_line(&line).map_err(|e| {
                let from = if self.pending.is_empty() {
                    number
                } else {
                    self.pending_from
                };
                // The input is wrong, not the store: a usage error (exit 2), as the help says.
                Failure::Usage(format!("line {number}: {e}; {}", self.written_before(from)))
            })?;
            if self.pending.is_empty() {
                self.pending_from = number;
            }
            self.pending.push(entry);
            if self.pending.len() >= self.batch {
                self.flush(number)?;
            }
        }
    }

    /// What an error message says was written, when the batch starting at line `from` is not.
    fn written_before(&self, from: u64) -> String {
        format!(
            "{} entries of earlier batches (lines before {from}) were written, none from line \
             {from} on",
            self.written
        )
    }

    /// Writes the pending entries, read up to line `last`, as one atomic batch.
    fn flush(&mut self, last: u64) -> Outcome {
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut batch = WriteBatch::new();
        let mut expired = 0;
        for entry in self.pending.drain(..) {
            match entry.deadline {
                None => {
                    batch.put(entry.key, entry.value);
                }
                Some(deadline) if deadline > now => {
                    let at = UNIX_EPOCH + Duration::from_millis(deadline);
                    batch.put_with_deadline(entry.key, entry.value, at);
                }
                Some(_) => expired += 1,
            }
        }
        let entries = batch.len() as u64;
        if entries > 0 {
            self.store.write(batch).map_err(|e| {
                if e.is_fatal() {
                    // The log failed under this batch: whether it reached the disk is unknown.
                    return Failure::Runtime(format!(
                        "lines {}-{last}: the store failed while writing this batch, which may \
                         or may not have been written: {}; {} entries of earlier batches \
                         (lines before {}) were acknowledged",
                        self.pending_from,
                        describe(&e),
                        self.written,
                        self.pending_from
                    ));
                }
                // The store speaks of its one write ("nothing was written"); the import
                // says what that means across its batches instead.
                let e = describe(&e);
                let e = e.trim_end_matches("; nothing was written");
                Failure::Runtime(format!(
                    "lines {}-{last}: the store refused this batch: {e}; {}",
                    self.pending_from,
                    self.written_before(self.pending_from)
                ))
            })?;
            self.batches += 1;
            self.written += entries;
            self.bar
                .set_message(format!("{} entries written", self.written));
        }
        self.expired += expired;
        Ok(())
    }
}

/// One line as an entry. The line must be a JSON object: serde would also take an array of
/// the fields in order, which is not the format.
fn parse_line(line: &[u8]) -> Result<Entry, String> {
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err("not a JSON object (each line is one object, as `kv export` writes)".into());
    }
    serde_json::from_slice::<Line<'_>>(line)
        .map_err(|e| e.to_string())
        .and_then(Line::into_entry)
}

/// The system clock in unix milliseconds, as the store's deadlines count.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &[u8], value: &[u8], deadline: Option<u64>) -> String {
        serde_json::to_string(&Line::of(key, value, deadline)).unwrap()
    }

    fn entry(text: &str) -> Result<Entry, String> {
        parse_line(text.as_bytes())
    }

    #[test]
    fn utf8_is_text_and_other_bytes_are_base64() {
        assert_eq!(line(b"k", b"v", None), r#"{"key":"k","value":"v"}"#);
        assert_eq!(
            line(b"\xff\x00", "é\n".as_bytes(), Some(7)),
            r#"{"key_b64":"/wA=","value":"é\n","expires_at_ms":7}"#
        );
    }

    #[test]
    fn lines_read_back_as_their_entries() {
        let e = entry(&line(b"\xff\x00", b"\x80", Some(7))).unwrap();
        assert_eq!(
            (e.key, e.value, e.deadline),
            (b"\xff\x00".to_vec(), b"\x80".to_vec(), Some(7))
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(entry(r#"{"value":"v"}"#)
            .unwrap_err()
            .contains("no \"key\""));
        assert!(entry(r#"{"key":"k","key_b64":"aw==","value":"v"}"#)
            .unwrap_err()
            .contains("both"));
        assert!(entry(r#"{"key":"k","value_b64":"!!"}"#)
            .unwrap_err()
            .contains("base64"));
        assert!(entry(r#"{"key":"k","value":"v","ttl":3}"#)
            .unwrap_err()
            .contains("unknown field"));
        assert!(entry(r#"{"key":"k","value":"v","expires_at_ms":-1}"#).is_err());
        assert!(entry("not json").is_err());
        assert!(entry(r#"["k","v"]"#)
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(entry(r#"  {"key":"k","value":"v"}"#).is_ok());
    }
}
