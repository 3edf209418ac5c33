//! Short-lived media tokens: what lets a browser fetch live video or recordings straight from
//! the node that holds them without ever holding a federation key. A token is
//! `{expiry}.{issuer}.{mac}`: the expiry in Unix seconds, the issuer (the id of the federation
//! key whose holder asked for it, or `u` for a logged-in user), and an HMAC-SHA256 (this node's
//! secret) over the kind, the camera, the expiry and the issuer. So it opens one camera's media
//! of one kind until it expires, and only while the key it was issued under is not revoked.
//!
//! Invariants: exactly one spelling of a token is accepted, the one [`MediaTokens::issue`]
//! writes (decimal expiry without sign or leading zero, lower-case hex): a presented token is
//! checked by writing the token it should be and comparing the two whole, in constant time.
//! A key-issued token is valid only while [`KeyStore`] holds that key.

use std::sync::Arc;
use std::time::Duration;

use ring::hmac;

use super::keys::KeyStore;
use crate::base::secret::same;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Live,
    Recording,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::Recording => "rec",
        }
    }
}

/// The issuer of a token issued to a logged-in user rather than under a key.
const USER: &str = "u";

pub struct MediaTokens {
    key: hmac::Key,
    ttl: Duration,
    keys: Arc<KeyStore>,
}

fn now_s() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

fn message(kind: Kind, camera: &str, exp: u64, issuer: &str) -> String {
    format!("eyrie-media-v2|{}|{camera}|{exp}|{issuer}", kind.tag())
}

/// Whether `s` may stand as a token's issuer: `u`, or a key id (lower-case hex).
fn is_issuer(s: &str) -> bool {
    s == USER
        || ((1..=64).contains(&s.len())
            && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl MediaTokens {
    /// Tokens signed with `secret`, valid for `ttl`, key-issued ones while `keys` holds the key.
    pub fn new(secret: &[u8; 32], ttl: Duration, keys: Arc<KeyStore>) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            ttl,
            keys,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `camera`'s media of `kind`, issued under federation key `key_id` (a peer's
    /// request) or to a user (`None`).
    pub fn issue(&self, camera: &str, kind: Kind, key_id: Option<&str>) -> String {
        self.issue_until(
            camera,
            kind,
            now_s() + self.ttl.as_secs(),
            key_id.unwrap_or(USER),
        )
    }

    fn issue_until(&self, camera: &str, kind: Kind, exp: u64, issuer: &str) -> String {
        let tag = hmac::sign(&self.key, message(kind, camera, exp, issuer).as_bytes());
        let mac = crate::base::hex::hex(tag.as_ref());
        format!("{exp}.{issuer}.{mac}")
    }

    /// Whether `token` opens `camera`'s media of `kind` now: in its one canonical form, with a
    /// right MAC (compared in constant time), unexpired, and its key (if any) not revoked.
    pub fn check(&self, token: &str, camera: &str, kind: Kind) -> bool {
        let mut parts = token.split('.');
        let (Some(exp), Some(issuer), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        if exp.len() > 20 || !is_issuer(issuer) {
            return false;
        }
        let Ok(exp) = exp.parse::<u64>() else {
            return false;
        };
        if exp < now_s() {
            return false;
        }
        let expected = self.issue_until(camera, kind, exp, issuer);
        same(expected.as_bytes(), token.as_bytes()) && (issuer == USER || self.keys.is_live(issuer))
    }

    /// The federation key a token names as its issuer (None for a user's token or junk). Says
    /// nothing of its validity: [`Self::check`] it first.
    pub fn key_of(token: &str) -> Option<&str> {
        let issuer = token.split('.').nth(1)?;
        (issuer != USER && is_issuer(issuer)).then_some(issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: u8) -> (tempfile::TempDir, Arc<KeyStore>, MediaTokens) {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(crate::storage::Index::open(&dir.path().join("x.redb")).unwrap());
        let keys = KeyStore::load(index).unwrap();
        let t = MediaTokens::new(&[secret; 32], Duration::from_secs(600), keys.clone());
        (dir, keys, t)
    }

    #[test]
    fn tokens_open_one_camera_and_kind_until_they_expire() {
        let (_dir, keys, t) = tokens(7);
        let tok = t.issue("cam1", Kind::Live, None);
        assert!(t.check(&tok, "cam1", Kind::Live));
        assert!(!t.check(&tok, "cam2", Kind::Live));
        assert!(!t.check(&tok, "cam1", Kind::Recording));
        let other = MediaTokens::new(&[8; 32], Duration::from_secs(600), keys);
        assert!(
            !other.check(&tok, "cam1", Kind::Live),
            "another node's secret"
        );
        let expired = t.issue_until("cam1", Kind::Live, now_s() - 1, USER);
        assert!(!t.check(&expired, "cam1", Kind::Live));
        // Moving the expiry or the issuer breaks the MAC.
        let (_, rest) = tok.split_once('.').unwrap();
        assert!(!t.check(&format!("{}.{rest}", now_s() + 99_999), "cam1", Kind::Live));
        let mac = tok.rsplit('.').next().unwrap();
        let exp = tok.split('.').next().unwrap();
        assert!(!t.check(&format!("{exp}.abcdef012345.{mac}"), "cam1", Kind::Live));
        for junk in [
            "",
            ".",
            "..",
            "x.y",
            "x.u.y",
            "1.u.zz",
            &format!("{}.u.{}", now_s() + 10, "g".repeat(64)),
            &format!("{tok}.x"),
        ] {
            assert!(!t.check(junk, "cam1", Kind::Live), "{junk}");
        }
    }

    #[test]
    fn only_the_canonical_spelling_is_accepted() {
        let (_dir, _keys, t) = tokens(7);
        let tok = t.issue("cam1", Kind::Live, None);
        assert!(t.check(&tok, "cam1", Kind::Live));
        let (exp, rest) = tok.split_once('.').unwrap();
        for other in [
            format!("0{exp}.{rest}"),
            format!("+{exp}.{rest}"),
            format!("{exp} .{rest}"),
            tok.to_uppercase(),
            format!("{exp}.U.{}", rest.strip_prefix("u.").unwrap()),
            format!(
                "{exp}.u.{}",
                rest.strip_prefix("u.").unwrap().to_uppercase()
            ),
        ] {
            assert!(!t.check(&other, "cam1", Kind::Live), "{other}");
        }
    }

    #[test]
    fn tokens_of_a_revoked_key_stop_at_once() {
        let (_dir, keys, t) = tokens(7);
        let k = keys.create("peer").unwrap();
        let tok = t.issue("cam1", Kind::Recording, Some(&k.id));
        assert_eq!(MediaTokens::key_of(&tok), Some(k.id.as_str()));
        assert!(t.check(&tok, "cam1", Kind::Recording));
        let users = t.issue("cam1", Kind::Recording, None);
        assert_eq!(MediaTokens::key_of(&users), None);
        assert!(keys.revoke(&k.id).unwrap());
        assert!(!t.check(&tok, "cam1", Kind::Recording));
        assert!(t.check(&users, "cam1", Kind::Recording));
    }
}
