//! Value compression: LZ4 blocks behind a varint length, and Zstd frames.

use std::io::Read;

use crate::varint;

/// How a record's value is stored. The numbers are the two compression bits of the flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Stored as given.
    #[default]
    None = 0,
    /// `varint(uncompressed length)` followed by one raw LZ4 block.
    Lz4 = 1,
    /// One standard Zstd frame, written at level 3.
    Zstd = 2,
}

/// The Zstd level nori-wal 0.1 writes at.
const ZSTD_LEVEL: i32 = 3;

/// The most an LZ4 block can expand: each byte of input yields at most 255 bytes of output.
const LZ4_MAX_RATIO: usize = 255;

impl Compression {
    /// The value of the two compression bits, or `None` for the invalid value 3.
    pub(crate) fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Appends `value` compressed to `out`, and returns the compression actually used: a value
    /// that would not get smaller is stored raw, which every reader accepts.
    pub(crate) fn compress_into(self, value: &[u8], out: &mut Vec<u8>) -> Compression {
        let start = out.len();
        match self {
            Compression::None => {}
            Compression::Lz4 => {
                varint::encode(value.len() as u64, out);
                out.extend_from_slice(&lz4_flex::block::compress(value));
            }
            Compression::Zstd => {
                if let Ok(frame) = zstd::bulk::compress(value, ZSTD_LEVEL) {
                    out.extend_from_slice(&frame);
                }
            }
        }
        if self != Compression::None && out.len() > start && out.len() - start < value.len() {
            return self;
        }
        out.truncate(start);
        out.extend_from_slice(value);
        Compression::None
    }

    /// The value that `stored` holds, refusing anything longer than `limit` bytes.
    pub(crate) fn decompress(self, stored: &[u8], limit: usize) -> Option<Vec<u8>> {
        match self {
            Compression::None => (stored.len() <= limit).then(|| stored.to_vec()),
            Compression::Lz4 => {
                let varint::Decoded::Value(len, used) = varint::decode(stored) else {
                    return None;
                };
                let block = &stored[used..];
                let len = usize::try_from(len).ok()?;
                if len > limit || len > block.len().saturating_mul(LZ4_MAX_RATIO) {
                    return None;
                }
                let value = lz4_flex::block::decompress(block, len).ok()?;
                (value.len() == len).then_some(value)
            }
            Compression::Zstd => {
                let mut value = Vec::new();
                let decoder = zstd::stream::read::Decoder::with_buffer(stored).ok()?;
                decoder
                    .take((limit as u64).saturating_add(1))
                    .read_to_end(&mut value)
                    .ok()?;
                (value.len() <= limit).then_some(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_values_round_trip() {
        let value = vec![b'a'; 999];
        for compression in [Compression::Lz4, Compression::Zstd] {
            let mut out = Vec::new();
            assert_eq!(compression.compress_into(&value, &mut out), compression);
            assert!(out.len() < value.len());
            assert_eq!(compression.decompress(&out, 1 << 20), Some(value.clone()));
        }
    }

    #[test]
    fn incompressible_values_are_stored_raw() {
        let value = b"short".to_vec();
        for compression in [Compression::Lz4, Compression::Zstd] {
            let mut out = Vec::new();
            assert_eq!(
                compression.compress_into(&value, &mut out),
                Compression::None
            );
            assert_eq!(out, value);
        }
    }

    #[test]
    fn decompression_respects_the_limit() {
        let value = vec![0u8; 10_000];
        for compression in [Compression::Lz4, Compression::Zstd] {
            let mut out = Vec::new();
            compression.compress_into(&value, &mut out);
            assert_eq!(compression.decompress(&out, 9_999), None);
            assert_eq!(compression.decompress(&out, 10_000), Some(value.clone()));
        }
    }

    #[test]
    fn lz4_length_that_lies_is_refused() {
        let mut out = Vec::new();
        Compression::Lz4.compress_into(&[7u8; 1000], &mut out);
        out[0] = 0x81; // claims a different uncompressed length
        assert_eq!(Compression::Lz4.decompress(&out, 1 << 20), None);
    }
}
