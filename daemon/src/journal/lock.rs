//! The data directory's lock: an exclusive `flock` on `<dir>/slsd.lock`, which holds the
//! holder's pid. The kernel drops it when the process ends, however it ends (SIGKILL too), so
//! a stale file never blocks a start; a second daemon on the same directory refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "slsd.lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{dir} is in use by another slsd (pid {holder}, in {file}): stop it, or give this one \
         another --data-dir"
    )]
    Held {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        file: PathBuf,
        /// The holder's pid as it wrote it ("unknown" if unreadable).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock: released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (created if missing) without waiting.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder's pid; I/O errors.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        // Not truncated before it is locked: the holder's pid must stay readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    file: path.clone(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.chars().take(20).collect()
                    },
                });
            }
            Err(e) => return Err(err(e.into())),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(err)?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
