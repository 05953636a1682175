//! What `KvStore::ttl` answers.

use std::time::Duration;

/// How long a key has left, as [`KvStore::ttl`](crate::KvStore::ttl) tells it.
///
/// ```
/// # fn main() -> Result<(), kv_store::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = kv_store::KvStore::open(dir.path())?;
/// use std::time::Duration;
/// use kv_store::Ttl;
///
/// store.put("plain", "v")?;
/// store.put_with_ttl("session", "token", Duration::from_secs(60))?;
/// assert_eq!(store.ttl("missing"), Ttl::NoKey);
/// assert_eq!(store.ttl("plain"), Ttl::NoDeadline);
/// match store.ttl("session") {
///     Ttl::Remaining(left) => assert!(left <= Duration::from_secs(60)),
///     other => panic!("expected a deadline, got {other}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// The key holds no live value (absent, deleted or expired).
    NoKey,
    /// The key holds a value that never expires.
    NoDeadline,
    /// The key holds a value that expires after this long (rounded down to the millisecond;
    /// zero when it expires within the millisecond).
    Remaining(Duration),
}

impl Ttl {
    /// The time left, if the key has a deadline.
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Ttl::Remaining(left) => Some(left),
            Ttl::NoKey | Ttl::NoDeadline => None,
        }
    }

    /// Whether the key holds a live value.
    pub fn exists(self) -> bool {
        self != Ttl::NoKey
    }
}

impl std::fmt::Display for Ttl {
    /// `no such key`, `no deadline`, or the time left in seconds with milliseconds
    /// (`59.998s`): for people, not the `Debug` form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ttl::NoKey => f.write_str("no such key"),
            Ttl::NoDeadline => f.write_str("no deadline"),
            Ttl::Remaining(left) => {
                write!(f, "{}.{:03}s", left.as_secs(), left.subsec_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_three_cases_apart() {
        assert!(!Ttl::NoKey.exists());
        assert!(Ttl::NoDeadline.exists());
        assert_eq!(Ttl::NoDeadline.remaining(), None);
        let left = Duration::from_millis(59_998);
        assert_eq!(Ttl::Remaining(left).remaining(), Some(left));
        assert_eq!(Ttl::Remaining(left).to_string(), "59.998s");
        assert_eq!(Ttl::Remaining(Duration::ZERO).to_string(), "0.000s");
        assert_eq!(Ttl::NoKey.to_string(), "no such key");
    }
}
