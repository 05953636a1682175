//! Where a record sits in the log.

use std::fmt;

/// A place in the log: a segment id and a byte offset inside that segment.
///
/// Positions order the log: a record at a smaller position was appended earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Id of the segment, the number in its file name.
    pub segment: u64,
    /// Byte offset from the start of the segment file.
    pub offset: u64,
}

impl Position {
    /// The first byte of the first possible segment.
    pub const START: Position = Position {
        segment: 0,
        offset: 0,
    };

    /// A position from its parts.
    pub const fn new(segment: u64, offset: u64) -> Self {
        Position { segment, offset }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}
