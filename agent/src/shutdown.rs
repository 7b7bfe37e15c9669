//! The agent's stop signal, set once (SIGTERM, Ctrl-C, or a part that cannot go on) and seen
//! by everything `run` started: threads that work in steps check [`Shutdown::is_set`] between
//! steps (a file is never left half-taken); async tasks await [`Shutdown::wait`] instead of
//! polling a flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            flag: Arc::default(),
            tx: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Asks everything to stop (idempotent).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag, for the parts that run on their own threads and check it between steps.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Triggers on SIGTERM or Ctrl-C, logging `what` happens next.
    pub fn trigger_on_signals(&self, rt: &tokio::runtime::Handle, what: &'static str) {
        let this = self.clone();
        rt.spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            tracing::info!("{what}");
            this.trigger();
        });
    }

    /// Resolves once [`Shutdown::trigger`] has been called (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_on_trigger_and_late_waiters_do_not_wait() {
        let s = Shutdown::new();
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        assert!(!s.is_set());
        s.trigger();
        waiter.await.unwrap();
        assert!(s.is_set() && s.flag().load(Ordering::SeqCst));
        s.wait().await;
    }
}
