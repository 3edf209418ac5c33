//! Federation owns trust between nodes and the view across them: the federation keys this node
//! issues so that peers may read it (never anything admin), the remote nodes it reads and the
//! poller that caches their cameras and health, and the media tokens that let a browser fetch
//! video straight from the node that holds it (docs/federation.md). Peers are read with the
//! bounded client and certificate pinning of [`crate::base`].

pub mod keys;
pub mod peers;
pub mod tokens;
