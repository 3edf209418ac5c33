//! The appliance's own business: its A/B root slots (what the initramfs says about this boot
//! in `boot.env`, the slot state in the boot partition's `ab.txt`, confirming a trial boot),
//! updates (a new root image written to the slot that is not running, taken only when signed
//! by a trusted key: `signature.rs`), rebooting, and the
//! boot-partition settings `eyrie apply-boot-config` applies at every boot (host name, Wi-Fi,
//! admin password; secrets removed from the FAT file). docs/update.md describes the wire and
//! the slot state machine; the interface with the image's init is docs/image.md.

pub mod apply;
pub mod files;
pub mod signature;
pub mod slots;
pub mod update;
pub mod wifi;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::config::SystemConfig;
use slots::{AbState, BootEnv, Slot};

/// Name of the file in the state directory where `apply-boot-config` leaves its last error.
pub const BOOT_CONFIG_ERROR: &str = "boot-config-error";

/// The running appliance, as Eyrie sees it: `None` for `boot_env` when it is not one (a
/// developer's machine), in which case updates and reboots are refused.
pub struct System {
    pub cfg: SystemConfig,
    pub boot: Option<BootEnv>,
    /// Held while an update writes a slot: one at a time.
    pub updating: tokio::sync::Mutex<()>,
    /// Serialises writers of ab.txt within this process.
    pub ab_lock: Arc<std::sync::Mutex<()>>,
}

/// What `GET /api/system/update` and health say about the slots.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    /// The slot running now.
    pub slot: Slot,
    #[serde(flatten)]
    pub ab: AbState,
}

impl System {
    /// Reads boot.env; a missing file means this is not an appliance, an unreadable one is
    /// logged and treated the same (updates need to know for sure which slot runs).
    pub fn load(cfg: SystemConfig) -> Arc<Self> {
        let boot = match BootEnv::load(&cfg.boot_env) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("{e}; updates are off");
                None
            }
        };
        if let Some(b) = &boot {
            tracing::info!(slot = %b.slot, "running as an appliance");
        }
        Arc::new(Self {
            cfg,
            boot,
            updating: tokio::sync::Mutex::new(()),
            ab_lock: Arc::new(std::sync::Mutex::new(())),
        })
    }

    /// The slots as they are now; `None` when not an appliance.
    pub fn status(&self) -> Result<Option<SlotStatus>, files::FileError> {
        let Some(b) = &self.boot else {
            return Ok(None);
        };
        Ok(Some(SlotStatus {
            slot: b.slot,
            ab: AbState::load(&self.cfg.ab_file)?,
        }))
    }

    /// The confirm step: Eyrie came up (serving HTTP with storage open) on the slot under
    /// trial, so that slot becomes the active one. Returns whether it confirmed anything.
    pub fn confirm(&self) -> Result<bool, files::FileError> {
        let Some(b) = &self.boot else {
            return Ok(false);
        };
        let _g = self.ab_lock.lock().unwrap();
        let mut ab = AbState::load(&self.cfg.ab_file)?;
        if ab.trial != Some(b.slot) {
            return Ok(false);
        }
        ab.active = b.slot;
        ab.trial = None;
        ab.failed = None;
        ab.store(&self.cfg.ab_file)?;
        tracing::info!(slot = %b.slot, "update confirmed: slot {} is now the active one", b.slot);
        Ok(true)
    }

    /// The last error of `apply-boot-config`, if its last run failed.
    pub fn boot_config_error(&self) -> Option<String> {
        files::read_small(&self.error_path(), 4096)
            .ok()
            .flatten()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    fn error_path(&self) -> PathBuf {
        self.cfg.state.join(BOOT_CONFIG_ERROR)
    }
}
