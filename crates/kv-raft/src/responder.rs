//! The responder a client write is proposed with ([`Settling`]): openraft's own, plus a
//! step run the moment the write's fate is known, on the thread that learns it.

use openraft::impls::ProgressResponder;
use openraft::raft::responder::Responder;
use openraft::type_config::alias::{LogIdOf, OneshotReceiverOf};
use openraft::OptionalSend;

use crate::types::TypeConfig;

/// A responder that runs `settled` once its write is applied or will never be, before the
/// result is sent on: inside openraft, so no request Raft handles after that moment sees
/// the write still pending. It also runs if the responder is dropped unanswered (Raft
/// stopping, or a proposal never handed over).
///
/// Why a hook and not a task that waits for the result: a write refused by the leader
/// (its lease lapsed, say) is answered at once, and Raft may serve the next request before
/// such a task is scheduled. A server that stages writes over the ones in flight must
/// forget a refused one before it stages the next.
pub struct Settling<T: OptionalSend + 'static> {
    inner: Option<ProgressResponder<TypeConfig, T>>,
    settled: Option<Box<dyn FnOnce() + Send>>,
}

impl<T: OptionalSend + 'static> Settling<T> {
    /// A responder that runs `settled` first, and the receiver of the result.
    pub fn new(
        settled: impl FnOnce() + Send + 'static,
    ) -> (Self, OneshotReceiverOf<TypeConfig, T>) {
        let (inner, result) = ProgressResponder::complete_only();
        let responder = Settling {
            inner: Some(inner),
            settled: Some(Box::new(settled)),
        };
        (responder, result)
    }

    fn settle(&mut self) {
        if let Some(settled) = self.settled.take() {
            settled();
        }
    }
}

impl<T: OptionalSend + 'static> Responder<TypeConfig, T> for Settling<T> {
    fn on_commit(&mut self, log_id: LogIdOf<TypeConfig>) {
        if let Some(inner) = &mut self.inner {
            inner.on_commit(log_id);
        }
    }

    fn on_complete(mut self, result: T) {
        self.settle();
        if let Some(inner) = self.inner.take() {
            inner.on_complete(result);
        }
    }
}

impl<T: OptionalSend + 'static> Drop for Settling<T> {
    fn drop(&mut self) {
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn the_step_runs_once_before_the_result_is_sent_or_when_dropped_unanswered() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let (responder, result) = Settling::<u32>::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        responder.on_complete(7);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(result.await.unwrap(), 7);

        let counted = Arc::clone(&runs);
        let (responder, result) = Settling::<u32>::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        drop(responder);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(result.await.is_err());
    }
}
