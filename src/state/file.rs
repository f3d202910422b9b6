//! Checkpoint files: written atomically (a temporary file in the same folder, flushed and
//! synced, then renamed over the target), so a crash mid-save leaves the previous checkpoint.

use crate::error::{Error, Result, Status};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        Status::LRE_ERR_IO,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// A temporary name beside `path`, unique within this process.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let unique = format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    path.with_file_name(unique)
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
    Ok(())
}

/// The whole content of `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| io_error("read", path, e))
}
