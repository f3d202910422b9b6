//! The exported C functions. Conventions (docs/design.md, "The C API"):
//! every fallible function returns `lre_status` and writes its outputs only on success;
//! `lre_last_error_message()` then says what was wrong. No panic crosses the boundary.

use super::guard::{guard, guard_value, last_error_ptr, set_last_error, static_cstr};
use super::handle::{Handle, LreOptimizer, with_optimizer};
use super::pointers::{self, optimizer, out};
use crate::error::{Error, Result, Status};
use crate::spec::{Config, parse_component};
use std::ffi::c_char;
use std::path::Path;

/// The ABI version of the loaded library. Bindings compare it with `LRE_ABI_VERSION` from the
/// header they were built against.
#[unsafe(no_mangle)]
pub extern "C" fn lre_abi_version() -> u32 {
    super::LRE_ABI_VERSION
}

/// The library version ("MAJOR.MINOR.PATCH"), a static string.
#[unsafe(no_mangle)]
pub extern "C" fn lre_version() -> *const c_char {
    static_cstr(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes())
}

/// A static one-line description of an `lre_status` value ("unknown status" for others).
#[unsafe(no_mangle)]
pub extern "C" fn lre_status_string(status: i32) -> *const c_char {
    guard_value(static_cstr(b"unknown status\0"), || {
        match Status::ALL.iter().find(|s| **s as i32 == status) {
            Some(s) => static_cstr(s.description_with_nul().as_bytes()),
            None => static_cstr(b"unknown status\0"),
        }
    })
}

/// The message of the last failed `lre_` call on this thread: what was wrong and what would be
/// right. Never NULL ("" before any failure); valid until the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn lre_last_error_message() -> *const c_char {
    guard_value(static_cstr(b"\0"), last_error_ptr)
}

/// Creates an optimizer for `ndim` parameters from a spec string (NULL or "" = the default
/// configuration) and writes it to `*out`. The caller owns it and must call
/// `lre_optimizer_free`.
///
/// With `device=cuda:N` the optimizer's n-sized data live on GPU N, and every vector the step
/// functions take — `params`, `grad`, `probes`, `hvps`, `per_sample_grads`,
/// `per_sample_values`, and the HVP callback's `v` and `hv` — is a **device pointer** on that
/// GPU (the callback's product must be complete when it returns). Each call returns with its GPU
/// work finished; `lre_optimizer_set_stream` puts that work on the caller's stream. Without a
/// usable GPU (driver, cuBLAS 13, device N): `LRE_ERR_DEVICE` naming what is missing.
///
/// # Safety
/// `spec` is NULL or a NUL-terminated string; `out` is a valid pointer to write to.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_new(
    spec: *const c_char,
    ndim: usize,
    out_opt: *mut *mut LreOptimizer,
) -> Status {
    guard(|| {
        let out_opt = out(out_opt, "out")?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let spec = unsafe { pointers::optional_text(spec, "spec") }?;
        let inner = Handle::new(Config::parse(spec)?, ndim)?;
        let raw = Box::into_raw(Box::new(LreOptimizer::new(inner)));
        // SAFETY: `out_opt` was checked non-NULL and aligned by `out`.
        unsafe { pointers::write(out_opt, raw) };
        Ok(())
    })
}

/// Destroys an optimizer. NULL is a no-op. An optimizer that another call is using (an HVP
/// callback freeing the optimizer whose step called it, or another thread) is not freed: the
/// call does nothing and `lre_last_error_message()` says why; free it once that call returned.
///
/// # Safety
/// `opt` is NULL or a pointer from `lre_optimizer_new` that was not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_free(opt: *mut LreOptimizer) {
    guard_value((), || {
        // SAFETY: `opt` is NULL or a live optimizer (caller contract).
        match unsafe { optimizer(opt, "opt") } {
            // Kept busy until the memory is gone: a call racing the free is refused, not let in.
            Ok(claim) => std::mem::forget(claim),
            Err(e) if e.status == Status::LRE_ERR_BUSY => return set_last_error(&e.message),
            Err(_) => return, // NULL
        }
        // SAFETY: `opt` came from `Box::into_raw` in `lre_optimizer_new` and is freed once.
        drop(unsafe { Box::from_raw(opt) });
    })
}

/// Appends an inner optimizer (e.g. "lion" or "adam(beta2=0.999)") to the chain. Only before
/// the first step (`LRE_ERR_CALL_ORDER` afterwards). To build a chain only from pushes, create
/// the optimizer with `chain=[]`.
///
/// # Safety
/// `opt` is a live optimizer; `component` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_chain_push(
    opt: *mut LreOptimizer,
    component: *const c_char,
) -> Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let text = unsafe { pointers::text(component, "component") }?;
        let component = parse_component(text, &crate::inner::FAMILY)?;
        with_optimizer!(&mut *opt, o => o.chain_push(component))
    })
}

/// Writes the canonical spec (every default filled in) as a NUL-terminated string. `*len`
/// receives its length without the NUL; `buf` needs `cap >= *len + 1`. With `buf == NULL`
/// only `*len` is written (a size query).
///
/// # Safety
/// `opt` is a live optimizer; `buf` is NULL or valid for `cap` bytes; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_spec(
    opt: *const LreOptimizer,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> Status {
    guard(|| {
        let len = out(len, "len")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        let text = with_optimizer!(&*opt, o => o.config().to_string());
        let mut bytes: Vec<c_char> = text.bytes().map(|b| b as c_char).collect();
        bytes.push(0);
        // SAFETY: `buf` is NULL or valid for `cap` elements; `len` was checked by `out`.
        unsafe { copy_out(&bytes, buf, cap, len, "characters (including the NUL)") }?;
        // SAFETY: as above; report the length without the NUL.
        unsafe { pointers::write(len, text.len()) };
        Ok(())
    })
}

/// Sets a parameter: "lr" or "weight_decay" (finite, >= 0; they take effect at the next step)
/// or "loss" (the loss of the next step, for curvatures that need it: covariance_times_loss,
/// unrolled_gauss_newton; consumed by that step).
///
/// # Safety
/// `opt` is a live optimizer; `key` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_set_param(
    opt: *mut LreOptimizer,
    key: *const c_char,
    value: f64,
) -> Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let key = unsafe { pointers::text(key, "key") }?;
        match key {
            "lr" => with_optimizer!(&mut *opt, o => o.set_lr(value)),
            "weight_decay" => with_optimizer!(&mut *opt, o => o.set_weight_decay(value)),
            "loss" => with_optimizer!(&mut *opt, o => o.set_loss(value)),
            k if GETTABLE.contains(&k) => Err(Error::invalid(format!(
                "\"{k}\" is read-only; settable keys: lr, weight_decay, loss"
            ))),
            k => Err(Error::invalid(format!(
                "unknown parameter \"{k}\"; settable keys: lr, weight_decay, loss"
            ))),
        }
    })
}

/// Keys `lre_optimizer_get_param` answers.
const GETTABLE: &[&str] = &[
    "lr",
    "weight_decay",
    "step",
    "rank",
    "ndim",
    "num_probes",
    "update_freq",
    "init_steps",
    "seed",
    "threads",
    "symmetrize",
    "dtype",
    "needs_loss",
    "needs_samples",
    "global_ndim",
    "shard_offset",
    "allreduce_calls",
    "allreduce_values",
];

/// Reads a parameter into `*value`: "lr", "weight_decay", and the read-only "step" (steps
/// taken), "rank" (basis columns the inner optimizer used in the last step; 0 before the
/// first), "ndim", "num_probes" (Hessian-vector products per update step), "update_freq",
/// "init_steps", "seed", "threads" (the count in use, `threads=auto` resolved), "symmetrize"
/// (1 or 0), "dtype" (an `lre_dtype` code: 1 = f32, 2 = f64), "needs_loss" and "needs_samples"
/// (1 if the curvature needs the loss set before each step, or per-sample gradients through the
/// batch step); in sharded mode "global_ndim" (ndim when unsharded), "shard_offset",
/// "allreduce_calls" and "allreduce_values" (all-reduce calls and doubles reduced since
/// creation).
///
/// # Safety
/// `opt` is a live optimizer; `key` is NULL or a NUL-terminated string; `value` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_get_param(
    opt: *const LreOptimizer,
    key: *const c_char,
    value: *mut f64,
) -> Status {
    guard(|| {
        let value = out(value, "value")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let key = unsafe { pointers::text(key, "key") }?;
        let v = with_optimizer!(&*opt, o => {
            let c = o.config();
            match key {
                "lr" => c.lr,
                "weight_decay" => c.weight_decay,
                "step" => o.steps() as f64,
                "rank" => o.rank() as f64,
                "ndim" => o.ndim() as f64,
                "num_probes" => o.num_probes() as f64,
                "update_freq" => c.update_freq as f64,
                "init_steps" => c.init_steps as f64,
                "seed" => c.seed as f64,
                "threads" => o.threads() as f64,
                "symmetrize" => f64::from(u8::from(c.symmetrize)),
                "dtype" => f64::from(super::describe::LreDtype::from(c.dtype) as u32),
                "needs_loss" => f64::from(u8::from(o.requirements().loss)),
                "needs_samples" => f64::from(u8::from(o.requirements().samples)),
                "global_ndim" => o.global_ndim() as f64,
                "shard_offset" => c.shard_offset as f64,
                "allreduce_calls" => o.allreduce_traffic().0 as f64,
                "allreduce_values" => o.allreduce_traffic().1 as f64,
                k => return Err(Error::invalid(format!("unknown parameter \"{k}\"; keys: {}", GETTABLE.join(", ")))),
            }
        });
        // SAFETY: `value` was checked by `out`.
        unsafe { pointers::write(value, v) };
        Ok(())
    })
}

/// Writes the regularized eigenvalues the inner optimizer used in the last step (ascending;
/// as many as the "rank" parameter). `*len` receives the count; `buf` needs `cap >= *len`.
/// With `buf == NULL` only `*len` is written. Bases without eigenvalues (identity) return
/// `LRE_ERR_UNSUPPORTED`.
///
/// # Safety
/// `opt` is a live optimizer; `buf` is NULL or valid for `cap` doubles; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_eigenvalues(
    opt: *const LreOptimizer,
    buf: *mut f64,
    cap: usize,
    len: *mut usize,
) -> Status {
    guard(|| {
        let len = out(len, "len")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        let values = with_optimizer!(&*opt, o => o.eigenvalues()?.to_vec());
        // SAFETY: `buf` is NULL or valid for `cap` doubles; `len` was checked by `out`.
        unsafe { copy_out(&values, buf, cap, len, "values") }
    })
}

/// Writes to `*bytes` the most bytes this optimizer's state can ever take (its spec and ndim
/// decide it), for callers that must size a fixed buffer before the first step (lre.jax).
/// Configurations with per-sample batches (empirical_fisher, gauss_newton, natural_gradient)
/// have no fixed bound: `LRE_ERR_UNSUPPORTED`.
///
/// # Safety
/// `opt` is a live optimizer; `bytes` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_state_bound(
    opt: *const LreOptimizer,
    bytes: *mut usize,
) -> Status {
    guard(|| {
        let bytes = out(bytes, "bytes")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        let bound = with_optimizer!(&*opt, o => o.state_bound())?;
        // SAFETY: `bytes` was checked by `out`.
        unsafe { pointers::write(bytes, bound) };
        Ok(())
    })
}

/// Writes the optimizer's complete state (docs/state-format.md) into `buf` and its size into
/// `*len`. With `buf == NULL` only `*len` is written (a size query); a `cap` smaller than the
/// size returns `LRE_ERR_BUFFER_TOO_SMALL` and writes nothing.
///
/// # Safety
/// `opt` is a live optimizer; `buf` is NULL or valid for `cap` bytes; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_state_save(
    opt: *const LreOptimizer,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> Status {
    guard(|| {
        let len = out(len, "len")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        let size = with_optimizer!(&*opt, o => o.state_size());
        let size = usize::try_from(size)
            .map_err(|_| Error::invalid("the state does not fit in memory"))?;
        if !buf.is_null() {
            if cap < size {
                return Err(Error::new(
                    Status::LRE_ERR_BUFFER_TOO_SMALL,
                    format!("the buffer holds {cap} bytes; the state needs {size}"),
                ));
            }
            // SAFETY: `buf` is valid for `cap` >= size bytes (caller contract, checked size).
            let mut dst = unsafe { pointers::slice_mut(buf, size, "buf") }?;
            with_optimizer!(&*opt, o => o.save_state(&mut dst)).map_err(|e| {
                Error::new(
                    Status::LRE_ERR_STATE,
                    format!("writing the state failed: {e}"),
                )
            })?;
        }
        // SAFETY: `len` was checked by `out`.
        unsafe { pointers::write(len, size) };
        Ok(())
    })
}

/// Replaces the optimizer's state with a blob from `lre_optimizer_state_save`. The blob must
/// come from an optimizer with the same spec (lr, weight_decay and threads aside), ndim and
/// dtype, else `LRE_ERR_STATE` says what differs; lr and weight_decay are restored from the
/// blob. On error nothing changes.
///
/// # Safety
/// `opt` is a live optimizer; `buf` is NULL or valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_state_load(
    opt: *mut LreOptimizer,
    buf: *const u8,
    len: usize,
) -> Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: caller contract: `buf` is NULL or valid for `len` bytes.
        let bytes = unsafe { pointers::slice(buf, len, "buf") }?;
        with_optimizer!(&mut *opt, o => o.load_state(bytes))
    })
}

/// Creates an optimizer — spec, ndim and dtype included — from a saved state and writes it to
/// `*out`. The caller owns it and must call `lre_optimizer_free`.
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes; `out` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_from_state(
    buf: *const u8,
    len: usize,
    out_opt: *mut *mut LreOptimizer,
) -> Status {
    guard(|| {
        let out_opt = out(out_opt, "out")?;
        // SAFETY: caller contract: `buf` is NULL or valid for `len` bytes.
        let bytes = unsafe { pointers::slice(buf, len, "buf") }?;
        let inner = Handle::from_state(bytes)?;
        let raw = Box::into_raw(Box::new(LreOptimizer::new(inner)));
        // SAFETY: `out_opt` was checked non-NULL and aligned by `out`.
        unsafe { pointers::write(out_opt, raw) };
        Ok(())
    })
}

/// Saves the state to a file atomically: a temporary file in the same folder
/// (`.NAME.tmp-PID-N`) is written, flushed and renamed over `path`, so a crash mid-save leaves
/// the previous checkpoint intact. After a successful save, temporary files that earlier saves
/// of the same path left behind are removed once their writing process is gone (on Linux; a
/// live writer's file is never touched).
///
/// # Safety
/// `opt` is a live optimizer; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_save_file(
    opt: *const LreOptimizer,
    path: *const c_char,
) -> Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = unsafe { pointers::text(path, "path") }?;
        with_optimizer!(&*opt, o => o.save_file(Path::new(path)))
    })
}

/// Loads a state file written by `lre_optimizer_save_file` (as `lre_optimizer_state_load`).
/// Like a save, a successful load removes the temporary files that dead writers left beside it.
///
/// # Safety
/// `opt` is a live optimizer; `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_load_file(
    opt: *mut LreOptimizer,
    path: *const c_char,
) -> Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = unsafe { pointers::text(path, "path") }?;
        with_optimizer!(&mut *opt, o => o.load_file(Path::new(path)))
    })
}

/// Copies `data` into `buf` and its length into `*len`; with `buf == NULL` only the length.
/// Writes nothing when `cap` is too small.
///
/// # Safety
/// `buf` is NULL or valid for `cap` writes of `T`; `len` came from `out`.
pub(super) unsafe fn copy_out<T: Copy>(
    data: &[T],
    buf: *mut T,
    cap: usize,
    len: *mut usize,
    unit: &str,
) -> Result<()> {
    if !buf.is_null() {
        if cap < data.len() {
            return Err(Error::new(
                Status::LRE_ERR_BUFFER_TOO_SMALL,
                format!("the buffer holds {cap} {unit}; {} are needed", data.len()),
            ));
        }
        // SAFETY: caller contract (valid for `cap` >= data.len() writes).
        let dst = unsafe { pointers::slice_mut(buf, data.len(), "buf") }?;
        dst.copy_from_slice(data);
    }
    // SAFETY: `len` came from `out`.
    unsafe { pointers::write(len, data.len()) };
    Ok(())
}
