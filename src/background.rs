//! Work a request starts and does not wait for (the forgot-password mail: its answer must come at
//! once, whatever the account). Counted, so that shutdown lets it finish and tests can wait for it
//! instead of guessing how long it takes.

use std::future::Future;

use tokio::sync::watch;

pub struct Background {
    running: watch::Sender<usize>,
}

impl Default for Background {
    fn default() -> Self {
        Background { running: watch::Sender::new(0) }
    }
}

/// Counts a task as finished when dropped, so a task that panics is not counted forever.
struct Running(watch::Sender<usize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Background {
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.running.send_modify(|n| *n += 1);
        let guard = Running(self.running.clone());
        tokio::spawn(async move {
            let _guard = guard;
            work.await;
        });
    }

    /// Resolves once no background task is running (those started meanwhile included).
    pub async fn settled(&self) {
        let mut rx = self.running.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settled_waits_for_every_task_even_one_that_panics() {
        let bg = Background::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        bg.spawn(async move {
            let _ = rx.await;
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        bg.spawn(async { panic!("a background task fails") });
        let settled = bg.settled();
        tokio::pin!(settled);
        // Let both tasks run as far as they can (the runtime has one thread), then poll once.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let early = tokio::time::timeout(std::time::Duration::ZERO, settled.as_mut()).await;
        assert!(early.is_err(), "settled while a task still waits");
        tx.send(()).unwrap();
        settled.await;
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }
}
