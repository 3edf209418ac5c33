//! Accounts: the people who may use the web UI and the admin API. Their passwords
//! ([`passwords`]: argon2id hashes and the rules a password follows), the account store and
//! logins ([`users`]: the users in the index, the one-time setup link, per-address throttling,
//! the HTTP Basic cache), and their sessions ([`sessions`]: in memory, bounded, expiring).
//!
//! This module knows nothing of HTTP: the API's login, logout, setup and password handlers, and
//! the session cookie, are in `src/http`. It depends only on [`crate::base`] and
//! [`crate::storage`].

pub mod passwords;
pub mod sessions;
pub mod users;

pub use passwords::hash_password;
pub use sessions::{Session, SessionConfig, Sessions};
pub use users::{AccountError, Accounts, Login};
