//! This store beside redb 4, fjall 3 and sled 1.0 (alpha), and RocksDB with the `rocksdb`
//! feature, in one process run: W1 (1 and 8 writers), W2, W3,
//! W4, W5 and W8 of the workload spec, each peer through its own public API (a durable commit
//! per write for W1, its non-durable mode for W2). Prints one markdown table, workload by
//! system, with this store's ratio to the best peer (above 1: ahead).
//!
//! `cargo bench -p kv-benches --bench peers` (`KV_BENCH_QUICK=1`: 1/100 of the keys).
//! `KV_PEERS=kv,redb` runs only some systems. `--features rocksdb` adds RocksDB (a long C++
//! build): `cargo xtask bench --rocksdb`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kv_workloads::spec::{self, Put};
// Traits of redb 4 that its reads need in scope.
use kv_workloads::{key_for, resident_bytes, KEY_LEN, VALUE_LEN};
use redb::ReadableDatabase;

/// One system under test, reduced to what the workloads do. Each thread gets a handle of its
/// own ([`Engine::handle`]): sled 1.0's is `Send` but not `Sync`, made to be cloned per thread.
trait Engine: Send {
    /// Another handle on the same open store, for another thread.
    fn handle(&self) -> Box<dyn Engine>;
    /// Puts one key; `durable`: on stable storage before returning.
    fn put(&self, key: &[u8], value: &[u8], durable: bool);
    /// Puts many keys at once, not durably (loading).
    fn load(&self, pairs: &[Put]);
    /// Makes everything so far durable.
    fn sync(&self);
    /// Whether `key` is there.
    fn get(&self, key: &[u8]) -> bool;
    /// Reads up to `n` entries from `start` on; returns how many.
    fn scan(&self, start: &[u8], n: usize) -> usize;
}

struct Kv(kv_store::KvStore);

impl Engine for Kv {
    fn handle(&self) -> Box<dyn Engine> {
        Box::new(Kv(self.0.clone()))
    }
    fn put(&self, key: &[u8], value: &[u8], durable: bool) {
        let mut batch = kv_store::WriteBatch::new();
        batch.put(key.to_vec(), value.to_vec());
        let durability = if durable {
            kv_store::Durability::Sync
        } else {
            kv_store::Durability::None
        };
        let options = kv_store::WriteOptions {
            durability: Some(durability),
        };
        self.0.write_with(batch, options).expect("kv put");
    }
    fn load(&self, pairs: &[Put]) {
        let mut batch = kv_store::WriteBatch::new();
        for (k, v) in pairs {
            batch.put(k.to_vec(), v.to_vec());
        }
        self.0.write(batch).expect("kv load");
    }
    fn sync(&self) {
        self.0.sync().expect("kv sync");
    }
    fn get(&self, key: &[u8]) -> bool {
        self.0.get(key).is_some()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        self.0.range(start..).expect("ordered").take(n).count()
    }
}

const TABLE: redb::TableDefinition<'static, &[u8], &[u8]> = redb::TableDefinition::new("bench");

/// The cache each peer gets: the whole data set fits in it (about 120 MB of keys and values
/// at 1,000,000 keys), as this store holds it all in memory. It is redb's default; fjall's
/// (32 MiB) and sled's (512 MiB) are raised to it.
const PEER_CACHE_BYTES: usize = 1 << 30;

struct Redb(Arc<redb::Database>);

impl Engine for Redb {
    fn handle(&self) -> Box<dyn Engine> {
        Box::new(Redb(Arc::clone(&self.0)))
    }
    fn put(&self, key: &[u8], value: &[u8], durable: bool) {
        let mut tx = self.0.begin_write().expect("redb tx");
        tx.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .expect("redb durability");
        tx.open_table(TABLE)
            .expect("redb table")
            .insert(key, value)
            .expect("redb insert");
        tx.commit().expect("redb commit");
    }
    fn load(&self, pairs: &[Put]) {
        let mut tx = self.0.begin_write().expect("redb tx");
        tx.set_durability(redb::Durability::None)
            .expect("redb durability");
        {
            let mut table = tx.open_table(TABLE).expect("redb table");
            for (k, v) in pairs {
                table.insert(&k[..], &v[..]).expect("redb insert");
            }
        }
        tx.commit().expect("redb commit");
    }
    fn sync(&self) {
        // An `Immediate` commit (the default) makes the `None` ones before it durable.
        let tx = self.0.begin_write().expect("redb tx");
        tx.open_table(TABLE).expect("redb table");
        tx.commit().expect("redb commit");
    }
    fn get(&self, key: &[u8]) -> bool {
        let tx = self.0.begin_read().expect("redb read");
        let table = tx.open_table(TABLE).expect("redb table");
        table.get(key).expect("redb get").is_some()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let tx = self.0.begin_read().expect("redb read");
        let table = tx.open_table(TABLE).expect("redb table");
        table
            .range(start..)
            .expect("redb range")
            .take(n)
            .map(|entry| {
                let (_, value) = entry.expect("redb entry");
                std::hint::black_box(value.value().len())
            })
            .count()
    }
}

#[derive(Clone)]
struct Fjall {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl Engine for Fjall {
    fn handle(&self) -> Box<dyn Engine> {
        Box::new(self.clone())
    }
    fn put(&self, key: &[u8], value: &[u8], durable: bool) {
        self.keyspace.insert(key, value).expect("fjall insert");
        if durable {
            self.db
                .persist(fjall::PersistMode::SyncData)
                .expect("fjall persist");
        }
    }
    fn load(&self, pairs: &[Put]) {
        let mut batch = self.db.batch();
        for (k, v) in pairs {
            batch.insert(&self.keyspace, &k[..], &v[..]);
        }
        batch.commit().expect("fjall batch");
    }
    fn sync(&self) {
        self.db
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }
    fn get(&self, key: &[u8]) -> bool {
        self.keyspace.get(key).expect("fjall get").is_some()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        // Its iterator yields guards that read an entry when asked: each is read here.
        self.keyspace
            .range(start..)
            .take(n)
            .map(|guard| {
                let (_, value) = guard.into_inner().expect("fjall entry");
                std::hint::black_box(value.len())
            })
            .count()
    }
}

struct Sled(sled::Db);

impl Engine for Sled {
    fn handle(&self) -> Box<dyn Engine> {
        Box::new(Sled(self.0.clone()))
    }
    fn put(&self, key: &[u8], value: &[u8], durable: bool) {
        self.0.insert(key, value).expect("sled insert");
        if durable {
            self.0.flush().expect("sled flush");
        }
    }
    fn load(&self, pairs: &[Put]) {
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(&k[..], &v[..]);
        }
        self.0.apply_batch(batch).expect("sled batch");
    }
    fn sync(&self) {
        self.0.flush().expect("sled flush");
    }
    fn get(&self, key: &[u8]) -> bool {
        self.0.get(key).expect("sled get").is_some()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        self.0
            .range(start..)
            .take(n)
            .map(|entry| {
                let (_, value) = entry.expect("sled entry");
                std::hint::black_box(value.len())
            })
            .count()
    }
}

#[cfg(feature = "rocksdb")]
struct Rocks(Arc<RocksShared>);

/// An open RocksDB and the write options of the two kinds of puts, shared by the threads.
#[cfg(feature = "rocksdb")]
struct RocksShared {
    db: rocksdb::DB,
    durable: rocksdb::WriteOptions,
    buffered: rocksdb::WriteOptions,
}

#[cfg(feature = "rocksdb")]
impl Rocks {
    /// RocksDB set up for this data set: the whole of it fits in the block cache, a bloom
    /// filter spares the misses of W3 a block read, a hash index in each data block shortens
    /// the hits' search, both cores run its background work, and LZ4 compresses the tables.
    fn open(dir: &Path) -> Self {
        let cache = rocksdb::Cache::new_lru_cache(PEER_CACHE_BYTES);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.increase_parallelism(2);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_block_based_table_factory(&table);
        let db = rocksdb::DB::open(&options, dir).expect("rocksdb open");
        let mut durable = rocksdb::WriteOptions::default();
        durable.set_sync(true);
        Rocks(Arc::new(RocksShared {
            db,
            durable,
            buffered: rocksdb::WriteOptions::default(),
        }))
    }
}

#[cfg(feature = "rocksdb")]
impl Engine for Rocks {
    fn handle(&self) -> Box<dyn Engine> {
        Box::new(Rocks(Arc::clone(&self.0)))
    }
    fn put(&self, key: &[u8], value: &[u8], durable: bool) {
        let options = if durable {
            &self.0.durable
        } else {
            &self.0.buffered
        };
        self.0.db.put_opt(key, value, options).expect("rocksdb put");
    }
    fn load(&self, pairs: &[Put]) {
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in pairs {
            batch.put(k, v);
        }
        self.0
            .db
            .write_opt(batch, &self.0.buffered)
            .expect("rocksdb batch");
    }
    fn sync(&self) {
        self.0.db.flush_wal(true).expect("rocksdb sync");
    }
    fn get(&self, key: &[u8]) -> bool {
        // The pinned read copies nothing, as this store's get does not either.
        self.0.db.get_pinned(key).expect("rocksdb get").is_some()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let mut iter = self.0.db.raw_iterator();
        iter.seek(start);
        let mut read = 0;
        while read < n && iter.valid() {
            std::hint::black_box(iter.value().map(<[u8]>::len));
            read += 1;
            iter.next();
        }
        iter.status().expect("rocksdb scan");
        read
    }
}

/// The systems measured, this store first: RocksDB only with the `rocksdb` feature.
const SYSTEMS: &[&str] = &[
    "kv",
    "redb",
    "fjall",
    "sled",
    #[cfg(feature = "rocksdb")]
    "rocksdb",
];

/// How this store is set up for a workload: each system runs in its best configuration.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// Every write synced: `Durability::Sync` (system calls rather than mapped pages, which
    /// sync slower), hash index.
    DurablePuts,
    /// Buffered writes and point reads: the default durability, hash index.
    Points,
    /// Range scans: the ordered index.
    Scans,
    /// Range scans over the ordered index kept in one shard, so that a scan merges nothing
    /// (a side figure, not the best configuration: writers then share one lock).
    OneShardScans,
}

/// Opens `system` in `dir`; `setup` only matters to this store (the peers are ordered stores
/// with one configuration).
fn open(system: &str, dir: &Path, setup: Setup) -> Box<dyn Engine> {
    match system {
        "kv" => {
            let durability = if setup == Setup::DurablePuts {
                kv_store::Durability::Sync
            } else {
                kv_store::Durability::default()
            };
            let index = if matches!(setup, Setup::Scans | Setup::OneShardScans) {
                kv_store::IndexKind::Ordered
            } else {
                kv_store::IndexKind::Hash
            };
            let mut options = kv_store::Options::default()
                .index(index)
                .durability(durability)
                .auto_compact(None);
            if setup == Setup::OneShardScans {
                options = options.shards(1);
            }
            Box::new(Kv(
                kv_store::KvStore::open_with(dir, options).expect("kv open")
            ))
        }
        "redb" => Box::new(Redb(Arc::new(
            redb::Builder::new()
                .set_cache_size(PEER_CACHE_BYTES)
                .create(dir.join("bench.redb"))
                .expect("redb open"),
        ))),
        "fjall" => {
            let db = fjall::Database::builder(dir)
                .cache_size(PEER_CACHE_BYTES as u64)
                .open()
                .expect("fjall open");
            let keyspace = db
                .keyspace("bench", fjall::KeyspaceCreateOptions::default)
                .expect("fjall keyspace");
            Box::new(Fjall { db, keyspace })
        }
        "sled" => Box::new(Sled(
            sled::Config::new()
                .path(dir)
                .cache_capacity_bytes(PEER_CACHE_BYTES)
                .open()
                .expect("sled open"),
        )),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Box::new(Rocks::open(dir)),
        other => panic!("no system {other}"),
    }
}

fn quick() -> bool {
    kv_benches::quick()
}

fn keys() -> u64 {
    if quick() {
        spec::KEYS / 100
    } else {
        spec::KEYS
    }
}

/// `total` puts over `writers` threads; returns puts per second.
fn puts(engine: &dyn Engine, writers: u64, total: u64, durable: bool) -> f64 {
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let engine = engine.handle();
            s.spawn(move || {
                let puts = spec::random_puts(w + 1, keys());
                for (key, value) in puts.take((total / writers) as usize) {
                    engine.put(&key, &value, durable);
                }
            });
        }
    });
    if !durable {
        engine.sync();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn load(engine: &dyn Engine) {
    let pairs: Vec<Put> = spec::sequential_puts(keys(), 0).collect();
    for chunk in pairs.chunks(10_000) {
        engine.load(chunk);
    }
    engine.sync();
}

/// The bytes of the files under `dir`, and the seconds it takes to read them all once (twice
/// over, the first to bring them into the page cache, the second timed).
fn read_files(dir: &Path) -> (u64, f64) {
    fn files(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, into);
            } else {
                into.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(dir, &mut paths);
    let read_all = || {
        paths
            .iter()
            .map(|p| std::fs::read(p).map_or(0, |bytes| bytes.len() as u64))
            .sum::<u64>()
    };
    read_all();
    let started = Instant::now();
    let bytes = read_all();
    (bytes, started.elapsed().as_secs_f64())
}

/// One system's figures, in the order of [`ROWS`].
fn measure(system: &str) -> Vec<f64> {
    let scratch = |name: &str| {
        tempfile::Builder::new()
            .prefix(name)
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a directory")
    };
    let w1_ops = if quick() { 40 } else { 2_000 };
    let dir = scratch(system);
    let engine = open(system, dir.path(), Setup::DurablePuts);
    let w1_one = puts(engine.as_ref(), 1, w1_ops, true);
    let w1_eight = puts(engine.as_ref(), 8, w1_ops * 4, true);
    drop(engine);
    let dir = scratch(system);
    let engine = open(system, dir.path(), Setup::Points);
    let w2 = puts(engine.as_ref(), 1, keys(), false);
    drop(engine);

    let dir = scratch(system);
    let before = resident_bytes().unwrap_or(0);
    let engine = open(system, dir.path(), Setup::Points);
    load(engine.as_ref());
    let grown = resident_bytes().unwrap_or(0).saturating_sub(before);
    let w5 = grown as f64 / keys() as f64 - (KEY_LEN + VALUE_LEN) as f64;
    let gets = keys();
    let started = Instant::now();
    let mut hits = 0u64;
    for key in spec::gets(3, keys()).take(gets as usize) {
        hits += u64::from(engine.get(&key));
    }
    let w3 = gets as f64 / started.elapsed().as_secs_f64();
    // The gets draw from a space a ninth larger than the keys: about 90% hit. A figure from
    // an adapter that misses what was loaded (or finds what was not) would be no figure.
    let hit_share = hits as f64 / gets as f64;
    assert!(
        (0.85..0.95).contains(&hit_share),
        "{system}: {hit_share:.3} of W3's gets hit, not about 0.9"
    );
    drop(engine);
    let started = Instant::now();
    let engine = open(system, dir.path(), Setup::Points);
    assert!(engine.get(&key_for(keys() - 1)), "{system} lost a key");
    let w4 = started.elapsed().as_secs_f64();
    drop(engine);
    let (stored, read_once) = read_files(dir.path());
    // Not a row of the table: the figure that says what an open which reads its data costs.
    println!(
        "{system}: {:.2} MB on disk after the load; reading them once, from the page cache, takes {:.1} ms; its reopen took {:.1} ms",
        stored as f64 / 1e6,
        read_once * 1e3,
        w4 * 1e3
    );

    let scan_dir = scratch(system);
    let engine = if system == "kv" {
        let engine = open(system, scan_dir.path(), Setup::Scans);
        load(engine.as_ref());
        engine
    } else {
        open(system, dir.path(), Setup::Scans)
    };
    assert_eq!(
        engine.scan(&key_for(keys() - 150), spec::W8_SCAN_LEN * 2),
        150,
        "{system}: a scan from 150 keys before the end does not read 150"
    );
    let w8 = scans_per_second(engine.as_ref());
    drop(engine);
    if system == "kv" {
        // Not a row of the table: what the merge of the ordered index's shards costs a scan.
        let one_shard_dir = scratch(system);
        let engine = open(system, one_shard_dir.path(), Setup::OneShardScans);
        load(engine.as_ref());
        println!(
            "kv: W8 with the ordered index in one shard: {:.0} scans/s (in its default shards: {w8:.0})",
            scans_per_second(engine.as_ref())
        );
    }
    vec![w1_one, w1_eight, w2, w3, w4, w5, w8]
}

/// W8: 100-key scans from random starts; returns scans per second.
fn scans_per_second(engine: &dyn Engine) -> f64 {
    let scans = if quick() { 200 } else { 20_000 };
    let started = Instant::now();
    for start in spec::scan_starts(4, keys()).take(scans) {
        std::hint::black_box(engine.scan(&start, spec::W8_SCAN_LEN));
    }
    scans as f64 / started.elapsed().as_secs_f64()
}

/// The table's rows: name, unit, whether higher is better.
const ROWS: [(&str, &str, bool); 7] = [
    ("W1 durable put, 1 writer", "ops/s", true),
    ("W1 durable put, 8 writers", "ops/s", true),
    ("W2 buffered put, 1 writer", "ops/s", true),
    ("W3 random get, 1 reader", "ops/s", true),
    ("W4 reopen after 1M puts", "s", false),
    ("W5 memory above payload", "B/key", false),
    ("W8 100-key scans", "scans/s", true),
];

fn format(value: f64) -> String {
    if value >= 100.0 {
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{value:.3}")
    }
}

fn main() {
    let chosen = std::env::var("KV_PEERS").unwrap_or_default();
    let systems: Vec<&str> = SYSTEMS
        .iter()
        .copied()
        .filter(|s| chosen.is_empty() || chosen.split(',').any(|c| c == *s))
        .collect();
    let results: Vec<(&str, Vec<f64>)> = systems.iter().map(|s| (*s, measure(s))).collect();
    let rows: Vec<String> = ROWS
        .iter()
        .enumerate()
        .map(|(row, (name, unit, higher))| {
            let values: Vec<String> = results.iter().map(|(_, r)| r[row].to_string()).collect();
            format!("{name}\t{unit}\t{higher}\t{}", values.join("\t"))
        })
        .collect();
    // A run of only some systems is not a full table: it does not replace the saved one.
    if chosen.is_empty() {
        kv_benches::save_results(
            env!("CARGO_TARGET_TMPDIR"),
            "peers",
            &format!("workload\tunit\thigher_is_better\t{}", systems.join("\t")),
            &rows,
        );
    }
    println!("| workload | {} | kv ÷ best peer |", systems.join(" | "));
    println!("|{}", " --- |".repeat(systems.len() + 2));
    for (row, (name, unit, higher)) in ROWS.iter().enumerate() {
        let cell = |v: f64| format!("{} {unit}", format(v));
        let kv = results
            .iter()
            .find(|(s, _)| *s == "kv")
            .map(|(_, r)| r[row]);
        let peers = results
            .iter()
            .filter(|(s, _)| *s != "kv")
            .map(|(_, r)| r[row]);
        let best = if *higher {
            peers.fold(f64::NAN, f64::max)
        } else {
            peers.fold(f64::NAN, f64::min)
        };
        let ratio = match kv {
            Some(kv) if best.is_finite() && *higher => format!("{:.2}×", kv / best),
            // A peer that keeps its data on disk can use less memory than the payload.
            Some(kv) if best > 0.0 => format!("{:.2}×", best / kv.max(f64::MIN_POSITIVE)),
            _ => "-".into(),
        };
        let cells: Vec<String> = results.iter().map(|(_, r)| cell(r[row])).collect();
        println!("| {name} | {} | {ratio} |", cells.join(" | "));
    }
}
