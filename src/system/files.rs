//! Small files the appliance keeps: bounded reads, and writes that survive a power cut on FAT
//! (new file, fsync, rename over the old one, sync).

use std::fs::rename;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl FileError {
    pub fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// The file's text, `None` when it does not exist; an error when it is longer than `max`.
pub fn read_small(path: &Path, max: u64) -> Result<Option<String>, FileError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::new(path, format!("cannot read: {e}"))),
    };
    let mut text = String::new();
    f.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| FileError::new(path, format!("cannot read: {e}")))?;
    if text.len() as u64 > max {
        return Err(FileError::new(path, format!("longer than {max} bytes")));
    }
    Ok(Some(text))
}

/// Replaces `path` with `bytes` (mode `mode`): writes `<path>.new`, fsyncs it, renames it over
/// `path`, fsyncs the directory and syncs its filesystem (FAT has no journal: until then the
/// directory entry may be only in memory).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |what: &str, e: std::io::Error| FileError::new(path, format!("{what}: {e}"));
    let mut new = path.as_os_str().to_owned();
    new.push(".new");
    let new = PathBuf::from(new);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&new)
        .map_err(|e| err("cannot write", e))?;
    f.write_all(bytes).map_err(|e| err("cannot write", e))?;
    f.sync_all().map_err(|e| err("cannot fsync", e))?;
    drop(f);
    rename(&new, path).map_err(|e| err("cannot rename the new file over it", e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Some filesystems (FAT among them) refuse fsync on a directory; sync() below covers it.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    rustix::fs::sync();
    Ok(())
}

/// Removes `path` if it exists.
pub fn remove(path: &Path) -> Result<(), FileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::new(path, format!("cannot remove: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_writes_through_a_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        replace(&p, b"one", 0o600).unwrap();
        replace(&p, b"two", 0o600).unwrap();
        assert_eq!(read_small(&p, 10).unwrap().as_deref(), Some("two"));
        assert!(!dir.path().join("x.txt.new").exists());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(read_small(&p, 2).is_err(), "bounded");
        assert_eq!(read_small(&dir.path().join("none"), 2).unwrap(), None);
    }
}
