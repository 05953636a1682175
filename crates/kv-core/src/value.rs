//! A value read from the state, sharing its entry's allocation.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

use crate::entry::Entry;

/// The value of an entry, handed out by a read without copying it or allocating: it holds
/// the entry (a reference count on its one allocation), and derefs to the value's bytes.
///
/// It stays valid and unchanged whatever happens to the key afterwards (an entry is never
/// changed in place: an overwrite, a delete or an eviction replaces or drops the index's
/// reference, not this one). Holding it keeps the whole entry (key, value, deadline)
/// allocated, so a caller keeping values for long converts them ([`Value::to_vec`], or
/// `Bytes::from`, which shares the allocation too).
///
/// It compares, orders and hashes as its bytes, like `Bytes`, and compares equal to byte
/// strings, `str`, `Vec<u8>` and `Bytes`.
#[derive(Clone)]
pub struct Value(Entry);

impl Value {
    /// The value of `entry`, sharing its allocation.
    #[inline]
    pub fn of(entry: &Entry) -> Self {
        Value(entry.clone())
    }

    /// The value's bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.0.value()
    }

    /// A copy of the bytes, in an allocation of their own.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }

    /// The value as `Bytes` sharing the entry's allocation (one small allocation for the
    /// `Bytes`' owner record, no copy of the bytes).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for Value {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Value {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Value> for Bytes {
    fn from(value: Value) -> Bytes {
        value.into_bytes()
    }
}

impl From<Value> for Vec<u8> {
    fn from(value: Value) -> Vec<u8> {
        value.to_vec()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_slice().escape_ascii())
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// `Value == other` and `other == Value` for the byte-like types a caller compares with.
macro_rules! eq_bytes {
    ($($other:ty => |$o:ident| $bytes:expr;)*) => {$(
        impl PartialEq<$other> for Value {
            fn eq(&self, $o: &$other) -> bool {
                self.as_slice() == $bytes
            }
        }
        impl PartialEq<Value> for $other {
            fn eq(&self, value: &Value) -> bool {
                let $o = self;
                value.as_slice() == $bytes
            }
        }
    )*};
}

eq_bytes! {
    [u8] => |o| o;
    &[u8] => |o| *o;
    str => |o| o.as_bytes();
    &str => |o| o.as_bytes();
    Vec<u8> => |o| &o[..];
    String => |o| o.as_bytes();
    Bytes => |o| &o[..];
}

impl<const N: usize> PartialEq<[u8; N]> for Value {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_slice() == other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Value {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_shares_its_entry_and_outlives_it() {
        let entry = Entry::new(b"key", b"value", Some(9));
        let value = Value::of(&entry);
        drop(entry);
        assert_eq!(value, "value");
        assert_eq!(&value[..], b"value");
        assert_eq!(value, *b"value");
        assert_eq!(Bytes::from("value"), value);
        assert_eq!(format!("{value:?}"), "b\"value\"");
    }

    #[test]
    fn bytes_made_from_a_value_read_the_same_bytes_without_a_copy() {
        let entry = Entry::new(b"key", &[7; 300], None);
        let value = Value::of(&entry);
        let bytes = Bytes::from(value.clone());
        assert_eq!(bytes, value);
        assert_eq!(
            bytes.as_ptr(),
            entry.value().as_ptr(),
            "shares the entry's bytes"
        );
        assert_eq!(Vec::from(value), vec![7; 300]);
    }
}
