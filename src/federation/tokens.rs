//! Short-lived media tokens: what lets a browser fetch live video or recordings straight from
//! the node that holds them without ever holding a federation key. A token is
//! `{expiry}.{mac}`, the MAC an HMAC-SHA256 (this node's secret) over the kind, the camera and
//! the expiry, so it opens one camera's media of one kind until it expires, and nothing else.

use std::time::Duration;

use ring::hmac;

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

pub struct MediaTokens {
    key: hmac::Key,
    ttl: Duration,
}

fn now_s() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

fn message(kind: Kind, camera: &str, exp: u64) -> String {
    format!("eyrie-media-v1|{}|{camera}|{exp}", kind.tag())
}

impl MediaTokens {
    pub fn new(secret: &[u8; 32], ttl: Duration) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, camera: &str, kind: Kind) -> String {
        self.issue_until(camera, kind, now_s() + self.ttl.as_secs())
    }

    fn issue_until(&self, camera: &str, kind: Kind, exp: u64) -> String {
        let tag = hmac::sign(&self.key, message(kind, camera, exp).as_bytes());
        let mac = crate::base::hex::hex(tag.as_ref());
        format!("{exp}.{mac}")
    }

    /// Whether `token` opens `camera`'s media of `kind` now (constant-time MAC check).
    pub fn check(&self, token: &str, camera: &str, kind: Kind) -> bool {
        let Some((exp, mac)) = token.split_once('.') else {
            return false;
        };
        let Ok(exp) = exp.parse::<u64>() else {
            return false;
        };
        if exp < now_s() {
            return false;
        }
        let Some(raw) = crate::base::hex::unhex(mac) else {
            return false;
        };
        hmac::verify(&self.key, message(kind, camera, exp).as_bytes(), &raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_one_camera_and_kind_until_they_expire() {
        let t = MediaTokens::new(&[7; 32], Duration::from_secs(600));
        let tok = t.issue("cam1", Kind::Live);
        assert!(t.check(&tok, "cam1", Kind::Live));
        assert!(!t.check(&tok, "cam2", Kind::Live));
        assert!(!t.check(&tok, "cam1", Kind::Recording));
        let other = MediaTokens::new(&[8; 32], Duration::from_secs(600));
        assert!(
            !other.check(&tok, "cam1", Kind::Live),
            "another node's secret"
        );
        let expired = t.issue_until("cam1", Kind::Live, now_s() - 1);
        assert!(!t.check(&expired, "cam1", Kind::Live));
        // Moving the expiry breaks the MAC.
        let (_, mac) = tok.split_once('.').unwrap();
        assert!(!t.check(&format!("{}.{mac}", now_s() + 99_999), "cam1", Kind::Live));
        for junk in [
            "",
            ".",
            "x.y",
            "1.zz",
            &format!("{}.{}", now_s() + 10, "g".repeat(64)),
        ] {
            assert!(!t.check(junk, "cam1", Kind::Live), "{junk}");
        }
    }
}
