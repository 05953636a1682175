//! `INCRBYFLOAT`'s arithmetic, exactly as Redis does it: in the x87's 80-bit `long double`.
//!
//! Redis reads both numbers with `strtold`, adds them in a `long double` (64-bit
//! significand) and prints the sum with `%.17Lf`, trailing zeros trimmed. Rust has no such
//! type, and an `f64` answers differently for ordinary inputs: `12345.6789` prints as
//! `12345.67889999999999961` in Redis, and `1e15 + 0.1` keeps its tenth there but not in an
//! `f64`. So the number is a [`rustc_apfloat`] `X87DoubleExtended` (a software float,
//! the same arithmetic, correctly rounded), the text it accepts is `strtold`'s grammar, and
//! the printing is exact decimal arithmetic on its bits.

use std::borrow::Cow;
use std::fmt::Write;

use rustc_apfloat::ieee::X87DoubleExtended;
use rustc_apfloat::{Float, Round, Status};

/// Redis's `MAX_LONG_DOUBLE_CHARS`: a longer text is not a number to it.
const MAX_CHARS: usize = 5 * 1024;

/// The decimals `%.17Lf` prints.
const DECIMALS: u32 = 17;

/// A `long double` as Redis computes with it.
#[derive(Clone, Copy, Debug)]
pub struct LongDouble(X87DoubleExtended);

impl PartialEq for LongDouble {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl LongDouble {
    /// What an absent key counts as.
    pub const ZERO: LongDouble = LongDouble(X87DoubleExtended::ZERO);

    /// Reads `text` as Redis's `string2ld` does: all of it must be one `strtold` number
    /// (decimal, hexadecimal or an infinity, no spaces) that is not NaN, did not overflow
    /// and did not underflow to zero. `None` otherwise.
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= MAX_CHARS {
            return None;
        }
        let text = std::str::from_utf8(text).ok()?;
        let (negative, unsigned) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let magnitude = if unsigned.eq_ignore_ascii_case("inf")
            || unsigned.eq_ignore_ascii_case("infinity")
        {
            X87DoubleExtended::INFINITY
        } else {
            let number = Number::scan(unsigned)?;
            // The library wants a hexadecimal exponent, which C leaves optional.
            let spelled = match number {
                Number::Hex { exponent: false } => Cow::Owned(format!("{unsigned}p0")),
                Number::Decimal | Number::Hex { exponent: true } => Cow::Borrowed(unsigned),
            };
            // Correctly rounded, as glibc's `strtold`. The library retries at twice the
            // precision while the digits read cannot decide the rounding, so a number
            // crafted to sit a hair above a tie, with 5,000 digits, took 15 ms to read
            // (measured 2026-11-30, release); ordinary ones take well under a microsecond.
            // That is the cost class of a `SETRANGE` far into a string, and is bounded by
            // the limit above (at most 5,119 bytes).
            let parsed = X87DoubleExtended::from_str_r(&spelled, Round::NearestTiesToEven).ok()?;
            // `strtold`'s ERANGE, which Redis refuses: past the largest value, or so small
            // that nothing was left.
            let out_of_range = parsed.status.contains(Status::OVERFLOW)
                || (parsed.status.contains(Status::UNDERFLOW) && parsed.value.is_zero());
            if out_of_range {
                return None;
            }
            parsed.value
        };
        Some(LongDouble(if negative { -magnitude } else { magnitude }))
    }

    /// Neither infinite nor NaN: what Redis stores.
    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }

    /// The text Redis stores and answers (its `ld2string` in `LD_STR_HUMAN` mode): the exact
    /// value rounded to 17 decimals (ties to even, as glibc's `printf` rounds), trailing
    /// zeros and a trailing point removed, and `-0` written `0`. Only for finite values.
    pub fn to_redis_string(self) -> String {
        debug_assert!(self.is_finite());
        let bits = self.0.to_bits();
        let negative = bits >> 79 & 1 == 1;
        let biased = (bits >> 64) as u32 & 0x7fff;
        let significand = bits as u64;
        // value = significand × 2^power; a denormal's exponent is that of the smallest
        // normal (its integer bit is simply clear).
        let power = i64::from(biased.max(1)) - 16383 - 63;

        let (integer, fraction) = if power >= 0 {
            // An integer: no decimals to print.
            (decimal_of(significand, power as u32), String::new())
        } else {
            // significand × 10^17 < 2^64 × 2^57: it fits a u128 before the shift. Padded
            // so that at least one digit stands before the point.
            let scaled = u128::from(significand) * 10u128.pow(DECIMALS);
            let width = DECIMALS as usize + 1;
            let digits = format!("{:0width$}", rounded_shift(scaled, (-power) as u32));
            let (integer, fraction) = digits.split_at(digits.len() - DECIMALS as usize);
            (
                integer.to_owned(),
                fraction.trim_end_matches('0').to_owned(),
            )
        };
        // `-0` is written `0`.
        let zero = integer == "0" && fraction.is_empty();
        let mut text = String::with_capacity(integer.len() + fraction.len() + 2);
        if negative && !zero {
            text.push('-');
        }
        text.push_str(&integer);
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(&fraction);
        }
        text
    }
}

impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    /// The sum, rounded to the nearest `long double` (ties to even), as the FPU does.
    fn add(self, other: LongDouble) -> LongDouble {
        LongDouble(self.0.add_r(other.0, Round::NearestTiesToEven).value)
    }
}

/// Which kind of finite `strtold` number a whole text is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    Decimal,
    Hex { exponent: bool },
}

impl Number {
    /// Checks that all of `text` (unsigned) is one `strtold` number: digits with at most one
    /// point and at least one digit, then an optional exponent with at least one digit
    /// (`e` for decimal, `p` for hexadecimal after `0x`). `strtold` stops where that
    /// grammar ends, and Redis refuses a text it did not read to the end.
    fn scan(text: &str) -> Option<Number> {
        let bytes = text.as_bytes();
        let hex = bytes.len() > 2 && bytes[0] == b'0' && matches!(bytes[1], b'x' | b'X');
        let (body, is_digit, marker): (&[u8], fn(&u8) -> bool, u8) = if hex {
            (&bytes[2..], u8::is_ascii_hexdigit, b'p')
        } else {
            (bytes, u8::is_ascii_digit, b'e')
        };
        let mantissa_end = body
            .iter()
            .position(|b| b.to_ascii_lowercase() == marker)
            .unwrap_or(body.len());
        let (mantissa, exponent) = body.split_at(mantissa_end);
        let digits = mantissa.iter().filter(|b| is_digit(b)).count();
        let points = mantissa.iter().filter(|&&b| b == b'.').count();
        if digits == 0 || points > 1 || digits + points != mantissa.len() {
            return None;
        }
        if let Some((_, exponent)) = exponent.split_first() {
            let exponent = exponent
                .strip_prefix(b"-")
                .or_else(|| exponent.strip_prefix(b"+"))
                .unwrap_or(exponent);
            if exponent.is_empty() || !exponent.iter().all(u8::is_ascii_digit) {
                return None;
            }
        }
        Some(if hex {
            Number::Hex {
                exponent: !exponent.is_empty(),
            }
        } else {
            Number::Decimal
        })
    }
}

/// `value / 2^shift`, rounded to the nearest integer, ties to even; `shift` ≥ 1 (a negative
/// power of two).
fn rounded_shift(value: u128, shift: u32) -> u128 {
    debug_assert!(shift >= 1);
    if shift >= 128 {
        // value < 2^121: less than half of 2^shift.
        return 0;
    }
    let quotient = value >> shift;
    let remainder = value - (quotient << shift);
    let half = 1u128 << (shift - 1);
    if remainder > half || (remainder == half && quotient & 1 == 1) {
        quotient + 1
    } else {
        quotient
    }
}

/// The decimal digits of `significand × 2^power`, which can run to 4,933 digits.
///
/// Written out rather than taken from a big-integer crate: it is one multiplication by a
/// power of two, in base 10^9 limbs (least significant first).
fn decimal_of(significand: u64, power: u32) -> String {
    const BASE: u64 = 1_000_000_000;
    let mut limbs = vec![
        significand % BASE,
        significand / BASE % BASE,
        significand / BASE / BASE,
    ];
    let mut left = power;
    while left > 0 {
        // 2^30 × (10^9 - 1) + carry fits a u64 easily.
        let step = left.min(30);
        left -= step;
        let mut carry = 0u64;
        for limb in &mut limbs {
            let product = (*limb << step) + carry;
            *limb = product % BASE;
            carry = product / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    }
    while limbs.len() > 1 && limbs.last() == Some(&0) {
        limbs.pop();
    }
    // At least one limb is left: the loop above keeps the last.
    let (top, rest) = limbs.split_last().expect("a limb");
    let mut text = top.to_string();
    for limb in rest.iter().rev() {
        // Writing into a `String` cannot fail.
        let _ = write!(text, "{limb:09}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> Option<String> {
        let total = LongDouble::parse(a.as_bytes())? + LongDouble::parse(b.as_bytes())?;
        total.is_finite().then(|| total.to_redis_string())
    }

    /// Each answer is what Redis 7.0.15 (Debian's `redis-server`, x86-64) replied to
    /// `SET k A` then `INCRBYFLOAT k B`, recorded 2026-11-30.
    #[test]
    fn sums_print_as_redis_7_printed_them() {
        for (a, b, redis) in [
            ("10.50", "0.1", "10.6"),
            ("5.0e3", "2.0e2", "5200"),
            ("0", "12345.6789", "12345.67889999999999961"),
            ("3.14159265358979", "7.77", "10.91159265358979"),
            ("1e15", "0.1", "1000000000000000.0999755859375"),
            (
                "12345678901234",
                "-0.01",
                "12345678901233.98999977111816406",
            ),
            ("9223372036854775807", "0", "9223372036854775807"),
            ("1.2345678901234567890123", "0", "1.23456789012345679"),
            ("5e-18", "0", "0"),
            ("-5e-18", "0", "0"),
            ("1.5e-17", "0", "0.00000000000000002"),
            ("-0.0", "0", "0"),
            ("0x10", "0x1p-2", "16.25"),
            ("+1", "1.", "2"),
            (".5", "-0", "0.5"),
            ("0e99999", "1", "1"),
            ("0X1P3", "0xA.8", "18.5"),
            // Exact ties at the 17th decimal: to the even digit, down and up.
            ("0x1p-18", "0", "0.00000381469726562"),
            ("0x3p-18", "0", "0.00001144409179688"),
            ("0x1p-57", "0", "0.00000000000000001"),
            ("0x3p-57", "0", "0.00000000000000002"),
            // 2^64 + 1 needs 65 significant bits: the sum rounds back to 2^64.
            ("18446744073709551616", "1", "18446744073709551616"),
        ] {
            assert_eq!(sum(a, b).as_deref(), Some(redis), "{a} + {b}");
        }
    }

    #[test]
    fn large_values_print_every_integer_digit() {
        let big = sum("1e4000", "1").unwrap();
        assert_eq!(big.len(), 4000);
        assert!(big.starts_with("999999999999999999996546387309962378493249258350695763"));
        assert_eq!(sum("-Infinity", "1"), None);
        assert_eq!(
            sum("1e4932", "1e4932"),
            None,
            "an overflowing sum is infinite"
        );
    }

    #[test]
    fn texts_redis_refuses() {
        for text in [
            "", " 1", "1 ", "1e", "1e+", "0x", "0x1p", "abc", "1.2.3", ".", "nan", "-nan",
            "1e5000", "1e-5000", "0x1g", "1_000", "1,5", "++1", "--1",
            // A NUL ends C's string, but Redis 7.0 still refuses what follows it.
            "1\0junk", "\x005",
        ] {
            assert_eq!(LongDouble::parse(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(LongDouble::parse(&[b'1'; MAX_CHARS]), None);
    }

    #[test]
    fn texts_redis_reads() {
        for text in [
            "1",
            "-1",
            "+1",
            "1.",
            ".5",
            "1e5",
            "1E-5",
            "0x1P3",
            "0xA.8",
            "inf",
            "-Infinity",
            "0e99999",
            "1e-4940",
        ] {
            assert!(LongDouble::parse(text.as_bytes()).is_some(), "{text:?}");
        }
        let infinite = LongDouble::parse(b"INF").unwrap();
        assert!(!(infinite + LongDouble::parse(b"1").unwrap()).is_finite());
        let max = LongDouble::parse(b"1e4932").unwrap();
        assert!(!(max + max).is_finite(), "an overflowing sum is infinite");
    }

    #[test]
    fn rounding_to_17_decimals_is_ties_to_even() {
        assert_eq!(rounded_shift(5, 1), 2); // 2.5 → 2
        assert_eq!(rounded_shift(7, 1), 4); // 3.5 → 4
        assert_eq!(rounded_shift(13, 2), 3); // 3.25 → 3
        assert_eq!(rounded_shift(u128::MAX >> 7, 128), 0);
        assert_eq!(decimal_of(1, 100), "1267650600228229401496703205376");
        assert_eq!(decimal_of(u64::MAX, 0), u64::MAX.to_string());
    }
}
