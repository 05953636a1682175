//! Ctrl-C while the shell runs a command or prints its reply: SIGINT no longer ends `kv`
//! but raises a flag that the printer reads before each element, so a long reply is cut
//! short (which takes the flag down) and the shell goes on. A second Ctrl-C while the
//! first is still up ends `kv` (exit code 130). (At the prompt the terminal is in raw mode
//! and rustyline reads Ctrl-C as a key instead.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

/// The flag SIGINT raises.
#[derive(Debug, Clone)]
pub struct Interrupt {
    raised: Arc<AtomicBool>,
}

impl Interrupt {
    /// Catches SIGINT from now on (the handler is in place when this returns), on a thread
    /// of its own.
    pub fn catch() -> std::io::Result<Interrupt> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let mut interrupts = {
            let _entered = runtime.enter();
            signal(SignalKind::interrupt())?
        };
        let raised = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&raised);
        std::thread::Builder::new()
            .name("kv-sigint".into())
            .spawn(move || {
                runtime.block_on(async {
                    while interrupts.recv().await.is_some() {
                        if flag.swap(true, Ordering::SeqCst) {
                            // A second Ctrl-C before the first was taken: a command that
                            // prints nothing (a long KEYS, a compaction) cannot be cut, so
                            // kv ends as a shell's program does. Safe for the data: the
                            // store survives any end of the process, and a write not yet
                            // answered was never acknowledged.
                            eprintln!("kv: interrupted");
                            std::process::exit(130);
                        }
                    }
                })
            })?;
        Ok(Interrupt { raised })
    }

    /// Forgets a Ctrl-C that came before this command.
    pub fn clear(&self) {
        self.raised.store(false, Ordering::SeqCst);
    }

    /// Whether Ctrl-C came since [`clear`](Interrupt::clear); if so, takes it (the
    /// caller acts on it).
    pub fn take(&self) -> bool {
        self.raised.swap(false, Ordering::SeqCst)
    }
}
