//! What keys and values may be passed as.

use bytes::Bytes;

/// Something a key or value can be made of: borrowed bytes of any lifetime, strings, vectors
/// and [`Bytes`].
///
/// Owned buffers (`Vec<u8>`, `String`, `Bytes`, `Box<[u8]>`) are taken over without a copy;
/// borrowed ones (`&[u8]`, `&str`, `&[u8; N]`, `&Vec<u8>`, `&String`) are copied once, which is
/// what lets a caller pass a slice of a buffer it is about to reuse:
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// let mut buf = [0u8; 64];
/// for i in 0..3u8 {
///     let n = 2;
///     buf[..n].copy_from_slice(&[b'k', b'0' + i]);
///     store.put(&buf[..n], &buf[..n])?; // borrowed only for the call
/// }
/// let name = String::from("user:1");
/// store.put(&name, "ada")?;
/// drop(name);
/// assert_eq!(store.get("user:1").unwrap(), "ada");
/// # Ok(())
/// # }
/// ```
///
/// `bytes::Bytes` does not do this itself: it converts from `&'static [u8]` only, so a
/// short-lived slice would otherwise have to be copied by the caller first.
pub trait IntoBytes {
    /// The bytes, owned.
    fn into_bytes(self) -> Bytes;
}

impl IntoBytes for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl IntoBytes for &Bytes {
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}

impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for Box<[u8]> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for String {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &[u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBytes for &mut [u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl IntoBytes for &Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBytes for &str {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBytes for &String {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(b: impl IntoBytes) -> Bytes {
        b.into_bytes()
    }

    #[test]
    fn every_form_gives_the_same_bytes() {
        let owned = Bytes::from_static(b"key");
        assert_eq!(bytes(owned.clone()), owned);
        assert_eq!(bytes(&owned), owned);
        assert_eq!(bytes(b"key".to_vec()), owned);
        let (vec, string) = (b"key".to_vec(), String::from("key"));
        assert_eq!(bytes(&vec), owned);
        assert_eq!(bytes(&string), owned);
        assert_eq!(bytes(b"key".to_vec().into_boxed_slice()), owned);
        assert_eq!(bytes(String::from("key")), owned);
        assert_eq!(bytes("key"), owned);
        assert_eq!(bytes(b"key"), owned);
        assert_eq!(bytes(*b"key"), owned);
        assert_eq!(bytes(&b"key"[..]), owned);
        assert_eq!(bytes(&mut b"key".to_vec()[..]), owned);
    }

    #[test]
    fn owned_buffers_are_taken_over_without_a_copy() {
        let vec = b"value".to_vec();
        let at = vec.as_ptr();
        assert_eq!(bytes(vec).as_ptr(), at);
        let shared = Bytes::from(b"value".to_vec());
        assert_eq!(bytes(&shared).as_ptr(), shared.as_ptr());
    }
}
