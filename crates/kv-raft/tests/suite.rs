//! openraft's own storage test suite, over the Raft log and the state machine of this crate
//! in a temporary directory.

use kv_raft::{LogStore, StateMachine, TypeConfig};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

struct TempDirBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for TempDirBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = LogStore::open(dir.path()).expect("open the Raft log");
        let sm = StateMachine::open(dir.path(), kv_store::Options::default())
            .expect("open the state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(TempDirBuilder)
        .await
        .expect("the suite passes");
}
