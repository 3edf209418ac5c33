//! The account store: the users in the index with their argon2id password hashes (never sent
//! in any answer), the one-time setup link of a node that has no account yet, logins throttled
//! per address, and the cache that keeps HTTP Basic logins (scripts, `curl -u`) from running
//! argon2 on every request.
//!
//! Logins are throttled in two tiers (docs/security.md, "Logins"):
//!
//! 1. Per address: [`MAX_FAILURES`] failures in [`FAILURE_WINDOW`], then 429 for the rest of it.
//! 2. An address that has failed (or has a try in flight) in its window spends the user name's
//!    budget ([`USER_BURST`], then one per [`USER_EVERY`]) and the node's
//!    ([`GLOBAL_BURST`], then one per [`GLOBAL_EVERY`]); spent, it gets 429 without a check.
//!    An address with no failure in its window is checked at once, budgets untouched: so
//!    many addresses guessing together get one guess each per window plus the budgets, and the
//!    admin typing the right password from a clean address is never held back by them.
//!
//! Invariants: the index is written before the in-memory map, so a user the map knows is
//! stored; a login's attempt is counted before its password is checked, and given back only on
//! success; an unknown name is checked against a dummy hash, so timing does not tell which
//! names exist; logins and password changes run at most `CONCURRENT_HASHES` argon2 hashes at
//! once, off the async threads; a password change ends every other session of the user and
//! every cached Basic login.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::passwords::{PasswordRules, check_password_rules, hash_password, verify_password};
use super::sessions::{SessionConfig, Sessions};
use crate::base::secret::{random_hex, same, sha256};
use crate::base::throttle::{Budget, Throttle};
use crate::storage::{Index, StorageError, UserRecord};

/// Failed logins one address may make in [`FAILURE_WINDOW`] before it is refused for the rest
/// of it.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Tries for one user name from addresses that failed lately: this many at once, then one
/// per [`USER_EVERY`].
pub const USER_BURST: u32 = 5;
pub const USER_EVERY: Duration = Duration::from_secs(2);
/// Tries in all from addresses that failed lately: this many at once, then one per
/// [`GLOBAL_EVERY`].
pub const GLOBAL_BURST: u32 = 10;
pub const GLOBAL_EVERY: Duration = Duration::from_secs(1);
/// How long a verified `Authorization: Basic` header is trusted without running argon2 again.
const BASIC_TTL: Duration = Duration::from_secs(300);
const BASIC_CACHE_MAX: usize = 256;
/// Argon2 with the default parameters uses 19 MiB per hash; this many run at once at most.
const CONCURRENT_HASHES: usize = 2;

/// Why an account could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a user name has 1 to 32 characters of a-z, A-Z, 0-9, '.', '_' and '-'")]
    UserName,
    #[error(transparent)]
    PasswordRules(#[from] PasswordRules),
    #[error("user '{0}' exists already")]
    Exists(String),
    #[error("user '{0}' no longer exists")]
    Gone(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("hashing the password: {0}")]
    Hashing(#[from] tokio::task::JoinError),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    Valid(String),
    Invalid,
    /// This address failed too often lately.
    Throttled,
    /// Too many wrong passwords lately for this user or in all (from many addresses): not
    /// checked; an address with no recent failure is still checked.
    Busy,
}

pub struct Accounts {
    index: Arc<Index>,
    users: RwLock<HashMap<String, UserRecord>>,
    pub sessions: Sessions,
    /// Secret of the one-time setup link, while no account exists.
    setup: Mutex<Option<String>>,
    throttle: Throttle,
    per_user: Budget<String>,
    global: Budget<()>,
    /// SHA-256 of a verified Basic header → (user, when verified).
    basic: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    hashing: tokio::sync::Semaphore,
    /// Verified against for unknown users, so timing does not tell which names exist (made at
    /// the first such login, not at every start).
    dummy_hash: std::sync::OnceLock<String>,
}

/// Whether `name` may be a user name: 1 to 32 of a-z, A-Z, 0-9, '.', '_' and '-'.
pub fn check_user_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AccountError::UserName)
    }
}

impl Accounts {
    pub fn load(index: Arc<Index>, sessions: SessionConfig) -> Result<Arc<Self>, StorageError> {
        let users = index
            .users()?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        Ok(Arc::new(Self {
            index,
            users: RwLock::new(users),
            sessions: Sessions::new(sessions),
            setup: Mutex::new(None),
            throttle: Throttle::new(MAX_FAILURES, FAILURE_WINDOW),
            per_user: Budget::new(USER_BURST, USER_EVERY),
            global: Budget::new(GLOBAL_BURST, GLOBAL_EVERY),
            basic: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(CONCURRENT_HASHES),
            dummy_hash: std::sync::OnceLock::new(),
        }))
    }

    pub fn has_users(&self) -> bool {
        !self.users.read().unwrap().is_empty()
    }

    /// First start: creates the admin from the configuration, or else makes the secret of a
    /// one-time setup link and returns it (to be printed in the log). Nothing when an account
    /// exists already.
    pub fn first_start(&self, admin: Option<(&str, &str)>) -> Result<Option<String>, AccountError> {
        if self.has_users() {
            if admin.is_some() {
                tracing::info!(
                    "auth.admin_password is not used: an account exists (it may be removed from the file)"
                );
            }
            return Ok(None);
        }
        if let Some((name, password)) = admin {
            self.create(name, password)?;
            tracing::info!(
                user = name,
                "created the admin account from the configuration"
            );
            return Ok(None);
        }
        let secret = random_hex(16);
        *self.setup.lock().unwrap() = Some(secret.clone());
        Ok(Some(secret))
    }

    /// Uses the setup link: creates the first account if `secret` is the link's and no account
    /// exists. The link works once.
    pub fn complete_setup(
        &self,
        secret: &str,
        name: &str,
        password: &str,
    ) -> Result<bool, AccountError> {
        let mut setup = self.setup.lock().unwrap();
        let matches = setup
            .as_deref()
            .is_some_and(|s| same(s.as_bytes(), secret.as_bytes()));
        if !matches || self.has_users() {
            return Ok(false);
        }
        self.create(name, password)?;
        *setup = None;
        Ok(true)
    }

    fn create(&self, name: &str, password: &str) -> Result<(), AccountError> {
        check_user_name(name)?;
        check_password_rules(password)?;
        let user = UserRecord {
            name: name.to_string(),
            password_hash: hash_password(password),
            created_ms: jiff::Timestamp::now().as_millisecond(),
        };
        if !self.index.put_user(&user, true)? {
            return Err(AccountError::Exists(name.to_string()));
        }
        self.users.write().unwrap().insert(user.name.clone(), user);
        Ok(())
    }

    /// Checks a name and password (argon2 off the async threads, a few at a time); failures
    /// count against `from`.
    pub async fn login(self: &Arc<Self>, name: &str, password: &str, from: IpAddr) -> Login {
        let Some(before) = self.throttle.take(from) else {
            return Login::Throttled;
        };
        if before > 0 {
            // This address failed lately: it spends the shared budgets (the module header).
            let key: String = name.chars().take(64).collect();
            if !(self.per_user.take(&key) && self.global.take(&())) {
                self.throttle.refund(from);
                tracing::warn!(%from, "login refused: too many wrong passwords lately");
                return Login::Busy;
            }
        }
        let hash = self
            .users
            .read()
            .unwrap()
            .get(name)
            .map(|u| u.password_hash.clone());
        let known = hash.is_some();
        let password = password.to_string();
        let me = self.clone();
        let ok = {
            let _permit = self.hashing.acquire().await.expect("never closed");
            tokio::task::spawn_blocking(move || {
                // An unknown name is checked against a dummy hash, made (once) here under
                // the same permit, so that its timing matches a known name's.
                let hash = hash.unwrap_or_else(|| {
                    me.dummy_hash
                        .get_or_init(|| hash_password(&random_hex(16)))
                        .clone()
                });
                verify_password(&password, &hash)
            })
            .await
            .unwrap_or(false)
        };
        if ok && known {
            self.throttle.refund(from);
            Login::Valid(name.to_string())
        } else {
            Login::Invalid
        }
    }

    /// Checks an `Authorization: Basic` value; a header verified in the last few minutes is
    /// answered from a cache keyed by its hash.
    pub async fn basic(self: &Arc<Self>, header_value: &str, from: IpAddr) -> Login {
        let key = sha256(header_value.as_bytes());
        if let Some((user, at)) = self.basic.lock().unwrap().get(&key) {
            if at.elapsed() < BASIC_TTL {
                return Login::Valid(user.clone());
            }
        }
        let Some((name, password)) = decode_basic(header_value) else {
            return if self.throttle.attempt(from) {
                Login::Invalid
            } else {
                Login::Throttled
            };
        };
        let verdict = self.login(&name, &password, from).await;
        if let Login::Valid(user) = &verdict {
            let mut cache = self.basic.lock().unwrap();
            if cache.len() >= BASIC_CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < BASIC_TTL);
                if cache.len() >= BASIC_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, (user.clone(), Instant::now()));
        }
        verdict
    }

    /// Sets a new password after checking the current one; every other session of the user
    /// and every cached Basic login ends.
    pub async fn change_password(
        self: &Arc<Self>,
        name: &str,
        current: &str,
        new: &str,
        from: IpAddr,
        keep_session: Option<&str>,
    ) -> Result<Login, AccountError> {
        check_password_rules(new)?;
        match self.login(name, current, from).await {
            Login::Valid(_) => {}
            other => return Ok(other),
        }
        let new = new.to_string();
        let hash = {
            let _permit = self.hashing.acquire().await.expect("never closed");
            tokio::task::spawn_blocking(move || hash_password(&new)).await?
        };
        let mut user = self
            .users
            .read()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| AccountError::Gone(name.to_string()))?;
        user.password_hash = hash;
        self.index.put_user(&user, false)?;
        self.users.write().unwrap().insert(name.to_string(), user);
        self.basic.lock().unwrap().clear();
        self.sessions.end_user(name, keep_session);
        Ok(Login::Valid(name.to_string()))
    }
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Arc<Accounts>) {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(Index::open(&dir.path().join("x.redb")).unwrap());
        (
            dir,
            Accounts::load(index, SessionConfig::default()).unwrap(),
        )
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn first_start_from_config_or_a_one_time_link() {
        let (_d, a) = accounts();
        let secret = a.first_start(None).unwrap().expect("a setup link");
        assert!(!a.has_users());
        assert!(!a.complete_setup("wrong", "admin", "longenough").unwrap());
        assert!(a.complete_setup(&secret, "admin", "longenough").unwrap());
        assert!(
            !a.complete_setup(&secret, "admin2", "longenough").unwrap(),
            "once"
        );
        assert!(a.has_users());
        assert_eq!(a.first_start(None).unwrap(), None);
        assert_eq!(
            a.login("admin", "longenough", HOME).await,
            Login::Valid("admin".into())
        );

        let (_d, b) = accounts();
        assert_eq!(b.first_start(Some(("root", "from-config"))).unwrap(), None);
        assert_eq!(
            b.login("root", "from-config", HOME).await,
            Login::Valid("root".into())
        );
    }

    #[tokio::test]
    async fn wrong_passwords_are_throttled_per_address() {
        let (_d, a) = accounts();
        a.first_start(Some(("admin", "the-password"))).unwrap();
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        for _ in 0..MAX_FAILURES {
            assert_eq!(a.login("admin", "nope", HOME).await, Login::Invalid);
        }
        assert_eq!(
            a.login("admin", "the-password", HOME).await,
            Login::Throttled
        );
        assert_eq!(
            a.login("admin", "the-password", other).await,
            Login::Valid("admin".into())
        );
    }

    #[tokio::test]
    async fn many_addresses_share_a_budget_and_a_clean_address_still_gets_in() {
        let (_d, a) = accounts();
        a.first_start(Some(("admin", "the-password"))).unwrap();
        let mut checked = 0;
        let start = Instant::now();
        for i in 0..20u8 {
            let from = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i));
            for _ in 0..MAX_FAILURES {
                match a.login("admin", "nope", from).await {
                    Login::Invalid => checked += 1,
                    Login::Busy => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        // One clean try per address, the user's burst, and one per interval since.
        let refilled = (start.elapsed().as_secs_f64() / USER_EVERY.as_secs_f64()).ceil() as u32;
        assert!(checked <= 20 + USER_BURST + refilled, "{checked}");
        assert!(checked >= 20, "every clean address is checked: {checked}");
        let clean = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(
            a.login("admin", "the-password", clean).await,
            Login::Valid("admin".into())
        );
    }

    #[tokio::test]
    async fn basic_logins_are_cached_until_the_password_changes() {
        use base64::Engine;
        let (_d, a) = accounts();
        a.first_start(Some(("admin", "the-password"))).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let header = format!("Basic {}", b64("admin:the-password"));
        assert_eq!(a.basic(&header, HOME).await, Login::Valid("admin".into()));
        assert_eq!(a.basic(&header, HOME).await, Login::Valid("admin".into()));
        assert_eq!(
            a.basic(&format!("Basic {}", b64("admin:wrong")), HOME)
                .await,
            Login::Invalid
        );
        let changed = a
            .change_password("admin", "the-password", "new-password", HOME, None)
            .await
            .unwrap();
        assert_eq!(changed, Login::Valid("admin".into()));
        assert_eq!(
            a.basic(&header, HOME).await,
            Login::Invalid,
            "cache cleared"
        );
        assert_eq!(
            a.basic(&format!("Basic {}", b64("admin:new-password")), HOME)
                .await,
            Login::Valid("admin".into())
        );
    }
}
