//! The base layer: helpers that know nothing of cameras, video, storage or HTTP routes, used by
//! every domain module and by the API. Nothing here imports another Eyrie module; the rest of
//! the crate depends on it, never the other way round (docs: base ← domain modules ← http ←
//! main).

pub mod client;
pub mod hex;
pub mod names;
pub mod notices;
pub mod secret;
#[cfg(test)]
pub mod testing;
pub mod text;
pub mod throttle;
pub mod tls;
