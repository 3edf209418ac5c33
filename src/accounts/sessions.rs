//! Sessions of logged-in users: a random id (256 bits, kept only in the browser's cookie; the
//! store knows its SHA-256), a CSRF token the page sends back on every change, an idle and an
//! absolute lifetime, and a bound on how many exist (the least recently used is ended first).
//!
//! Invariants: sessions live in memory only (a restart logs everyone out); an expired session is
//! never returned, and is dropped when met; the store never holds more than
//! [`SessionConfig::max`] sessions. How the id travels (the cookie) is the API's business, in
//! `src/http`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::base::secret::{random_hex, sha256};

#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// A session not used for this long ends.
    pub idle: Duration,
    /// A session ends this long after login whatever its use.
    pub absolute: Duration,
    /// Most sessions at once; a new login past it ends the least recently used one.
    pub max: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(12 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            max: 32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Sessions by the SHA-256 of their id (the id itself is only in the browser's cookie).
pub struct Sessions {
    cfg: SessionConfig,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn id_hash(id: &str) -> [u8; 32] {
    sha256(id.as_bytes())
}

impl Sessions {
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            cfg,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> SessionConfig {
        self.cfg
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) >= self.cfg.idle
            || now.duration_since(s.created) >= self.cfg.absolute
    }

    /// Starts a session; returns its id (for the cookie) and CSRF token.
    pub fn start(&self, user: &str) -> (String, String) {
        let id = random_hex(32);
        let csrf = random_hex(32);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| !self.expired(s, now));
        while map.len() >= self.cfg.max.max(1) {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id_hash(&id),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (id, csrf)
    }

    /// The live session with this id, marked as used now.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        let key = id_hash(id);
        let s = map.get_mut(&key)?;
        if self.expired(s, now) {
            map.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn end(&self, id: &str) {
        self.map.lock().unwrap().remove(&id_hash(id));
    }

    /// Ends every session of `user` except `keep` (a session id).
    pub fn end_user(&self, user: &str, keep: Option<&str>) {
        let keep = keep.map(id_hash);
        self.map
            .lock()
            .unwrap()
            .retain(|k, s| s.user != user || Some(*k) == keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_are_bounded() {
        let s = Sessions::new(SessionConfig {
            idle: Duration::from_secs(1),
            absolute: Duration::from_secs(60),
            max: 2,
        });
        let (a, csrf) = s.start("admin");
        assert_eq!(s.get(&a).unwrap().csrf, csrf);
        std::thread::sleep(Duration::from_millis(1200));
        assert!(s.get(&a).is_none(), "idle too long");
        let (b, _) = s.start("admin");
        let (c, _) = s.start("admin");
        let (d, _) = s.start("other");
        assert!(s.get(&b).is_none(), "the oldest is ended past the bound");
        assert!(s.get(&c).is_some() && s.get(&d).is_some());
        s.end_user("admin", None);
        assert!(s.get(&c).is_none() && s.get(&d).is_some());
        s.end(&d);
        assert!(s.get(&d).is_none());
    }

    #[test]
    fn sessions_end_after_their_absolute_lifetime() {
        let s = Sessions::new(SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(1),
            max: 8,
        });
        let (a, _) = s.start("admin");
        assert!(s.get(&a).is_some());
        std::thread::sleep(Duration::from_millis(1200));
        assert!(s.get(&a).is_none(), "used recently, but past its lifetime");
    }
}
