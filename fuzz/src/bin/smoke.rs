//! Runs every fuzz target over its corpus, then over random mutations of it, on a stable
//! toolchain. Exits non-zero, saving the input under `fuzz/artifacts/`, when a target panics.
//!
//! `fuzz-smoke [--seconds N] [--target NAME]`

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: enough randomness to mutate inputs, with a seed printed for replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(input.len() + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if !input.is_empty() => {
                let i = rng.below(input.len());
                input.remove(i);
            }
            4 => input.truncate(rng.below(input.len() + 1)),
            _ => {
                let i = rng.below(input.len() + 1);
                let zeros = rng.below(64);
                input.splice(i..i, std::iter::repeat_n(0, zeros));
            }
        }
    }
}

fn corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if inputs.is_empty() {
        inputs.push(Vec::new());
    }
    inputs
}

fn save_crash(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name);
    std::fs::create_dir_all(&dir).expect("create the artifacts folder");
    let path = dir.join(format!("crash-{:016x}", kv_crc(input)));
    std::fs::write(&path, input).expect("save the crashing input");
    path
}

fn kv_crc(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() {
    let mut seconds = 5u64;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--target" => only = args.next(),
            other => {
                panic!("unknown argument {other}; usage: fuzz-smoke [--seconds N] [--target NAME]")
            }
        }
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    std::panic::set_hook(Box::new(|_| {}));
    let corpus_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut failed = false;
    for &(name, target) in kv_fuzz::TARGETS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let inputs = corpus(&corpus_root.join(name));
        let mut rng = Rng(seed);
        let mut runs = 0u64;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut run = |input: &[u8]| -> bool {
            runs += 1;
            catch_unwind(AssertUnwindSafe(|| target(input))).is_ok()
        };
        let mut crash = None;
        for input in &inputs {
            if !run(input) {
                crash = Some(input.clone());
                break;
            }
        }
        while crash.is_none() && Instant::now() < deadline {
            let mut input = inputs[rng.below(inputs.len())].clone();
            mutate(&mut rng, &mut input);
            if !run(&input) {
                crash = Some(input);
            }
        }
        match crash {
            Some(input) => {
                failed = true;
                let path = save_crash(name, &input);
                println!(
                    "{name}: PANIC after {runs} runs (seed {seed}); input saved to {}",
                    path.display()
                );
            }
            None => println!(
                "{name}: {runs} runs, {} corpus inputs, no panic (seed {seed})",
                inputs.len()
            ),
        }
    }
    if failed {
        std::process::exit(1);
    }
}
