//! The record: what one log entry holds, and its byte encoding.
//!
//! ```text
//! varint klen | varint vlen | flags | [varint ttl] | key | value | crc32c (4 bytes, LE)
//! ```
//!
//! The CRC covers every byte before it. `FORMAT.md` beside this crate's manifest documents
//! the flag bits, including this project's extensions.

use bytes::Bytes;

use crate::compression::Compression;
use crate::error::CorruptionKind;
use crate::varint;

/// Bit 0: the record deletes its key.
const FLAG_TOMBSTONE: u8 = 0b0000_0001;
/// Bit 1: a TTL varint follows the flags byte.
const FLAG_TTL: u8 = 0b0000_0010;
/// Bits 2-3: the value's compression.
const COMPRESSION_SHIFT: u8 = 2;
const COMPRESSION_MASK: u8 = 0b0000_1100;
/// Bit 4 (extension): the TTL field is an absolute deadline in unix milliseconds.
const FLAG_DEADLINE: u8 = 0b0001_0000;
/// Bit 5 (extension): the next record belongs to the same atomic batch as this one.
const FLAG_BATCH_CONTINUES: u8 = 0b0010_0000;
/// Bit 6 (extension): the record is the log's own (a segment's seal or opening, `seal.rs`),
/// not a user's.
const FLAG_LOG_META: u8 = 0b0100_0000;

/// Length of the trailing checksum.
const CRC_LEN: usize = 4;
/// nori-wal treats fewer bytes than this as an incomplete record.
const MIN_AVAILABLE: usize = 6;
/// The longest possible header: two length varints, the flags byte and a TTL varint.
pub(crate) const MAX_HEADER_LEN: usize = 3 * varint::MAX_LEN + 1;
/// Lengths above this cannot be real (the format has no such limit, but no writer of this
/// format produces records past 4 GiB, and no `SizeLimits` lets one be written) and are
/// reported as damage, not as a record to wait for.
const MAX_FIELD_LEN: u64 = crate::config::MAX_FIELD_SIZE as u64;

/// Whether a record sets a key or deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Sets the key to the value.
    Put,
    /// Deletes the key (a tombstone; the value is empty).
    Delete,
}

/// When a key written by a record stops being visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Expiry {
    /// The key does not expire.
    #[default]
    Never,
    /// nori-wal 0.1's relative TTL in milliseconds. It says nothing about when it was written,
    /// so readers count it from the moment they replay the record.
    AfterMillis(u64),
    /// This project's absolute deadline, in milliseconds since the unix epoch.
    AtUnixMillis(u64),
}

/// One entry of the log, with its value uncompressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Whether this sets or deletes the key.
    pub kind: RecordKind,
    /// The key.
    pub key: Bytes,
    /// The value, uncompressed; empty for a delete.
    pub value: Bytes,
    /// When the key expires.
    pub expiry: Expiry,
    /// How the value is to be stored. On a decoded record, how it was stored.
    pub compression: Compression,
}

impl Record {
    /// A record that sets `key` to `value`.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Record {
            kind: RecordKind::Put,
            key: key.into(),
            value: value.into(),
            expiry: Expiry::Never,
            compression: Compression::None,
        }
    }

    /// A record that sets `key` to `value` until `deadline_unix_ms`.
    pub fn put_with_deadline(
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        deadline_unix_ms: u64,
    ) -> Self {
        Record {
            expiry: Expiry::AtUnixMillis(deadline_unix_ms),
            ..Record::put(key, value)
        }
    }

    /// A record that deletes `key`.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Record {
            kind: RecordKind::Delete,
            key: key.into(),
            value: Bytes::new(),
            expiry: Expiry::Never,
            compression: Compression::None,
        }
    }

    /// The same record, with its value to be stored with `compression`. A value that does not
    /// get smaller is stored raw.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The same record with another expiry.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Appends the record's encoding to `out`, so that callers can reuse one buffer.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_with(out, false);
    }

    /// Appends the encoding; `continues_batch` marks that the next record is part of the same
    /// atomic batch.
    pub(crate) fn encode_with(&self, out: &mut Vec<u8>, continues_batch: bool) {
        encode_parts(
            out,
            Parts {
                kind: self.kind,
                key: &self.key,
                value: &self.value,
                expiry: self.expiry,
                compression: self.compression,
            },
            continues_batch,
        );
    }

    /// The number of bytes `encode_into` appends, for records stored without compression.
    pub fn encoded_len(&self) -> usize {
        let value_len = match self.kind {
            RecordKind::Put => self.value.len(),
            RecordKind::Delete => 0,
        };
        let ttl_len = match self.expiry {
            Expiry::Never => 0,
            Expiry::AfterMillis(ms) | Expiry::AtUnixMillis(ms) => varint::encoded_len(ms),
        };
        varint::encoded_len(self.key.len() as u64)
            + varint::encoded_len(value_len as u64)
            + 1
            + ttl_len
            + self.key.len()
            + value_len
            + CRC_LEN
    }
}

/// A record's parts, borrowed: what encoding needs, without owning a [`Record`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) kind: RecordKind,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
    pub(crate) expiry: Expiry,
    pub(crate) compression: Compression,
}

/// Appends the encoding of `parts` to `out`; `continues_batch` marks that the next record is
/// part of the same atomic batch.
pub(crate) fn encode_parts(out: &mut Vec<u8>, parts: Parts<'_>, continues_batch: bool) {
    let start = out.len();
    let mut flags = 0u8;
    if parts.kind == RecordKind::Delete {
        flags |= FLAG_TOMBSTONE;
    }
    let ttl = match parts.expiry {
        Expiry::Never => None,
        Expiry::AfterMillis(ms) => Some(ms),
        Expiry::AtUnixMillis(ms) => {
            flags |= FLAG_DEADLINE;
            Some(ms)
        }
    };
    if ttl.is_some() {
        flags |= FLAG_TTL;
    }
    if continues_batch {
        flags |= FLAG_BATCH_CONTINUES;
    }
    let value: &[u8] = match parts.kind {
        RecordKind::Put => parts.value,
        RecordKind::Delete => &[],
    };

    // The value's stored length is known only after compressing it, and it comes before
    // the key, so the value is compressed into a scratch buffer first.
    let (compression, stored) = if parts.compression == Compression::None || value.is_empty() {
        (Compression::None, None)
    } else {
        let mut stored = Vec::new();
        let used = parts.compression.compress_into(value, &mut stored);
        (used, (used != Compression::None).then_some(stored))
    };
    flags |= (compression as u8) << COMPRESSION_SHIFT;
    let stored_value = stored.as_deref().unwrap_or(value);

    out.reserve(MAX_HEADER_LEN + parts.key.len() + stored_value.len() + CRC_LEN);
    varint::encode(parts.key.len() as u64, out);
    varint::encode(stored_value.len() as u64, out);
    out.push(flags);
    if let Some(ttl) = ttl {
        varint::encode(ttl, out);
    }
    out.extend_from_slice(parts.key);
    out.extend_from_slice(stored_value);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Appends a record of the log's own (`seal.rs`): a tombstone of `key`, flagged with bit 6.
/// A nori-wal 0.1 reader, which ignores bit 6, reads it as the delete of that key.
pub(crate) fn encode_log_meta(out: &mut Vec<u8>, key: &[u8]) {
    let start = out.len();
    varint::encode(key.len() as u64, out);
    varint::encode(0, out);
    out.push(FLAG_TOMBSTONE | FLAG_LOG_META);
    out.extend_from_slice(key);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// A record decoded in place, borrowing its bytes from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    flags: u8,
    ttl: u64,
    key: &'a [u8],
    stored_value: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Whether this sets or deletes the key.
    pub fn kind(&self) -> RecordKind {
        if self.flags & FLAG_TOMBSTONE != 0 {
            RecordKind::Delete
        } else {
            RecordKind::Put
        }
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The value as stored: compressed if [`compression`](Self::compression) says so.
    pub fn stored_value(&self) -> &'a [u8] {
        self.stored_value
    }

    /// How the value is stored.
    pub fn compression(&self) -> Compression {
        // Validated when the record was decoded.
        Compression::from_bits((self.flags & COMPRESSION_MASK) >> COMPRESSION_SHIFT)
            .unwrap_or_default()
    }

    /// When the key expires.
    pub fn expiry(&self) -> Expiry {
        match (self.flags & FLAG_TTL != 0, self.flags & FLAG_DEADLINE != 0) {
            (false, _) => Expiry::Never,
            (true, false) => Expiry::AfterMillis(self.ttl),
            (true, true) => Expiry::AtUnixMillis(self.ttl),
        }
    }

    /// Whether the next record belongs to the same atomic batch.
    pub(crate) fn continues_batch(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }

    /// Whether this is one of the log's own records (`seal.rs`), never handed to users.
    pub(crate) fn is_log_meta(&self) -> bool {
        self.flags & FLAG_LOG_META != 0
    }

    /// The value, decompressed, refusing one longer than `limit` bytes.
    ///
    /// # Errors
    ///
    /// The [`CorruptionKind`] of a value that does not decompress to what its header says,
    /// or to more than `limit` bytes.
    pub fn value(&self, limit: usize) -> Result<Bytes, CorruptionKind> {
        match self.compression() {
            Compression::None if self.stored_value.len() <= limit => {
                Ok(Bytes::copy_from_slice(self.stored_value))
            }
            compression => compression
                .decompress(self.stored_value, limit)
                .map(Bytes::from)
                .ok_or(CorruptionKind::BadCompressedValue),
        }
    }

    /// An owned copy, with the value decompressed (refusing one longer than `limit` bytes).
    ///
    /// # Errors
    ///
    /// As [`value`](Self::value).
    pub fn to_record(&self, limit: usize) -> Result<Record, CorruptionKind> {
        Ok(Record {
            kind: self.kind(),
            key: Bytes::copy_from_slice(self.key),
            value: self.value(limit)?,
            expiry: self.expiry(),
            compression: self.compression(),
        })
    }
}

/// The outcome of decoding the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, checksummed record and the number of bytes it takes.
    Record(RecordRef<'a>, usize),
    /// The buffer ends before the record does. `len` is the record's whole length when the
    /// header could be read, so a reader knows how much more to fetch.
    Incomplete {
        /// The record's length, when its header was complete.
        len: Option<usize>,
    },
    /// The bytes are not a valid record.
    Corrupt(CorruptionKind),
}

/// Decodes the record at the front of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    match parse(buf, true) {
        Ok(layout) => Decoded::Record(layout.record(buf), layout.len()),
        Err(outcome) => outcome,
    }
}

/// Where the fields of a decoded record lie, relative to its first byte: enough to rebuild
/// its [`RecordRef`] from the same buffer without parsing or checksumming it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    flags: u8,
    ttl: u64,
    header_len: usize,
    klen: usize,
    vlen: usize,
}

impl Layout {
    /// The record's whole length, checksum included.
    pub(crate) fn len(&self) -> usize {
        self.header_len + self.klen + self.vlen + CRC_LEN
    }

    /// Whether the next record belongs to the same atomic batch.
    pub(crate) fn continues_batch(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }

    /// Whether this is one of the log's own records (`seal.rs`).
    pub(crate) fn is_log_meta(&self) -> bool {
        self.flags & FLAG_LOG_META != 0
    }

    /// The record, from a buffer that starts where it starts.
    pub(crate) fn record<'a>(&self, buf: &'a [u8]) -> RecordRef<'a> {
        let key_end = self.header_len + self.klen;
        RecordRef {
            flags: self.flags,
            ttl: self.ttl,
            key: &buf[self.header_len..key_end],
            stored_value: &buf[key_end..key_end + self.vlen],
        }
    }
}

/// Reads the varint at `*at`, moving `at` past it.
#[inline]
fn field(buf: &[u8], at: &mut usize) -> Result<u64, Decoded<'static>> {
    // Lengths under 128 take one byte: the common case, without the loop.
    if let Some(&byte) = buf.get(*at) {
        if byte < 0x80 {
            *at += 1;
            return Ok(u64::from(byte));
        }
    }
    match varint::decode(&buf[(*at).min(buf.len())..]) {
        varint::Decoded::Value(value, used) => {
            *at += used;
            Ok(value)
        }
        varint::Decoded::Incomplete => Err(Decoded::Incomplete { len: None }),
        varint::Decoded::Overflow => Err(Decoded::Corrupt(CorruptionKind::BadLength)),
    }
}

/// The key length, stored value length and whole length that the header at the front of
/// `buf` claims, if the header reads (the record itself may be cut short or fail its
/// checksum).
pub(crate) fn claimed_lengths(buf: &[u8]) -> Option<Claim> {
    let mut at = 0;
    let klen = field(buf, &mut at).ok()?;
    let vlen = field(buf, &mut at).ok()?;
    let flags = *buf.get(at)?;
    at += 1;
    if flags & FLAG_TTL != 0 {
        field(buf, &mut at).ok()?;
    }
    if klen > MAX_FIELD_LEN || vlen > MAX_FIELD_LEN {
        return None;
    }
    Some(Claim {
        klen,
        vlen,
        len: at as u64 + klen + vlen + CRC_LEN as u64,
        continues_batch: flags & FLAG_BATCH_CONTINUES != 0,
    })
}

/// What a record's header claims, whether or not the record is whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Key length.
    pub(crate) klen: u64,
    /// Stored value length.
    pub(crate) vlen: u64,
    /// The whole record's length.
    pub(crate) len: u64,
    /// Whether the record says the next one belongs to its atomic batch.
    pub(crate) continues_batch: bool,
}

/// Parses the record at the front of `buf`, checking its checksum when `verify` is set (a
/// cursor that validated a record skips the check the second time it reads it).
#[inline]
pub(crate) fn parse(buf: &[u8], verify: bool) -> Result<Layout, Decoded<'static>> {
    if buf.len() < MIN_AVAILABLE {
        return Err(Decoded::Incomplete { len: None });
    }
    let mut at = 0;
    let klen = field(buf, &mut at)?;
    let vlen = field(buf, &mut at)?;
    let Some(&flags) = buf.get(at) else {
        return Err(Decoded::Incomplete { len: None });
    };
    at += 1;
    let ttl = if flags & FLAG_TTL != 0 {
        field(buf, &mut at)?
    } else {
        0
    };
    if klen > MAX_FIELD_LEN || vlen > MAX_FIELD_LEN {
        return Err(Decoded::Corrupt(CorruptionKind::BadLength));
    }
    let layout = Layout {
        flags,
        ttl,
        header_len: at,
        klen: klen as usize,
        vlen: vlen as usize,
    };
    let len = layout.len();
    if buf.len() < len {
        return Err(Decoded::Incomplete { len: Some(len) });
    }
    if verify {
        let body_end = len - CRC_LEN;
        let stored_crc = u32::from_le_bytes(buf[body_end..len].try_into().expect("4 bytes"));
        if crc32c::crc32c(&buf[..body_end]) != stored_crc {
            return Err(Decoded::Corrupt(CorruptionKind::Checksum));
        }
    }
    if Compression::from_bits((flags & COMPRESSION_MASK) >> COMPRESSION_SHIFT).is_none() {
        return Err(Decoded::Corrupt(CorruptionKind::InvalidCompression));
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 1 << 24;

    fn round_trip(record: &Record, continues: bool) -> (Record, bool, usize) {
        let mut out = Vec::new();
        record.encode_with(&mut out, continues);
        match decode(&out) {
            Decoded::Record(r, len) => (r.to_record(LIMIT).unwrap(), r.continues_batch(), len),
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn put_matches_the_nori_wal_bytes() {
        // The first record of the nori-wal fixture: put user:0000 = value-0.
        let mut out = Vec::new();
        Record::put("user:0000", "value-0").encode_into(&mut out);
        let mut expected = vec![9, 7, 0];
        expected.extend_from_slice(b"user:0000value-0");
        expected.extend_from_slice(&[0x0f, 0x7d, 0x3e, 0x79]);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_delete_carries_no_value() {
        let mut out = Vec::new();
        Record::delete("k").encode_into(&mut out);
        assert_eq!(&out[..4], &[1, 0, FLAG_TOMBSTONE, b'k']);
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn every_flag_bit_is_reported() {
        let mut out = Vec::new();
        Record::put_with_deadline("k", vec![b'z'; 500], 1_700_000_000_000)
            .with_compression(Compression::Zstd)
            .encode_with(&mut out, true);
        let Decoded::Record(r, _) = decode(&out) else {
            panic!()
        };
        assert_eq!(r.kind(), RecordKind::Put);
        assert_eq!(r.expiry(), Expiry::AtUnixMillis(1_700_000_000_000));
        assert_eq!(r.compression(), Compression::Zstd);
        assert!(r.continues_batch());
    }

    #[test]
    fn short_input_is_incomplete_and_a_cut_record_says_its_length() {
        let mut out = Vec::new();
        Record::put("key", "value").encode_into(&mut out);
        assert_eq!(decode(&out[..5]), Decoded::Incomplete { len: None });
        assert_eq!(
            decode(&out[..out.len() - 1]),
            Decoded::Incomplete {
                len: Some(out.len())
            }
        );
    }

    #[test]
    fn zero_bytes_are_not_a_record() {
        assert_eq!(decode(&[0; 16]), Decoded::Corrupt(CorruptionKind::Checksum));
    }

    #[test]
    fn compression_value_three_is_refused() {
        let mut out = vec![1, 1, 0b1100, b'k', b'v'];
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&out),
            Decoded::Corrupt(CorruptionKind::InvalidCompression)
        );
    }

    #[test]
    fn reserved_bits_are_ignored_like_nori_wal_does() {
        let mut out = vec![1, 1, 0b1100_0000, b'k', b'v'];
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let Decoded::Record(r, _) = decode(&out) else {
            panic!()
        };
        assert_eq!(r.to_record(LIMIT).unwrap(), Record::put("k", "v"));
    }

    fn any_record() -> impl Strategy<Value = Record> {
        let expiry = prop_oneof![
            Just(Expiry::Never),
            any::<u64>().prop_map(Expiry::AfterMillis),
            any::<u64>().prop_map(Expiry::AtUnixMillis),
        ];
        let compression = prop_oneof![
            Just(Compression::None),
            Just(Compression::Lz4),
            Just(Compression::Zstd),
        ];
        let value = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            (1usize..2000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        ];
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            value,
            expiry,
            compression,
        )
            .prop_map(|(delete, key, value, expiry, compression)| {
                let record = if delete {
                    Record::delete(key)
                } else {
                    Record::put(key, value)
                };
                record.with_expiry(expiry).with_compression(compression)
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(record in any_record(), continues: bool) {
            let (decoded, decoded_continues, len) = round_trip(&record, continues);
            let mut out = Vec::new();
            record.encode_with(&mut out, continues);
            prop_assert_eq!(len, out.len());
            prop_assert_eq!(decoded_continues, continues);
            prop_assert_eq!(decoded.kind, record.kind);
            prop_assert_eq!(&decoded.key, &record.key);
            if record.kind == RecordKind::Put {
                prop_assert_eq!(&decoded.value, &record.value);
            } else {
                prop_assert!(decoded.value.is_empty());
            }
            prop_assert_eq!(decoded.expiry, record.expiry);
            if record.compression == Compression::None {
                prop_assert_eq!(out.len(), record.encoded_len());
            }
        }

        #[test]
        fn any_single_bit_flip_is_detected(record in any_record(), bit in 0usize..1000) {
            let mut out = Vec::new();
            record.encode_into(&mut out);
            let bit = bit % (out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!matches!(decode(&out), Decoded::Record(..)));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
