//! Ctrl-C while the shell runs a command or prints its reply: SIGINT no longer ends `kv`
//! but raises a flag that the printer reads before each element, so a long reply is cut
//! short (which takes the flag down) and the shell goes on. A second Ctrl-C while the
//! first is still up ends `kv` (exit code 130). (At the prompt the terminal is in raw mode
//! and rustyline reads Ctrl-C as a key instead.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kv_store::KvStore;

use tokio::signal::unix::{signal, SignalKind};

/// The flag SIGINT raises.
#[derive(Debug, Clone)]
pub struct Interrupt {
    raised: Arc<AtomicBool>,
    /// The store to sync before a second Ctrl-C ends `kv`.
    store: Arc<Mutex<Option<KvStore>>>,
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
        let store: Arc<Mutex<Option<KvStore>>> = Arc::default();
        let to_sync = Arc::clone(&store);
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
                            // answered was never acknowledged. Every answered write is
                            // synced first (what a close would have done), for 2 s at most:
                            // under `none` or `batch` an answered write may not be yet.
                            eprintln!("kv: interrupted");
                            let store = to_sync.lock().ok().and_then(|mut s| s.take());
                            if let Some(store) = store {
                                let (done, synced) = std::sync::mpsc::channel();
                                std::thread::spawn(move || done.send(store.sync()));
                                match synced.recv_timeout(Duration::from_secs(2)) {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => eprintln!(
                                        "kv: the store could not be synced: {}",
                                        crate::failure::describe(&e)
                                    ),
                                    Err(_) => eprintln!("kv: the store's sync took over 2 s"),
                                }
                            }
                            std::process::exit(130);
                        }
                    }
                })
            })?;
        Ok(Interrupt { raised, store })
    }

    /// Has a second Ctrl-C sync `store` before it ends `kv`.
    pub fn sync_on_exit(&self, store: KvStore) {
        if let Ok(mut slot) = self.store.lock() {
            *slot = Some(store);
        }
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
