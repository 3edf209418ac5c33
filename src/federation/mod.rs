//! Federation owns trust between nodes and the view across them: the federation keys this node
//! issues so that peers may read it (never anything admin), the remote nodes it reads and the
//! poller that caches their cameras and health, the bounded HTTP(S) client it reads them with,
//! certificate pinning for HTTPS peers, and the media tokens that let a browser fetch video
//! straight from the node that holds it (docs/federation.md).

pub mod client;
pub mod keys;
pub mod peers;
pub mod throttle;
pub mod tls;
pub mod tokens;
