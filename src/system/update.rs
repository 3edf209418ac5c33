//! Writing a new root image into the slot that is not running. The image is streamed from the
//! request to the slot's device (never held whole in memory), checked to be a squashfs that
//! fits, fsynced, read back from the device and hashed, its signature checked on what was read
//! back (`signature.rs`), and only then made the slot the next boot tries. The running slot is
//! never opened.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use ring::digest::{Context, SHA256};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::System;
use super::signature::{self, PublicKey, SignatureError, TRAILER, Trust};
use super::slots::{AbState, Slot};
use crate::base::hex::{hex, is_hex64};

/// Longest wait for the next piece of the body.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Size of a squashfs 4.0 superblock, which starts the image.
const SUPERBLOCK: usize = 96;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "not running as an appliance ({0} does not exist): updates need the A/B slots of the appliance image (docs/update.md)"
    )]
    NotAppliance(String),
    #[error("an update is being written already; try again when it is done")]
    Busy,
    #[error("the image ({0}) is larger than slot {1} ({2} bytes)")]
    TooLarge(String, Slot, u64),
    #[error("not a root image: {0}")]
    BadImage(#[from] ImageError),
    #[error(
        "x-eyrie-sha256 is {expected} but slot {slot} holds {actual}: the slot will not be booted"
    )]
    Mismatch {
        expected: String,
        actual: String,
        slot: Slot,
    },
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// The boot partition's keys file cannot be used.
    #[error("the trusted update keys cannot be read: {0}")]
    Keys(String),
    #[error("the upload stopped: {0}")]
    Body(String),
    #[error("{0}")]
    Io(String),
}

/// A slot written and verified.
#[derive(Debug, Serialize)]
pub struct Written {
    pub slot: Slot,
    pub device: PathBuf,
    pub bytes: u64,
    /// SHA-256 of what was read back from the device.
    pub sha256: String,
    /// The key of the image's signature; `None` for an unsigned image (allowed on this
    /// appliance).
    pub signed_by: Option<PublicKey>,
}

/// The facts of a squashfs 4.0 superblock that tell an image from anything else.
#[derive(Debug, PartialEq, Eq)]
pub struct Superblock {
    pub bytes_used: u64,
}

/// Why an upload is not a root image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("it does not start with a squashfs superblock (magic \"hsqs\")")]
    NoSuperblock,
    #[error("squashfs version {0}, not 4")]
    Version(u16),
    #[error("squashfs block size {0} is not sane")]
    BlockSize(u32),
    #[error("squashfs size {0} is not sane")]
    Size(u64),
    #[error("the squashfs says it is {0} bytes, the request is shorter")]
    ShorterRequest(u64),
    #[error("{got} bytes came, the squashfs says it is {claimed}")]
    Truncated { got: u64, claimed: u64 },
    #[error("the signature trailer overlaps the squashfs ({claimed} bytes)")]
    TrailerInside { claimed: u64 },
}

/// x-eyrie-sha256 is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x-eyrie-sha256 must be 64 hex digits")]
pub struct BadSha256;

pub fn superblock(b: &[u8]) -> Result<Superblock, ImageError> {
    if b.len() < SUPERBLOCK || &b[..4] != b"hsqs" {
        return Err(ImageError::NoSuperblock);
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (block_size, block_log, major) = (u32_at(12), u16_at(22), u16_at(28));
    if major != 4 {
        return Err(ImageError::Version(major));
    }
    if !(4096..=1 << 20).contains(&block_size)
        || !block_size.is_power_of_two()
        || u32::from(block_log) != block_size.trailing_zeros()
    {
        return Err(ImageError::BlockSize(block_size));
    }
    let bytes_used = u64_at(40);
    if bytes_used < SUPERBLOCK as u64 {
        return Err(ImageError::Size(bytes_used));
    }
    Ok(Superblock { bytes_used })
}

/// Parses `x-eyrie-sha256`: 64 hex digits.
pub fn parse_sha256(v: &str) -> Result<String, BadSha256> {
    let v = v.trim();
    if is_hex64(v) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(BadSha256)
    }
}

impl System {
    /// What updates are checked against: the boot partition's keys file, `settings` (the
    /// admin's keys) and the boot partition's `allow_unsigned_updates`. The file is read at
    /// every update, so a key added to it counts without a restart.
    pub fn trust(&self, settings: &[PublicKey]) -> Result<Trust, UpdateError> {
        let mut keys =
            signature::load_keys(&self.cfg.update_keys_file).map_err(UpdateError::Keys)?;
        for k in settings {
            if !keys.contains(k) {
                keys.push(*k);
            }
        }
        Ok(Trust {
            keys,
            allow_unsigned: self.cfg.allow_unsigned_updates,
            file: self.cfg.update_keys_file.display().to_string(),
        })
    }

    /// Writes `body` (`length` bytes when the request said) to the slot that is not running
    /// and makes it `next` if its signature passes `trust`. On any failure `next` does not
    /// name that slot.
    pub async fn write_image<S, E>(
        &self,
        body: S,
        length: Option<u64>,
        sha256: Option<String>,
        trust: &Trust,
    ) -> Result<Written, UpdateError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let boot = self
            .boot
            .as_ref()
            .ok_or_else(|| UpdateError::NotAppliance(self.cfg.boot_env.display().to_string()))?;
        // Nothing could pass: refused before anything is read or written.
        trust.any()?;
        let _one = self.updating.try_lock().map_err(|_| UpdateError::Busy)?;
        let slot = boot.slot.other();
        let device = boot.device(slot).to_path_buf();
        let io = |what: &str, e: &dyn std::fmt::Display| {
            UpdateError::Io(format!("{what} {}: {e}", device.display()))
        };
        // The device of the other slot, never the running one. O_EXCL makes Linux refuse a
        // block device that is mounted (boot.env naming the wrong one); files ignore it.
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
            .open(&device)
            .map_err(|e| io("cannot open slot device", &e))?;
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| io("cannot size", &e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io("cannot seek", &e))?;
        if let Some(n) = length.filter(|n| *n > size) {
            return Err(UpdateError::TooLarge(format!("{n} bytes"), slot, size));
        }

        let mut body = body;
        // The superblock first: nothing is written before the image is known to be one.
        let mut head = Vec::with_capacity(SUPERBLOCK);
        let mut pending = Vec::new();
        while head.len() < SUPERBLOCK {
            let Some(b) = next_chunk(&mut body).await? else {
                break;
            };
            let take = (SUPERBLOCK - head.len()).min(b.len());
            head.extend_from_slice(&b[..take]);
            pending.push(b);
        }
        let sb = superblock(&head)?;
        if sb.bytes_used > size {
            return Err(UpdateError::TooLarge(
                format!("squashfs of {} bytes", sb.bytes_used),
                slot,
                size,
            ));
        }
        if length.is_some_and(|n| n < sb.bytes_used) {
            return Err(ImageError::ShorterRequest(sb.bytes_used).into());
        }
        // The slot is about to change: it must not be booted unless this update completes.
        self.set_next(None, Some(slot)).await?;
        tracing::info!(%slot, device = %device.display(), "writing an update");

        let mut out = tokio::fs::File::from_std(file);
        let mut written = 0u64;
        let mut hash = Context::new(&SHA256);
        let mut pending = pending.into_iter();
        loop {
            let b = match pending.next() {
                Some(b) => b,
                None => match next_chunk(&mut body).await? {
                    Some(b) => b,
                    None => break,
                },
            };
            written += b.len() as u64;
            if written > size {
                return Err(UpdateError::TooLarge(
                    format!("more than {size} bytes"),
                    slot,
                    size,
                ));
            }
            hash.update(&b);
            out.write_all(&b)
                .await
                .map_err(|e| io("cannot write", &e))?;
        }
        if written < sb.bytes_used {
            return Err(ImageError::Truncated {
                got: written,
                claimed: sb.bytes_used,
            }
            .into());
        }
        out.flush().await.map_err(|e| io("cannot write", &e))?;
        let file = out.into_std().await;
        let sent = hex(hash.finish().as_ref());
        let back = {
            let device = device.clone();
            tokio::task::spawn_blocking(move || read_back(file, written))
                .await
                .map_err(|e| UpdateError::Io(e.to_string()))?
                .map_err(|e| UpdateError::Io(format!("{}: {e}", device.display())))?
        };
        let read = back.sha256;
        if read != sent {
            return Err(UpdateError::Io(format!(
                "{} read back differently from what was written ({read} for {sent})",
                device.display()
            )));
        }
        if let Some(expected) = sha256 {
            if expected != read {
                return Err(UpdateError::Mismatch {
                    expected,
                    actual: read,
                    slot,
                });
            }
        }
        // The signature, of what the device holds: the slot is booted only if it passes.
        let signed_by = trust.check(&back.signed_sha256, &back.tail)?;
        if signed_by.is_some() && written.saturating_sub(TRAILER as u64) < sb.bytes_used {
            return Err(ImageError::TrailerInside {
                claimed: sb.bytes_used,
            }
            .into());
        }
        self.set_next(Some(slot), None).await?;
        tracing::info!(%slot, bytes = written, sha256 = %read, signed_by = ?signed_by.map(|k| k.to_string()), "update written; it runs after a reboot");
        Ok(Written {
            slot,
            device,
            bytes: written,
            sha256: read,
            signed_by,
        })
    }

    /// Sets `next` to `to`; with `only_if`, only when `next` is that slot now. (Off the async
    /// threads: the sync that follows the write can take a while.)
    async fn set_next(&self, to: Option<Slot>, only_if: Option<Slot>) -> Result<(), UpdateError> {
        let (lock, path) = (self.ab_lock.clone(), self.cfg.ab_file.clone());
        tokio::task::spawn_blocking(move || {
            let _g = lock.lock().unwrap();
            let mut ab = AbState::load(&path)?;
            if only_if.is_some() && ab.next != only_if {
                return Ok(());
            }
            ab.next = to;
            ab.store(&path)
        })
        .await
        .map_err(|e| UpdateError::Io(e.to_string()))?
        .map_err(|e| UpdateError::Io(e.to_string()))
    }
}

async fn next_chunk<S, E>(body: &mut S) -> Result<Option<Bytes>, UpdateError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
        Err(_) => Err(UpdateError::Body(format!(
            "nothing came for {IDLE_TIMEOUT:?}"
        ))),
        Ok(Some(Err(e))) => Err(UpdateError::Body(e.to_string())),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(None) => Ok(None),
    }
}

/// What was read back from the slot.
struct ReadBack {
    /// SHA-256 of all of it, as hex.
    sha256: String,
    /// SHA-256 of all but the last [`TRAILER`] bytes: what a signature covers.
    signed_sha256: [u8; 32],
    /// The last [`TRAILER`] bytes (fewer when the image is shorter).
    tail: Vec<u8>,
}

/// Makes the written bytes durable, drops them from the page cache so they are read from the
/// device itself, and reads the first `len` bytes back.
fn read_back(mut file: std::fs::File, len: u64) -> std::io::Result<ReadBack> {
    file.sync_all()?;
    // Advice only: where the kernel keeps the pages anyway, the hash is of what it will serve.
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    file.seek(SeekFrom::Start(0))?;
    let mut all = Context::new(&SHA256);
    let mut signed = Context::new(&SHA256);
    let split = len.saturating_sub(TRAILER as u64);
    let mut tail = Vec::with_capacity(TRAILER);
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0u64;
    let mut src = (&mut file).take(len);
    while pos < len {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the device ended early",
            ));
        }
        let b = &buf[..n];
        all.update(b);
        // How much of this piece comes before the trailer.
        let before = usize::try_from(split.saturating_sub(pos)).map_or(n, |k| k.min(n));
        signed.update(&b[..before]);
        tail.extend_from_slice(&b[before..]);
        pos += n as u64;
    }
    Ok(ReadBack {
        sha256: hex(all.finish().as_ref()),
        signed_sha256: signed
            .finish()
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes"),
        tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(block_size: u32, bytes_used: u64) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK];
        b[..4].copy_from_slice(b"hsqs");
        b[12..16].copy_from_slice(&block_size.to_le_bytes());
        b[22..24].copy_from_slice(&(block_size.trailing_zeros() as u16).to_le_bytes());
        b[28..30].copy_from_slice(&4u16.to_le_bytes());
        b[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        b
    }

    #[test]
    fn superblocks_are_checked() {
        assert_eq!(
            superblock(&sb(131072, 4096)),
            Ok(Superblock { bytes_used: 4096 })
        );
        assert!(superblock(&sb(131072, 4096)[..50]).is_err(), "short");
        assert!(superblock(&sb(1000, 4096)).is_err(), "block size");
        assert!(superblock(&sb(131072, 10)).is_err(), "size");
        let mut v3 = sb(131072, 4096);
        v3[28] = 3;
        assert!(superblock(&v3).is_err());
        let mut other = sb(131072, 4096);
        other[..4].copy_from_slice(b"\x7fELF");
        assert!(superblock(&other).unwrap_err().to_string().contains("hsqs"));
        assert!(parse_sha256(&"A".repeat(64)).is_ok());
        assert!(parse_sha256("abc").is_err());
    }

    #[test]
    fn read_back_splits_the_trailer_off_across_pieces() {
        let dir = tempfile::tempdir().unwrap();
        // The trailer straddles two of read_back's 256 KiB pieces, and lies within one.
        for len in [256 * 1024 + 50, 600 * 1024, TRAILER + 1, TRAILER - 1] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let p = dir.path().join("slot");
            std::fs::write(&p, &bytes).unwrap();
            let f = std::fs::File::open(&p).unwrap();
            let back = read_back(f, len as u64).unwrap();
            let split = len.saturating_sub(TRAILER);
            let digest = |b: &[u8]| ring::digest::digest(&SHA256, b);
            assert_eq!(back.sha256, hex(digest(&bytes).as_ref()), "{len}");
            assert_eq!(
                &back.signed_sha256[..],
                digest(&bytes[..split]).as_ref(),
                "{len}"
            );
            assert_eq!(back.tail, &bytes[split..], "{len}");
        }
    }
}
