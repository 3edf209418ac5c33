//! Federation keys: 256 random bits, shown once at creation, stored only as a SHA-256 hash (the
//! secret has full entropy, so a fast hash is enough), checked against every stored hash in
//! constant time, revocable at once. Repeated failures from one address are throttled.
//!
//! Revoking a key ends what it opened: requests presenting it fail from then on, media tokens
//! issued under it stop checking ([`super::tokens`]), and responses still streaming for it
//! (live video) end when [`KeyStore::revoked`] fires.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::base::hex::{hex, unhex};
use crate::base::secret::{random_bytes, same, sha256};
use crate::base::throttle::Throttle;
use crate::storage::{FederationKeyRecord, Index, StorageError};

/// Failures one address may make in [`FAILURE_WINDOW`] before it is refused for the rest of it.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// `last_used` is written to the index at most this often per key.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// What a caller gets to see once: the secret itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewKey {
    pub id: String,
    pub name: String,
    pub key: String,
    pub created_ms: i64,
}

#[derive(Debug)]
pub enum Verdict {
    Valid {
        key_id: String,
    },
    Invalid,
    /// Too many failures from this address lately; not even checked.
    Throttled,
}

struct Entry {
    record: FederationKeyRecord,
    hash: [u8; 32],
}

pub struct KeyStore {
    index: Arc<Index>,
    keys: RwLock<Vec<Entry>>,
    failures: Throttle,
    /// Bumped on every revocation; [`KeyStore::revoked`] waits on it.
    revocations: tokio::sync::watch::Sender<u64>,
}

impl KeyStore {
    pub fn load(index: Arc<Index>) -> Result<Arc<Self>, StorageError> {
        let keys = index
            .federation_keys()?
            .into_iter()
            .filter_map(|record| {
                let hash = unhex(&record.hash)?;
                Some(Entry { record, hash })
            })
            .collect();
        Ok(Arc::new(Self {
            index,
            keys: RwLock::new(keys),
            failures: Throttle::new(MAX_FAILURES, FAILURE_WINDOW),
            revocations: tokio::sync::watch::Sender::new(0),
        }))
    }

    pub fn create(&self, name: &str) -> Result<NewKey, StorageError> {
        let secret: [u8; 32] = random_bytes();
        let id: [u8; 6] = random_bytes();
        let key = hex(&secret);
        let hash = sha256(key.as_bytes());
        let record = FederationKeyRecord {
            id: hex(&id),
            name: name.to_string(),
            hash: hex(&hash),
            created_ms: jiff::Timestamp::now().as_millisecond(),
            last_used_ms: None,
        };
        self.index.put_federation_key(&record)?;
        let out = NewKey {
            id: record.id.clone(),
            name: record.name.clone(),
            key,
            created_ms: record.created_ms,
        };
        self.keys.write().unwrap().push(Entry { record, hash });
        Ok(out)
    }

    pub fn list(&self) -> Vec<FederationKeyRecord> {
        let mut v: Vec<_> = self
            .keys
            .read()
            .unwrap()
            .iter()
            .map(|e| e.record.clone())
            .collect();
        v.sort_by_key(|r| r.created_ms);
        v
    }

    /// Removes a key; requests presenting it and tokens issued under it fail from now on, and
    /// whatever waits on [`Self::revoked`] for it is woken.
    pub fn revoke(&self, id: &str) -> Result<bool, StorageError> {
        let existed = self.index.delete_federation_key(id)?;
        self.keys.write().unwrap().retain(|e| e.record.id != id);
        self.revocations.send_modify(|n| *n = n.wrapping_add(1));
        Ok(existed)
    }

    /// Whether key `id` exists (is not revoked).
    pub fn is_live(&self, id: &str) -> bool {
        self.keys.read().unwrap().iter().any(|e| e.record.id == id)
    }

    /// Resolves once key `id` is revoked (at once if it is gone already): a long response
    /// opened with the key ends on it.
    pub fn revoked(self: &Arc<Self>, id: &str) -> impl Future<Output = ()> + Send + 'static {
        // Subscribed before the first look, so a revocation in between is not missed.
        let mut changes = self.revocations.subscribe();
        let me = self.clone();
        let id = id.to_string();
        async move {
            while me.is_live(&id) {
                if changes.changed().await.is_err() {
                    // The store is gone: nothing will be revoked any more.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Checks a presented secret. Every stored hash is compared, in constant time, whatever
    /// matches, so timing says nothing about which key or how much of it was right.
    pub fn verify(&self, presented: &str, from: IpAddr) -> Verdict {
        // The attempt is counted before the check; a valid key gives it back.
        if !self.failures.attempt(from) {
            return Verdict::Throttled;
        }
        let hash = sha256(presented.as_bytes());
        let mut found: Option<usize> = None;
        let keys = self.keys.read().unwrap();
        for (i, e) in keys.iter().enumerate() {
            if same(&e.hash, &hash) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => {
                let id = keys[i].record.id.clone();
                drop(keys);
                self.failures.refund(from);
                self.touch(&id);
                Verdict::Valid { key_id: id }
            }
            None => Verdict::Invalid,
        }
    }

    fn touch(&self, id: &str) {
        let now = jiff::Timestamp::now().as_millisecond();
        let mut keys = self.keys.write().unwrap();
        let Some(e) = keys.iter_mut().find(|e| e.record.id == id) else {
            return;
        };
        let stale = e
            .record
            .last_used_ms
            .is_none_or(|t| now - t >= LAST_USED_EVERY_MS);
        e.record.last_used_ms = Some(now);
        if stale {
            let record = e.record.clone();
            drop(keys);
            if let Err(err) = self.index.put_federation_key(&record) {
                tracing::warn!("recording key use: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<KeyStore>) {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(Index::open(&dir.path().join("x.redb")).unwrap());
        (dir, KeyStore::load(index).unwrap())
    }

    #[test]
    fn keys_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(Index::open(&dir.path().join("x.redb")).unwrap());
        let k = KeyStore::load(index.clone()).unwrap().create("a").unwrap();
        let again = KeyStore::load(index).unwrap();
        assert!(matches!(again.verify(&k.key, HOME), Verdict::Valid { .. }));
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn keys_verify_until_revoked_and_only_hashes_are_stored() {
        let (_dir, ks) = store();
        let k = ks.create("garage box").unwrap();
        assert_eq!(k.key.len(), 64);
        assert!(matches!(ks.verify(&k.key, HOME), Verdict::Valid { key_id } if key_id == k.id));
        assert!(matches!(ks.verify("nope", HOME), Verdict::Invalid));
        let listed = ks.list();
        assert_eq!(listed.len(), 1);
        assert_ne!(listed[0].hash, k.key);
        assert!(listed[0].last_used_ms.is_some());
        assert!(ks.revoke(&k.id).unwrap());
        assert!(matches!(ks.verify(&k.key, HOME), Verdict::Invalid));
        assert!(!ks.revoke(&k.id).unwrap());
    }

    #[tokio::test]
    async fn revoked_fires_for_its_key_only() {
        let (_dir, ks) = store();
        let a = ks.create("a").unwrap();
        let b = ks.create("b").unwrap();
        let mut on_a = Box::pin(ks.revoked(&a.id));
        let mut on_b = Box::pin(ks.revoked(&b.id));
        let soon = Duration::from_millis(50);
        assert!(tokio::time::timeout(soon, &mut on_a).await.is_err());
        assert!(ks.revoke(&b.id).unwrap());
        assert!(tokio::time::timeout(soon, &mut on_a).await.is_err());
        tokio::time::timeout(soon, &mut on_b).await.unwrap();
        assert!(ks.revoke(&a.id).unwrap());
        tokio::time::timeout(soon, &mut on_a).await.unwrap();
        // A key revoked before anyone waits: at once.
        tokio::time::timeout(soon, ks.revoked(&a.id)).await.unwrap();
    }

    #[test]
    fn repeated_failures_are_throttled_per_address() {
        let (_dir, ks) = store();
        let k = ks.create("a").unwrap();
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        for _ in 0..MAX_FAILURES {
            assert!(matches!(ks.verify("wrong", HOME), Verdict::Invalid));
        }
        assert!(matches!(ks.verify(&k.key, HOME), Verdict::Throttled));
        assert!(matches!(ks.verify(&k.key, other), Verdict::Valid { .. }));
    }
}
