//! Records encoded ahead of time, so writers can encode on their own threads.

use crate::compression::Compression;
use crate::record::{encode_parts, Expiry, Parts, Record, RecordKind};

/// Encoded records waiting to be appended with one write. Build it with
/// [`push`](Self::push) and [`push_atomic`](Self::push_atomic), join several with
/// [`extend`](Self::extend), and hand it to [`Wal::append_encoded`](crate::Wal::append_encoded).
///
/// Encoding does not check key and value sizes: check each record with
/// [`SizeLimits::check`](crate::SizeLimits::check) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    bytes: Vec<u8>,
    records: usize,
}

impl Encoded {
    /// An empty buffer.
    pub fn new() -> Self {
        Encoded::default()
    }

    /// An empty buffer that holds `bytes` of records before it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        Encoded {
            bytes: Vec::with_capacity(bytes),
            records: 0,
        }
    }

    /// Adds one record on its own.
    pub fn push(&mut self, record: &Record) {
        record.encode_with(&mut self.bytes, false);
        self.records += 1;
    }

    /// Adds one put record on its own, from borrowed parts (no [`Record`] to build): what a
    /// snapshot writes for each of millions of entries.
    pub fn push_put(&mut self, key: &[u8], value: &[u8], expiry: Expiry, compression: Compression) {
        let parts = Parts {
            kind: RecordKind::Put,
            key,
            value,
            expiry,
            compression,
        };
        encode_parts(&mut self.bytes, parts, false);
        self.records += 1;
    }

    /// Adds records that recovery keeps all or none of.
    pub fn push_atomic(&mut self, records: &[Record]) {
        for (i, record) in records.iter().enumerate() {
            record.encode_with(&mut self.bytes, i + 1 < records.len());
        }
        self.records += records.len();
    }

    /// Adds everything `other` holds after what this holds.
    pub fn extend(&mut self, other: &Encoded) {
        self.bytes.extend_from_slice(&other.bytes);
        self.records += other.records;
    }

    /// Empties the buffer, keeping its memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records = 0;
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many records it holds.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}
