//! Checkpoint files: written atomically (a temporary file in the same folder, flushed and
//! synced, then renamed over the target), so a crash mid-save leaves the previous checkpoint.
//! The temporary file of a process killed mid-save stays behind; the next successful save or
//! load of the same path removes it once its writer is gone.

use crate::error::{Error, Result, Status};
use std::fs::{self, File};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        Status::LRE_ERR_IO,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// What the names of `path`'s temporary files start with; the writer's PID and a counter follow.
fn temporary_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    format!(".{name}.tmp-")
}

/// A temporary name beside `path`, unique within this process: `.NAME.tmp-PID-N`.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        "{}{}-{}",
        temporary_prefix(path),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    path.with_file_name(unique)
}

/// The writer's PID in the name of one of `path`'s temporary files (`prefix` from
/// [`temporary_prefix`]); `None` for any other name.
fn writer_of(name: &str, prefix: &str) -> Option<u32> {
    let (pid, counter) = name.strip_prefix(prefix)?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(counter)).then(|| pid.parse().ok())?
}

/// Removes the temporary files that saves of `path` by processes now gone left behind (a save
/// killed before its rename). Only files of this path owned by this user are considered, and one
/// is removed only when /proc says its writer no longer exists, so a live writer's file is never
/// touched; without /proc (not Linux) nothing is removed. Best effort: failures are ignored.
#[cfg(unix)]
fn remove_leftovers(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    // Our own user, read without libc: the owner of /proc/self.
    let Ok(me) = fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    let gone = |pid: u32| matches!(fs::metadata(format!("/proc/{pid}")), Err(e) if e.kind() == ErrorKind::NotFound);
    let prefix = temporary_prefix(path);
    let folder = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| writer_of(n, &prefix)) else {
            continue;
        };
        let mine = entry.metadata().is_ok_and(|m| m.is_file() && m.uid() == me);
        if mine && pid != std::process::id() && gone(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `path` through `write`, atomically: readers see the old file or the complete new one.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::invalid(format!(
            "{} is not a file path",
            path.display()
        )));
    }
    let temporary = temporary_beside(path);
    let result = (|| {
        let file = File::create(&temporary).map_err(|e| io_error("create", &temporary, e))?;
        let mut out = BufWriter::new(file);
        write(&mut out).map_err(|e| io_error("write", &temporary, e))?;
        let file = out
            .into_inner()
            .map_err(|e| io_error("write", &temporary, e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error("sync", &temporary, e))?;
        fs::rename(&temporary, path).map_err(|e| io_error("replace", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
        return result;
    }
    // Make the rename itself durable (best effort: not every platform can sync a folder).
    let folder = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(Ok(dir)) = folder.map(File::open) {
        let _ = dir.sync_all();
    }
    remove_leftovers(path);
    Ok(())
}

#[cfg(not(unix))]
fn remove_leftovers(_path: &Path) {}

/// The whole content of `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = fs::read(path).map_err(|e| io_error("read", path, e))?;
    remove_leftovers(path);
    Ok(bytes)
}
