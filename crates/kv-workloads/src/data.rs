//! The workloads' data: 16-byte keys numbered and drawn from a seeded generator, 100-byte
//! values.

/// Key length of the workloads.
pub const KEY_LEN: usize = 16;
/// Value length of the workloads.
pub const VALUE_LEN: usize = 100;

/// A seeded xorshift generator, so every run draws the same keys.
#[derive(Debug, Clone)]
pub struct KeyGen(u64);

impl KeyGen {
    /// A generator with `seed` (any seed, 0 included, gives a usable non-zero state).
    pub fn new(seed: u64) -> Self {
        // Spread small seeds apart; xorshift needs a non-zero state.
        KeyGen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The key of a number drawn from `0..space`.
    pub fn key(&mut self, space: u64) -> [u8; KEY_LEN] {
        key_for(self.next_u64() % space)
    }
}

/// The 16-byte key of key number `n`: `key-` and twelve decimal digits (the low twelve).
pub fn key_for(n: u64) -> [u8; KEY_LEN] {
    let mut key = *b"key-000000000000";
    let mut rest = n;
    for digit in key[4..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    key
}

/// The 100-byte value numbered `n` (its first eight bytes; the rest is `v`s).
pub fn value_for(n: u64) -> [u8; VALUE_LEN] {
    let mut value = [b'v'; VALUE_LEN];
    value[..8].copy_from_slice(&n.to_le_bytes());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_numbered_in_decimal_and_sort_by_number() {
        assert_eq!(&key_for(42), b"key-000000000042");
        assert!(key_for(9) < key_for(10));
        assert_eq!(&key_for(1_000_000_000_007), b"key-000000000007");
    }

    #[test]
    fn the_same_seed_draws_the_same_keys() {
        let (mut a, mut b) = (KeyGen::new(3), KeyGen::new(3));
        let drawn: Vec<_> = (0..100).map(|_| a.key(1000)).collect();
        assert_eq!(drawn, (0..100).map(|_| b.key(1000)).collect::<Vec<_>>());
        assert_ne!(KeyGen::new(0).next_u64(), 0);
    }
}
