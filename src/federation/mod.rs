//! Federation owns trust between nodes and the view across them. So far: the federation keys
//! this node issues so that peers may read it (cameras, health, recordings; never anything
//! admin), and how a request presenting one is recognised. Remote nodes, the poller and media
//! tokens build on this (docs/federation.md).

pub mod client;
pub mod keys;
pub mod peers;
pub mod tls;
pub mod tokens;
