//! One camera per device: a [`Claim`] holds a device, by its real path (so a by-id name and
//! the /dev/videoN it points to are the same device), for as long as one camera of this
//! process streams from it; a second camera on it gets a clear error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::capture::CaptureError;

/// Devices in use by a camera of this process, by their real path (so a by-id name and the
/// /dev/videoN it points to are the same device).
static CLAIMED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// A device held by one camera until dropped.
pub struct Claim(PathBuf);

impl Claim {
    pub fn take(path: &Path) -> Result<Claim, CaptureError> {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut g = CLAIMED.lock().unwrap();
        if !g.get_or_insert_with(HashSet::new).insert(real.clone()) {
            return Err(CaptureError::Unsupported(format!(
                "{} is already used by another camera of this node; a device feeds one camera",
                real.display()
            )));
        }
        Ok(Claim(real))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(set) = CLAIMED.lock().unwrap().as_mut() {
            set.remove(&self.0);
        }
    }
}
