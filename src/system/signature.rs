//! Signed root images. A release image carries an Ed25519 signature in a trailer of
//! [`TRAILER`] bytes appended to it: the signer's public key (32 bytes), the signature (64) and
//! [`MAGIC`] (16). What is signed is [`CONTEXT`] followed by the SHA-256 of every byte before
//! the trailer, so a signer hashes the file as it streams and a signature made for an update
//! means nothing anywhere else. An image without the magic at its end is unsigned.
//!
//! The appliance trusts the keys of a file on its boot partition (`system.update_keys_file`,
//! one key a line) and those the admin stored in settings; it takes an unsigned image only when
//! the boot partition's eyrie.toml says `system.allow_unsigned_updates = true`. A signature
//! that does not verify is refused always. docs/update.md describes keys and signing.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::files::read_small;

/// Size of the signature trailer at the end of a signed image.
pub const TRAILER: usize = 32 + 64 + MAGIC.len();
/// The last bytes of a signed image.
pub const MAGIC: &[u8; 16] = b"eyrie-signed-v1\n";
/// What the signed message starts with, before the image's SHA-256.
const CONTEXT: &[u8] = b"eyrie root image v1\n";
/// Most keys trusted (in the boot partition's file, and in settings).
pub const MAX_KEYS: usize = 32;
/// Longest keys file read.
const MAX_KEYS_FILE: u64 = 16 * 1024;

/// An Ed25519 public key, written as the standard base64 of its 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// A public key that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an Ed25519 public key (44 characters of base64, as `eyrie sign keygen` writes)"
)]
pub struct BadKey(pub String);

impl std::str::FromStr for PublicKey {
    type Err = BadKey;

    fn from_str(s: &str) -> Result<Self, BadKey> {
        let bad = || BadKey(s.chars().take(60).collect());
        let s = s.trim();
        if s.len() != 44 {
            return Err(bad());
        }
        let raw = B64.decode(s).map_err(|_| bad())?;
        Ok(PublicKey(raw.try_into().map_err(|_| bad())?))
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The signed message for an image whose bytes before the trailer hash to `sha256`.
fn message(sha256: &[u8; 32]) -> Vec<u8> {
    [CONTEXT, sha256].concat()
}

/// The trailer that signs an image whose bytes hash to `sha256`.
pub fn sign(key: &Ed25519KeyPair, sha256: &[u8; 32]) -> [u8; TRAILER] {
    let mut t = [0u8; TRAILER];
    t[..32].copy_from_slice(key.public_key().as_ref());
    t[32..96].copy_from_slice(key.sign(&message(sha256)).as_ref());
    t[96..].copy_from_slice(MAGIC);
    t
}

/// The public key of a key pair.
pub fn public_key(key: &Ed25519KeyPair) -> PublicKey {
    PublicKey(
        key.public_key()
            .as_ref()
            .try_into()
            .expect("Ed25519 keys are 32 bytes"),
    )
}

/// A signature trailer read from the end of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    pub key: PublicKey,
    pub signature: [u8; 64],
}

/// The trailer in `tail` (an image's last [`TRAILER`] bytes), `None` when it has none.
pub fn trailer(tail: &[u8]) -> Option<Trailer> {
    if tail.len() != TRAILER || &tail[96..] != MAGIC {
        return None;
    }
    Some(Trailer {
        key: PublicKey(tail[..32].try_into().unwrap()),
        signature: tail[32..96].try_into().unwrap(),
    })
}

/// Why an image is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "this appliance trusts no update key and does not allow unsigned updates: add the public key the images are signed with in settings (update_keys) or to {0} on the boot partition (docs/update.md)"
    )]
    NoKeys(String),
    #[error(
        "the image is not signed, and this appliance takes only signed images (sign it with `eyrie sign image`, docs/update.md)"
    )]
    Unsigned,
    #[error(
        "the image is signed with key {0}, which this appliance does not trust (trusted: {1} on the boot partition and update_keys in settings)"
    )]
    Untrusted(PublicKey, String),
    #[error(
        "the image's signature by key {0} does not match its content: it was changed after it was signed"
    )]
    Altered(PublicKey),
}

/// The keys an appliance trusts, and whether it takes unsigned images.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<PublicKey>,
    pub allow_unsigned: bool,
    /// Where the boot partition's keys are, for messages.
    pub file: String,
}

impl Trust {
    /// Refuses at once when no image could pass.
    pub fn any(&self) -> Result<(), SignatureError> {
        if self.keys.is_empty() && !self.allow_unsigned {
            return Err(SignatureError::NoKeys(self.file.clone()));
        }
        Ok(())
    }

    /// Checks an image whose bytes before its last [`TRAILER`] hash to `signed_sha256` and
    /// whose last bytes are `tail`. The key of a good signature, `None` for an unsigned image
    /// taken because unsigned ones are allowed.
    pub fn check(
        &self,
        signed_sha256: &[u8; 32],
        tail: &[u8],
    ) -> Result<Option<PublicKey>, SignatureError> {
        let Some(t) = trailer(tail) else {
            return if self.allow_unsigned {
                Ok(None)
            } else {
                Err(SignatureError::Unsigned)
            };
        };
        // A signature that does not verify is an altered image whoever is trusted.
        UnparsedPublicKey::new(&ED25519, t.key.0)
            .verify(&message(signed_sha256), &t.signature)
            .map_err(|_| SignatureError::Altered(t.key))?;
        if self.keys.contains(&t.key) || self.allow_unsigned {
            Ok(Some(t.key))
        } else {
            Err(SignatureError::Untrusted(t.key, self.file.clone()))
        }
    }
}

/// Parses a keys file: one key a line, optionally followed by a comment after a space; blank
/// lines and lines starting with `#` skipped.
pub fn parse_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or("");
        let key = word
            .parse::<PublicKey>()
            .map_err(|e| format!("line {}: {e}", n + 1))?;
        if keys.len() == MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The keys of the boot partition's file; none when it does not exist.
pub fn load_keys(path: &Path) -> Result<Vec<PublicKey>, String> {
    let text = read_small(path, MAX_KEYS_FILE).map_err(|e| e.to_string())?;
    parse_keys(text.as_deref().unwrap_or("")).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    #[test]
    fn keys_read_back_as_written() {
        let k = public_key(&pair());
        let text = k.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<PublicKey>(), Ok(k));
        for bad in [
            "",
            "abc",
            &text[..43],
            format!("{text}A").as_str(),
            "!".repeat(44).as_str(),
        ] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad:?}");
        }
        let file = format!("# trusted\n\n{k} release key\n{k}\n");
        assert_eq!(parse_keys(&file), Ok(vec![k]));
        let err = parse_keys(&format!("{k}\nnot-a-key\n")).unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
        let many: String = (0..=MAX_KEYS)
            .map(|_| format!("{}\n", public_key(&pair())))
            .collect();
        assert!(parse_keys(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn only_trusted_unaltered_signatures_pass() {
        let (signer, other) = (pair(), pair());
        let sum = ring::digest::digest(&ring::digest::SHA256, b"image");
        let sum: [u8; 32] = sum.as_ref().try_into().unwrap();
        let t = sign(&signer, &sum);
        assert_eq!(trailer(&t).unwrap().key, public_key(&signer));
        let trust = Trust {
            keys: vec![public_key(&signer)],
            allow_unsigned: false,
            file: "/boot/update-keys.txt".into(),
        };
        assert_eq!(trust.check(&sum, &t), Ok(Some(public_key(&signer))));
        let unsigned = [0u8; TRAILER];
        assert_eq!(trust.check(&sum, &unsigned), Err(SignatureError::Unsigned));
        let mut changed = sum;
        changed[0] ^= 1;
        assert_eq!(
            trust.check(&changed, &t),
            Err(SignatureError::Altered(public_key(&signer)))
        );
        let by_other = sign(&other, &sum);
        assert!(matches!(
            trust.check(&sum, &by_other),
            Err(SignatureError::Untrusted(k, _)) if k == public_key(&other)
        ));
        // Another's signature under a trusted key's name.
        let mut forged = by_other;
        forged[..32].copy_from_slice(&t[..32]);
        assert!(matches!(
            trust.check(&sum, &forged),
            Err(SignatureError::Altered(_))
        ));
        // Allowing unsigned images takes those and unknown keys, never an altered one.
        let open = Trust {
            keys: vec![],
            allow_unsigned: true,
            ..trust.clone()
        };
        assert_eq!(open.check(&sum, &unsigned), Ok(None));
        assert_eq!(open.check(&sum, &by_other), Ok(Some(public_key(&other))));
        assert!(open.check(&changed, &t).is_err());
        assert!(open.any().is_ok() && trust.any().is_ok());
        let none = Trust {
            keys: vec![],
            ..trust
        };
        assert!(matches!(none.any(), Err(SignatureError::NoKeys(_))));
    }
}
