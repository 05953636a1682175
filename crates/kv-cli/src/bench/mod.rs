//! `kv bench`: not built yet.

/// The long help of `kv bench`.
pub const HELP: &str = "";

/// Refuses: the workloads are not built yet.
pub fn run(_args: &crate::cli::BenchArgs) -> crate::failure::Outcome {
    Err(crate::failure::Failure::Usage(
        "kv bench is not built yet".into(),
    ))
}
