//! The two root slots: `boot.env` (what the initramfs says about this boot: which slot runs and
//! the partitions' devices) and `ab.txt` (the slot state on the boot partition, shared with
//! the initramfs; docs/update.md has its state machine).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{FileError, read_small, replace};

/// Longest boot.env or ab.txt read.
const MAX_FILE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    fn parse(v: &str) -> Option<Slot> {
        match v {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Slot::A => "a",
            Slot::B => "b",
        })
    }
}

/// What is wrong in boot.env or ab.txt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotFileError {
    #[error("{0:?} is not key=value")]
    NotKeyValue(String),
    #[error("slot={0}: not a or b")]
    NotASlot(String),
    #[error("{0}={1}: not a, b or empty")]
    NotASlotOrEmpty(String, String),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is missing or not an absolute device path")]
    NotADevice(&'static str),
    #[error("active is empty")]
    NoActive,
}

/// `key=value` lines; blank lines and `#` comments skipped, CR (a file edited on Windows)
/// ignored.
fn pairs(text: &str) -> impl Iterator<Item = Result<(&str, &str), SlotFileError>> {
    text.lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| SlotFileError::NotKeyValue(l.to_string()))
        })
}

/// This boot, as the initramfs wrote it.
#[derive(Debug, Clone)]
pub struct BootEnv {
    pub slot: Slot,
    pub slot_a: PathBuf,
    pub slot_b: PathBuf,
}

impl BootEnv {
    /// `None` when the file does not exist (not an appliance).
    pub fn load(path: &Path) -> Result<Option<BootEnv>, FileError> {
        let Some(text) = read_small(path, MAX_FILE)? else {
            return Ok(None);
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|m| FileError::new(path, m))
    }

    fn parse(text: &str) -> Result<BootEnv, SlotFileError> {
        let (mut slot, mut a, mut b) = (None, None, None);
        for kv in pairs(text) {
            match kv? {
                ("slot", v) => {
                    slot = Some(Slot::parse(v).ok_or_else(|| SlotFileError::NotASlot(v.into()))?)
                }
                ("slot_a", v) => a = Some(PathBuf::from(v)),
                ("slot_b", v) => b = Some(PathBuf::from(v)),
                _ => {}
            }
        }
        let device = |d: Option<PathBuf>, key: &'static str| match d {
            Some(p) if p.is_absolute() => Ok(p),
            _ => Err(SlotFileError::NotADevice(key)),
        };
        Ok(BootEnv {
            slot: slot.ok_or(SlotFileError::Missing("slot"))?,
            slot_a: device(a, "slot_a")?,
            slot_b: device(b, "slot_b")?,
        })
    }

    pub fn device(&self, slot: Slot) -> &Path {
        match slot {
            Slot::A => &self.slot_a,
            Slot::B => &self.slot_b,
        }
    }
}

/// The slot state in ab.txt; a missing file is `active=a` and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbState {
    /// The slot that last came up healthy.
    pub active: Slot,
    /// The slot to try on the next boot.
    pub next: Option<Slot>,
    /// The slot being tried now, not yet confirmed.
    pub trial: Option<Slot>,
    /// The slot whose trial failed last.
    pub failed: Option<Slot>,
}

impl Default for AbState {
    fn default() -> Self {
        Self {
            active: Slot::A,
            next: None,
            trial: None,
            failed: None,
        }
    }
}

impl AbState {
    pub fn load(path: &Path) -> Result<AbState, FileError> {
        match read_small(path, MAX_FILE)? {
            None => Ok(AbState::default()),
            Some(text) => Self::parse(&text).map_err(|m| FileError::new(path, m)),
        }
    }

    fn parse(text: &str) -> Result<AbState, SlotFileError> {
        let mut s = AbState::default();
        for kv in pairs(text) {
            let (k, v) = kv?;
            let slot = if v.is_empty() {
                None
            } else {
                Some(
                    Slot::parse(v)
                        .ok_or_else(|| SlotFileError::NotASlotOrEmpty(k.into(), v.into()))?,
                )
            };
            match k {
                "active" => s.active = slot.ok_or(SlotFileError::NoActive)?,
                "next" => s.next = slot,
                "trial" => s.trial = slot,
                "failed" => s.failed = slot,
                _ => {}
            }
        }
        Ok(s)
    }

    pub fn render(&self) -> String {
        let o = |s: Option<Slot>| s.map(|s| s.to_string()).unwrap_or_default();
        format!(
            "active={}\nnext={}\ntrial={}\nfailed={}\n",
            self.active,
            o(self.next),
            o(self.trial),
            o(self.failed)
        )
    }

    /// Writes ab.txt the way every writer does: `ab.txt.new`, fsync, rename, sync.
    pub fn store(&self, path: &Path) -> Result<(), FileError> {
        replace(path, self.render().as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_env_is_read() {
        let b = BootEnv::parse(
            "slot=b\nslot_a=/dev/vda2\r\nslot_b=/dev/vda3\nboot=/dev/vda1\ndata=/dev/vda4\n",
        )
        .unwrap();
        assert_eq!(b.slot, Slot::B);
        assert_eq!(b.device(b.slot.other()), Path::new("/dev/vda2"));
        assert!(BootEnv::parse("slot=c\nslot_a=/a\nslot_b=/b\n").is_err());
        assert!(BootEnv::parse("slot=a\nslot_a=/a\n").is_err());
        assert!(BootEnv::parse("slot=a\nslot_a=a\nslot_b=/b\n").is_err());
    }

    #[test]
    fn ab_state_round_trips() {
        assert_eq!(AbState::parse("").unwrap(), AbState::default());
        let s = AbState::parse("# x\nactive=b\nnext=\ntrial=a\nfailed=\n").unwrap();
        assert_eq!(
            s,
            AbState {
                active: Slot::B,
                next: None,
                trial: Some(Slot::A),
                failed: None
            }
        );
        assert_eq!(AbState::parse(&s.render()).unwrap(), s);
        assert!(AbState::parse("active=\n").is_err());
        assert!(AbState::parse("next=c\n").is_err());
        assert!(AbState::parse("garbage\n").is_err());
    }
}
