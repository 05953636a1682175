//! Syncing the active segment from another thread, without the writer.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::flusher::SyncShared;
use crate::fs::WalFile;

/// Syncs the segment that was active when [`Wal::syncer`](crate::Wal::syncer) made it,
/// without borrowing the [`Wal`](crate::Wal): a caller that keeps its `Wal` behind a lock can
/// do the long fdatasync of a large segment with the lock released, so that the sync it then
/// does under the lock (a rotation's, say) finds little left to write.
///
/// Serialised with every other sync of the log, like the background flusher's: a failure
/// stops the log (`Error::Poisoned`) before any other sync can report a success.
#[derive(Debug, Clone)]
pub struct Syncer {
    shared: Arc<SyncShared>,
    file: Arc<dyn WalFile>,
    path: PathBuf,
}

impl Syncer {
    pub(crate) fn new(shared: Arc<SyncShared>, file: Arc<dyn WalFile>, path: PathBuf) -> Self {
        Syncer { shared, file, path }
    }

    /// Makes what was appended to the segment so far durable (`fdatasync`). Syncing a
    /// segment that was rotated out since is harmless: a rotation synced it already.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] when the sync failed (the log then accepts nothing more) or an
    /// earlier failure stopped the log.
    pub fn sync(&self) -> Result<()> {
        self.sync_said("fdatasync")
    }

    /// [`sync`](Self::sync), made by a background thread of the log: counted with the
    /// flusher's syncs when it succeeds, and said to be a background one when it fails.
    pub(crate) fn sync_in_background(&self) -> Result<()> {
        self.sync_said("a background fdatasync")?;
        self.shared.count_background_sync();
        Ok(())
    }

    /// Syncs; a failure says `what` of the segment failed.
    fn sync_said(&self, what: &str) -> Result<()> {
        let path = &self.path;
        self.shared
            .sync(&*self.file, || {
                format!("{what} of {} failed", path.display())
            })
            .map_err(|cause| Error::Poisoned { cause })
    }
}
