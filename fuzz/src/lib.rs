//! Fuzz targets of the workspace, as plain functions over bytes.
//!
//! Each target must never panic, whatever the input. They are driven two ways: by libFuzzer
//! (`cargo fuzz run <target> --features libfuzzer`, on a nightly toolchain), and by the
//! `fuzz-smoke` binary, which runs on stable: every input of the checked-in corpus, then
//! random mutations of it for a few seconds (`cargo xtask fuzz`).

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use kv_compact::Manifest;
use kv_store::{Durability, IndexKind, KvStore, Options, WriteBatch};
use kv_wal::{decode, Decoded, Position, RecoveryMode, Wal, WalConfig};

/// A target: a name (its corpus folder) and the function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("decode_record", decode_record),
    ("recover_directory", recover_directory),
    ("damaged_store", damaged_store),
    ("parse_manifest", parse_manifest),
    ("store_operations", store_operations),
    ("shell_command", shell_command),
    ("server_requests", server_requests),
];

/// Writes a log with kv-wal (records and atomic batches over 1 KiB segments, so every
/// closed segment is sealed and the next opens with its opening), then applies the edits
/// `body` describes, four bytes each: a segment, an offset (two bytes, modulo the segment's
/// length) and what to do there: cut the file, zero the 4 KiB page, flip a bit, or remove
/// the segment.
fn damage_sealed_log(dir: &std::path::Path, body: &[u8]) {
    let config = WalConfig::new(dir)
        .max_segment_size(1024)
        .preallocate(false)
        .fsync_policy(kv_wal::FsyncPolicy::Os);
    let (mut wal, _) = Wal::open(config).expect("open a fresh log");
    for i in 0..60u32 {
        let key = format!("key-{}", i % 17);
        let record = kv_wal::Record::put(key.clone(), vec![b'v'; (i % 9 * 11) as usize]);
        let written = if i % 7 == 3 {
            wal.append_atomic(&[record, kv_wal::Record::delete(key)])
        } else {
            wal.append(&record)
        };
        written.expect("append");
    }
    let last = wal.current_position().segment;
    wal.close().expect("close");
    for edit in body.chunks_exact(4) {
        let id = u64::from(edit[0]) % (last + 1);
        let path = dir.join(kv_wal::segment::file_name(id));
        let Ok(mut bytes) = std::fs::read(&path) else {
            continue;
        };
        let at = usize::from(u16::from_le_bytes([edit[1], edit[2]])) % bytes.len().max(1);
        match edit[3] % 4 {
            0 => bytes.truncate(at),
            1 => {
                let page_end = (at + 4096).min(bytes.len());
                bytes[at..page_end].fill(0);
            }
            2 if !bytes.is_empty() => bytes[at] ^= 1 << (edit[3] / 4 % 8),
            3 => {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            _ => {}
        }
        std::fs::write(&path, &bytes).expect("rewrite a segment");
    }
}

/// Parses arbitrary bytes as a line of the `kv` shell (redis-cli's splitting); every
/// argument, printed as the shell prints a string, must split back to the same bytes. The
/// same for the subcommands' words and the printing of keys and values.
pub fn shell_command(data: &[u8]) {
    if let Ok(args) = kv_cli::line::split(data) {
        for arg in args {
            let printed = kv_cli::print::quote(&arg);
            let again = kv_cli::line::split(printed.as_bytes()).expect("printed strings split");
            assert_eq!(again, [arg], "{printed:?} reads back");
        }
    }
    // What a subcommand prints as one word reads back, through `unword`, as the same bytes,
    // and anything given to `unword` is decoded or refused without a panic.
    let printed = kv_cli::output::word(data);
    assert!(!printed.contains(char::is_control), "{printed:?}");
    assert!(
        !printed.contains(' ') || printed.starts_with('"') && printed.ends_with('"'),
        "{printed:?} is one word"
    );
    assert_eq!(
        kv_cli::output::unword(printed.as_bytes()).as_deref(),
        Ok(data),
        "{printed:?} reads back"
    );
    let _ = kv_cli::output::unword(data);
}

/// Parses arbitrary bytes as a manifest; whatever parses must encode back to the same bytes.
pub fn parse_manifest(data: &[u8]) {
    if let Ok(manifest) = Manifest::decode(data) {
        let encoded = manifest.encode();
        let again = Manifest::decode(&encoded).expect("an encoded manifest parses");
        assert_eq!(again, manifest);
        // Only "no snapshot" has two spellings: none and id 0.
        if manifest.snapshot.is_some() {
            assert_eq!(&encoded[..], data);
        }
    }
}

/// Runs arbitrary bytes as a sequence of store operations (puts, deletes, batches, TTL puts
/// with long deadlines, compactions, reopenings) on a store and on a `BTreeMap`, and checks
/// after each step that they agree.
pub fn store_operations(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = KvStore::open_with(dir.path(), small_store_options()).expect("open");
    let mut model = Model::new();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    while let Some(op) = next() {
        let key = vec![b'k', next().unwrap_or(0) % 16];
        let value = vec![next().unwrap_or(0); usize::from(next().unwrap_or(0) % 64)];
        match op % 8 {
            0 | 1 => {
                store.put(key.clone(), value.clone()).expect("put");
                model.insert(key, value);
            }
            2 => {
                store
                    .put_with_ttl(key.clone(), value.clone(), Duration::from_secs(3600))
                    .expect("put with ttl");
                model.insert(key, value);
            }
            3 => {
                store.delete(key.clone()).expect("delete");
                model.remove(&key);
            }
            4 => {
                let mut batch = WriteBatch::new();
                batch.put(key.clone(), value.clone());
                let other = vec![b'k', next().unwrap_or(0) % 16];
                batch.delete(other.clone());
                store.write(batch).expect("batch");
                model.insert(key, value);
                model.remove(&other);
            }
            5 => {
                store.compact().expect("compact");
            }
            6 => {
                store.close().expect("close");
                store = KvStore::open_with(dir.path(), small_store_options()).expect("reopen");
            }
            _ => {
                assert_eq!(
                    store.get(&key).as_deref(),
                    model.get(&key).map(Vec::as_slice)
                );
            }
        }
        assert_eq!(entries_of(&store), model);
    }
}

/// Decodes records back to back from arbitrary bytes, decompressing each value.
pub fn decode_record(data: &[u8]) {
    let mut rest = data;
    while let Decoded::Record(record, len) = decode(rest) {
        assert!(len > 0 && len <= rest.len());
        let _ = record.to_record(1 << 20);
        rest = &rest[len..];
    }
}

/// Writes arbitrary bytes as one to three segments (the first byte chooses how many and the
/// recovery mode), opens the log, and reads it all back. Whatever opening reports, reading
/// what it accepted must not fail in a mode that opened it. With the first byte's top bit
/// set, the log is one kv-wal wrote instead (so its closed segments carry seals and
/// openings), damaged as the other bytes say (`damage_sealed_log`).
pub fn recover_directory(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let segments = usize::from(control % 3) + 1;
    let mode = match (control / 3) % 3 {
        0 => RecoveryMode::TolerateTornTail,
        1 => RecoveryMode::Strict,
        _ => RecoveryMode::Salvage,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    if control & 0x80 != 0 {
        damage_sealed_log(dir.path(), body);
    } else {
        let chunk = body.len().div_ceil(segments).max(1);
        for (id, bytes) in body.chunks(chunk).enumerate() {
            let path = dir.path().join(kv_wal::segment::file_name(id as u64));
            std::fs::write(path, bytes).expect("write a segment");
        }
    }
    let config = WalConfig::new(dir.path())
        .recovery_mode(mode)
        .max_segment_size(1 << 16)
        .preallocate(false);
    let mut replayed = 0u64;
    let Ok((wal, info)) = Wal::open_with(config, Position::START, |_, _| replayed += 1) else {
        return;
    };
    assert_eq!(info.records, replayed);
    let mut read = 0u64;
    for item in wal.read_from(Position::START).expect("read from the start") {
        match item {
            Ok(_) => read += 1,
            // A checksummed value that does not decompress is reported, not a panic.
            Err(kv_wal::Error::Corrupt { .. }) => {}
            Err(e) => panic!("reading an opened log failed: {e}"),
        }
    }
    assert_eq!(read.max(replayed), replayed);
}

/// The options the store targets open their stores with: the ordered index (so a scan can
/// compare with a model), and small segments, so a log soon spans several (sealed) ones.
fn small_store_options() -> Options {
    Options::default()
        .index(IndexKind::Ordered)
        .shards(2)
        .segment_size(4096)
        .durability(Durability::None)
        .auto_compact(None)
        .sweep_interval(Duration::ZERO)
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every live entry of `store`, in key order.
fn entries_of(store: &KvStore) -> Model {
    store
        .range::<&[u8]>(..)
        .expect("ordered")
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// A store written once: puts, a compaction (a snapshot and a manifest), then writes that
/// fill several log segments. With the state after each prefix of the writes since the
/// snapshot, the last one being the whole store. The store is kept as its files' contents,
/// not as a directory: a static is never dropped, so a directory would outlive the process.
fn pristine_store() -> &'static (Files, Vec<Model>) {
    static STORE: OnceLock<(Files, Vec<Model>)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = KvStore::open_with(dir.path(), small_store_options()).expect("open");
        let mut model = Model::new();
        for i in 0..40u8 {
            let (key, value) = (vec![b'k', i], vec![i; 60]);
            store.put(key.clone(), value.clone()).expect("put");
            model.insert(key, value);
        }
        store.compact().expect("compact");
        let mut states = vec![model.clone()];
        for i in 0..90u8 {
            let key = vec![b'k', i % 50];
            if i % 7 == 3 {
                store.delete(key.clone()).expect("delete");
                model.remove(&key);
            } else {
                let value = vec![i.wrapping_mul(31); 40 + usize::from(i % 40)];
                store.put(key.clone(), value.clone()).expect("put");
                model.insert(key, value);
            }
            states.push(model.clone());
        }
        store.close().expect("close");
        (contents(dir.path()), states)
    })
}

/// Every file under `root`, as paths relative to it, sorted.
fn files_under(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(relative) = path.strip_prefix(root) {
                out.push(relative.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A directory's files (paths relative to it) with their bytes.
type Files = BTreeMap<PathBuf, Vec<u8>>;

fn contents(root: &Path) -> Files {
    files_under(root)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(root.join(&f)).unwrap_or_default();
            (f, bytes)
        })
        .collect()
}

/// Damages a copy of a compacted store (its manifest, snapshot and log segments) as the
/// input says: each 7 bytes cut a file short, flip a byte, delete a file or append garbage.
/// Opening it must fail and change nothing, or give every entry: all of them when only the
/// manifest, the snapshot or a sealed segment was touched, the entries after some prefix of
/// the writes when the newest segment was (a tail cut at a record boundary looks like a
/// crash).
pub fn damaged_store(data: &[u8]) {
    let (pristine, states) = pristine_store();
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (file, bytes) in pristine {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&to, bytes).expect("copy");
    }
    let files: Vec<&PathBuf> = pristine.keys().collect();
    let newest = files
        .iter()
        .filter(|f| f.starts_with(kv_store::WAL_DIR))
        .max()
        .copied();

    let mut newest_touched = false;
    for op in data.chunks_exact(7).take(3) {
        let file = files[usize::from(op[1]) % files.len()];
        let path = dir.path().join(file);
        let Ok(mut bytes) = std::fs::read(&path) else {
            continue;
        };
        let at = u32::from_le_bytes([op[2], op[3], op[4], op[5]]) as usize;
        match op[0] % 4 {
            0 => bytes.truncate(at % (bytes.len() + 1)),
            1 if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] ^= op[6] | 1;
            }
            2 => {
                std::fs::remove_file(&path).expect("remove");
                newest_touched |= Some(file) == newest;
                continue;
            }
            _ => bytes.extend(std::iter::repeat_n(op[6], 1 + at % 64)),
        }
        std::fs::write(&path, &bytes).expect("write back");
        newest_touched |= Some(file) == newest;
    }

    let before = contents(dir.path());
    match KvStore::open_with(dir.path(), small_store_options()) {
        Err(_) => assert!(
            contents(dir.path()) == before,
            "an open that failed changed the directory"
        ),
        Ok(store) => {
            let state = entries_of(&store);
            drop(store);
            let whole = states.last().expect("states");
            if newest_touched {
                assert!(
                    states.contains(&state),
                    "damage to the newest segment opened as no prefix of the writes"
                );
            } else {
                assert!(
                    &state == whole,
                    "damage opened silently as a different state"
                );
            }
        }
    }
}

/// Feeds arbitrary bytes to a server connection's decoder, in reads of a size the first
/// byte picks, and answers every request it yields with a session over a real store, as
/// the server does: no panic, and the input buffer never grows past what was sent plus one
/// argument within the limits (a declared length alone reserves nothing beyond them).
pub fn server_requests(data: &[u8]) {
    use kv_server::bytes::BytesMut;
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let limits = kv_server::Limits {
        max_bulk: 1024,
        max_args: 64,
        max_inline: 256,
        max_request: 4096,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = KvStore::open_with(dir.path(), small_store_options()).expect("open");
    let mut session = kv_server::Session::local(store.clone());
    let mut decoder = kv_server::Decoder::new(limits);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let bound = 2 * (body.len() + limits.max_bulk + limits.max_inline) + 64;
    'reads: for read in body.chunks(usize::from(chunk).max(1)) {
        input.extend_from_slice(read);
        loop {
            let request = match decoder.decode(&mut input) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(_) => break 'reads,
            };
            assert!(!request.is_empty() && request.len() <= limits.max_args);
            assert!(request.iter().all(|arg| arg.len() <= limits.max_bulk));
            let reply = session.handle(&request);
            kv_server::encode(&reply, session.protocol(), &mut output);
            output.clear();
            if session.is_closing() {
                break 'reads;
            }
        }
        assert!(
            input.capacity() <= bound,
            "{} reserved for {} bytes",
            input.capacity(),
            body.len()
        );
    }
    store.close().expect("close");
}
