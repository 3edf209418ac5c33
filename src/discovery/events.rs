//! Discovery's change notices for the UI: which view changed (`discover`, `pair_requests`,
//! `pairings`). A notice carries no data, so a listener fetches the fresh state; the hub that
//! carries them is [`crate::base::notices::Hub`].

/// The hub discovery and pairing publish on.
pub type Hub = crate::base::notices::Hub<Topic>;

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
