//! LEB128 variable-length integers, as the record header uses them.

/// The most bytes a `u64` takes as a varint.
pub const MAX_LEN: usize = 10;

/// Appends `value` to `out` as a LEB128 varint.
#[inline]
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// How many bytes `value` takes as a varint.
#[inline]
pub fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The outcome of decoding a varint from the front of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The value and how many bytes it took.
    Value(u64, usize),
    /// The slice ends before the varint does.
    Incomplete,
    /// More than ten bytes, or a tenth byte that overflows a `u64`.
    Overflow,
}

/// Decodes a varint from the front of `buf`.
#[inline]
pub fn decode(buf: &[u8]) -> Decoded {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(MAX_LEN) {
        let low = u64::from(byte & 0x7f);
        if i == MAX_LEN - 1 && byte > 1 {
            return Decoded::Overflow;
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Decoded::Value(value, i + 1);
        }
    }
    if buf.len() >= MAX_LEN {
        Decoded::Overflow
    } else {
        Decoded::Incomplete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(decode(bytes), Decoded::Value(value, bytes.len()));
        }
    }

    #[test]
    fn truncated_and_overlong_inputs_are_refused() {
        assert_eq!(decode(&[]), Decoded::Incomplete);
        assert_eq!(decode(&[0x80, 0x80]), Decoded::Incomplete);
        assert_eq!(decode(&[0xff; 10]), Decoded::Overflow);
        let mut eleven = vec![0x80; 10];
        eleven.push(0);
        assert_eq!(decode(&eleven), Decoded::Overflow);
        // A tenth byte above 1 would shift bits past the top of a u64.
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(decode(&too_big), Decoded::Overflow);
    }

    proptest! {
        #[test]
        fn round_trip(value: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            encode(value, &mut out);
            prop_assert_eq!(out.len(), encoded_len(value));
            let len = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode(&out), Decoded::Value(value, len));
        }
    }
}
