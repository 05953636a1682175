//! The `kv` command-line tool. Not built yet: the store it drives comes first.

#![forbid(unsafe_code)]

fn main() {
    eprintln!(
        "kv: not yet: the shell arrives with the kv-store facade (see the issues); \
         today the project ships the kv-wal log crate"
    );
    std::process::exit(2);
}
