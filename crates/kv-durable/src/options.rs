//! How durable writes are, and how values are stored.

use std::sync::Arc;
use std::time::Duration;

use kv_core::{Clock, SystemClock};
use kv_wal::{Compression, SizeLimits};

/// When a write returns, relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After `fdatasync`: the write survives a power loss.
    Sync,
    /// After the record reached the operating system; a background sync makes it durable
    /// within the window. Survives a process crash at once, a power loss after the window.
    /// As a per-write setting ([`WriteOptions`]) the window holds whatever the store's mode:
    /// the write and everything before it are synced within it.
    Batch(Duration),
    /// After the record reached the operating system, which writes it back when it likes.
    /// Survives a process crash.
    None,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::Batch(Duration::from_millis(5))
    }
}

/// How values are compressed: with `kind`, when at least `threshold` bytes long (a value that
/// would not shrink is stored raw either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionPolicy {
    /// The compression to try.
    pub kind: Compression,
    /// Values shorter than this are stored raw.
    pub threshold: usize,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            kind: Compression::None,
            threshold: 256,
        }
    }
}

impl CompressionPolicy {
    /// The compression for a value of `len` bytes.
    pub fn for_len(&self, len: usize) -> Compression {
        if len >= self.threshold {
            self.kind
        } else {
            Compression::None
        }
    }
}

/// The store-wide settings of the durable layer.
#[derive(Debug, Clone)]
pub struct Options {
    /// The default durability of writes.
    pub durability: Durability,
    /// Value compression.
    pub compression: CompressionPolicy,
    /// Where "now" comes from, for TTL deadlines.
    pub clock: Arc<dyn Clock>,
    /// The longest key and value a put may hold. The log reads back records up to these
    /// or its own configured limits, whichever are higher, so what was written is always read;
    /// a delete's key is held to what the log reads back.
    pub limits: SizeLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::default(),
            compression: CompressionPolicy::default(),
            clock: Arc::new(SystemClock),
            limits: SizeLimits::default(),
        }
    }
}

/// Settings of one write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Overrides the store's durability for this write; `Some(Durability::Sync)` makes it
    /// return only once it is on stable storage.
    pub durability: Option<Durability>,
}

impl WriteOptions {
    /// A write that returns once it is on stable storage.
    pub fn sync() -> Self {
        WriteOptions {
            durability: Some(Durability::Sync),
        }
    }

    /// These options, with `durability` for this write instead of the store's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kv_durable::{Durability, WriteOptions};
    /// let relaxed = WriteOptions::default().durability(Durability::Batch(Duration::from_secs(1)));
    /// assert_eq!(relaxed.durability, Some(Durability::Batch(Duration::from_secs(1))));
    /// assert_eq!(WriteOptions::default().durability(Durability::Sync), WriteOptions::sync());
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}
