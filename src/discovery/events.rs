//! Change notices for the UI: which view changed (`discover`, `pair_requests`, `pairings`), sent
//! to at most [`MAX_SUBSCRIBERS`] listeners of `GET /api/events`. A notice carries no data, so
//! a listener fetches the fresh state; one that falls [`BACKLOG`] notices behind is dropped
//! (it reconnects and starts from the current state) rather than buffered for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

pub const MAX_SUBSCRIBERS: usize = 8;
pub const BACKLOG: usize = 32;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The list of nodes seen on the network (`GET /api/system/discover`).
    Discover,
    /// Pairing requests other nodes made to this one.
    PairRequests,
    /// Pairings this node started.
    Pairings,
}

impl Topic {
    pub fn name(self) -> &'static str {
        match self {
            Topic::Discover => "discover",
            Topic::PairRequests => "pair_requests",
            Topic::Pairings => "pairings",
        }
    }
}

pub struct Hub {
    tx: broadcast::Sender<Topic>,
    subscribers: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            subscribers: AtomicUsize::new(0),
        }
    }
}

/// One listener; dropping it frees its place.
pub struct Subscription {
    pub rx: broadcast::Receiver<Topic>,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hub {
    pub fn publish(&self, topic: Topic) {
        // No listener is fine.
        let _ = self.tx.send(topic);
    }

    /// A new listener, or None when [`MAX_SUBSCRIBERS`] are listening already.
    pub fn subscribe(self: &Arc<Self>) -> Option<Subscription> {
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
        let hub = Arc::new(Hub::default());
        let mut subs: Vec<_> = (0..MAX_SUBSCRIBERS)
            .map(|_| hub.subscribe().unwrap())
            .collect();
        assert!(hub.subscribe().is_none());
        subs.pop();
        let mut slow = hub.subscribe().unwrap();
        for _ in 0..=BACKLOG {
            hub.publish(Topic::Discover);
        }
        assert!(matches!(
            slow.rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}
