//! The benchmark workloads of the project's spec (`workloads.md`: W1-W8) and the machine
//! limits every figure is reported beside (L1-L4, and this project's L5 and L6), defined once.
//!
//! Two drivers run them: `kv bench` (crate `kv-cli`), which runs each workload at the spec's
//! size and prints a row or a JSON line beside the limits measured in the same run, and the
//! criterion benches (`kv-benches`), which time the same operations in criterion's samples.
//! What a workload *is* lives here: its data ([`data`]: 16-byte keys from a seeded
//! generator, 100-byte values), its sizes, thread counts and store options, and the sequence
//! of operations each thread performs ([`spec`]). How long a run is and how it is timed and
//! printed belong to the driver.
//!
//! ```
//! use kv_workloads::spec::{self, Workload};
//!
//! // The first puts of W1's writer 1, and the store options W1 runs with.
//! let puts: Vec<_> = spec::random_puts(1, spec::KEYS).take(3).collect();
//! assert!(puts.iter().all(|(key, value)| key.len() == 16 && value.len() == 100));
//! let _options = Workload::W1.options();
//! ```

#![forbid(unsafe_code)]

pub mod data;
pub mod machine;
pub mod spec;

pub use data::{key_for, value_for, KeyGen, KEY_LEN, VALUE_LEN};
pub use machine::{resident_bytes, MachineLimits, PlainMap};
pub use spec::Workload;
