//! A one-entry memo of the optimizer the last `lre_xla_step` produced, so the next step can skip
//! decoding a blob it just encoded (at n = 1e6 decoding is mostly page faults of fresh memory
//! and costs several steps).
//!
//! It is a cache, not state: an entry is used only when the incoming blob is the one it encoded —
//! the same token (written next to the blob, unique to this process), the same length, and a
//! CRC-32 recomputed over the incoming bytes equal to the one it wrote. Anything else (a state
//! from `init`, a checkpoint, another optimizer under `vmap`, edited bytes) decodes the blob, and
//! results are identical either way. The entry is taken out while stepping and put back after, so
//! a state stepped twice (without donation) decodes the second time.

use crate::backend::Scalar;
use crate::optimizer::CpuOptimizer;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// An optimizer of either dtype.
pub enum Kept {
    F32(CpuOptimizer<f32>),
    F64(CpuOptimizer<f64>),
}

/// Scalars whose optimizers the memo keeps.
pub trait Keep: Scalar {
    fn wrap(opt: CpuOptimizer<Self>) -> Kept;
    fn unwrap(kept: Kept) -> Option<CpuOptimizer<Self>>;
}

macro_rules! keep {
    ($scalar:ty, $variant:ident) => {
        impl Keep for $scalar {
            fn wrap(opt: CpuOptimizer<$scalar>) -> Kept {
                Kept::$variant(opt)
            }
            fn unwrap(kept: Kept) -> Option<CpuOptimizer<$scalar>> {
                match kept {
                    Kept::$variant(o) => Some(o),
                    _ => None,
                }
            }
        }
    };
}

keep!(f32, F32);
keep!(f64, F64);

struct Entry {
    token: u64,
    len: usize,
    crc: u32,
    opt: Kept,
}

static LAST: Mutex<Option<Entry>> = Mutex::new(None);

/// A fresh non-zero token: a per-process random start, then counting.
fn next_token() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU64::new(RandomState::new().hash_one(0u64) | 1));
    match next.fetch_add(1, Ordering::Relaxed) {
        0 => next.fetch_add(1, Ordering::Relaxed),
        token => token,
    }
}

/// The CRC-32 a blob ends with (docs/state-format.md).
fn stored_crc(blob: &[u8]) -> Option<u32> {
    let tail = blob.get(blob.len().checked_sub(4)?..)?;
    Some(u32::from_le_bytes(tail.try_into().ok()?))
}

/// The kept optimizer if `blob` (tagged `token`) is exactly what it encoded.
pub fn take<T: Keep>(token: u64, blob: &[u8]) -> Option<CpuOptimizer<T>> {
    if token == 0 || blob.len() < 4 {
        return None;
    }
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = last.as_ref()?;
    if entry.token != token || entry.len != blob.len() {
        return None;
    }
    let stored = stored_crc(blob)?;
    if stored != entry.crc || crc32fast::hash(&blob[..blob.len() - 4]) != entry.crc {
        return None;
    }
    T::unwrap(last.take()?.opt)
}

/// Keeps `opt`, whose encoding is `blob`; returns the token to write next to it.
pub fn keep<T: Keep>(opt: CpuOptimizer<T>, blob: &[u8]) -> u64 {
    let token = next_token();
    store(token, opt, blob);
    token
}

/// Keeps `opt`, unchanged since it was taken for (or decoded from) `blob` tagged `token`
/// (nothing is kept for token 0: such a blob cannot be recognised).
pub fn put_back<T: Keep>(token: u64, opt: CpuOptimizer<T>, blob: &[u8]) {
    if token != 0 {
        store(token, opt, blob);
    }
}

fn store<T: Keep>(token: u64, opt: CpuOptimizer<T>, blob: &[u8]) {
    let entry = Entry {
        token,
        len: blob.len(),
        crc: stored_crc(blob).unwrap_or(0),
        opt: T::wrap(opt),
    };
    let previous = {
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        last.replace(entry)
    };
    drop(previous); // freeing hundreds of megabytes: outside the lock
}

/// Drops the kept optimizer (its memory is freed; the next step decodes).
pub fn clear() {
    let previous = LAST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    drop(previous);
}
