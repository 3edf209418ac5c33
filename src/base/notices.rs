//! A hub of change notices for a bounded number of listeners (the UI's `GET /api/events`):
//! publishers never wait, at most [`MAX_SUBSCRIBERS`] listen at once, and a listener that falls
//! [`BACKLOG`] notices behind is dropped (it reconnects and starts from the current state)
//! rather than buffered for. What a notice carries is the publisher's type `T`: a topic name
//! for "this view changed, fetch it", or the data itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

pub const MAX_SUBSCRIBERS: usize = 8;
pub const BACKLOG: usize = 32;

pub struct Hub<T> {
    tx: broadcast::Sender<T>,
    subscribers: AtomicUsize,
}

impl<T: Clone> Default for Hub<T> {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            subscribers: AtomicUsize::new(0),
        }
    }
}

/// One listener; dropping it frees its place.
pub struct Subscription<T> {
    pub rx: broadcast::Receiver<T>,
    hub: Arc<Hub<T>>,
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T: Clone> Hub<T> {
    pub fn publish(&self, notice: T) {
        // No listener is fine.
        let _ = self.tx.send(notice);
    }

    /// A new listener, or None when [`MAX_SUBSCRIBERS`] are listening already.
    pub fn subscribe(self: &Arc<Self>) -> Option<Subscription<T>> {
        self.subscribers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            })
            .ok()?;
        Some(Subscription {
            rx: self.tx.subscribe(),
            hub: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_are_capped_and_slow_ones_fall_off() {
        let hub = Arc::new(Hub::<u32>::default());
        let mut subs: Vec<_> = (0..MAX_SUBSCRIBERS)
            .map(|_| hub.subscribe().unwrap())
            .collect();
        assert!(hub.subscribe().is_none());
        subs.pop();
        let mut slow = hub.subscribe().unwrap();
        for i in 0..=BACKLOG as u32 {
            hub.publish(i);
        }
        assert!(matches!(
            slow.rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
