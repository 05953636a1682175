//! The one error type of this crate.

/// What `kv-core` reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Range and prefix scans need the ordered index.
    #[error(
        "range and prefix scans need the ordered index; open the store with IndexKind::Ordered"
    )]
    NotOrdered,
}
