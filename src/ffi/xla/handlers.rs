//! The XLA FFI handlers behind `lre.jax`, exported from liblre. They are pure: the optimizer's
//! whole state comes in as a uint8 buffer and goes out as a result (aliased in place when the
//! caller donates it); results depend on nothing kept in the library between calls (`memo` only
//! saves decoding a blob the last step encoded).
//!
//! The state buffer holds the blob's byte count (u64, little-endian), a token naming the step
//! that wrote it (u64; 0 when written elsewhere), the state blob of docs/state-format.md, then
//! zeros up to the buffer's fixed capacity (lre.jax sizes it with `lre_optimizer_state_bound`).
//!
//! * `lre_xla_step(state, grads, params, learning_rate[, hvps]) -> (state', updates, skipped)`:
//!   one step; `updates` = new params − params. With `hvps` (P × n, P ≥ the step's probe count)
//!   the step is the split step's second phase. A non-finite gradient or HVP skips the step
//!   instead of failing (a failed call would lose a donated state): state' = state, zero
//!   updates and `skipped` (an int32 scalar) = 1.
//! * `lre_xla_probes(state, grads) -> probes (P × n)`: the split step's first phase — the
//!   vectors whose Hessian products `lre_xla_step` needs, zero rows beyond the step's count.
//!
//! A step encodes the whole state again (and, unless `memo` holds it, decodes it first): O(state)
//! copies on top of the step itself (measured in bindings/python/benchmarks).

use super::c_api::{self, CallFrame, XlaError};
use super::frame::{Call, Element, Frame, classify};
use super::memo::{self, Keep};
use crate::backend::Scalar;
use crate::error::{Error, Result, Status};
use crate::ffi::guard::catching;
use crate::optimizer::CpuOptimizer;

/// Bytes before the blob in the state buffer: its length and the token.
pub const PREFIX: usize = 16;

/// One optimizer step (see the module documentation).
///
/// # Safety
/// Called by XLA with a valid call frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_xla_step(frame: *mut CallFrame) -> *mut XlaError {
    // SAFETY: forwarded caller contract.
    unsafe { run(frame, step) }
}

/// The probe vectors of a split step (see the module documentation).
///
/// # Safety
/// Called by XLA with a valid call frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_xla_probes(frame: *mut CallFrame) -> *mut XlaError {
    // SAFETY: forwarded caller contract.
    unsafe { run(frame, probes) }
}

/// Frees the optimizer the last step kept (see `memo`): for a process that is done training
/// with lre.jax and wants the memory back. Results never depend on it.
#[unsafe(no_mangle)]
pub extern "C" fn lre_xla_clear_memo() {
    crate::ffi::guard::guard_value((), memo::clear);
}

/// Answers the metadata probe and non-execute stages; runs `body` on execution, turning errors
/// and panics into XLA errors whose message starts with our status name.
///
/// # Safety
/// `frame` is a valid call frame.
unsafe fn run(frame: *mut CallFrame, body: fn(&Frame<'_>) -> Result<()>) -> *mut XlaError {
    // SAFETY: forwarded caller contract.
    let Call::Execute(f) = (unsafe { classify(frame) }) else {
        return std::ptr::null_mut();
    };
    match catching(|| body(&f)) {
        Ok(()) => std::ptr::null_mut(),
        Err(Error { status, message }) => {
            let code = match status {
                Status::LRE_ERR_UNSUPPORTED => c_api::ERROR_UNIMPLEMENTED,
                Status::LRE_ERR_BUFFER_TOO_SMALL | Status::LRE_ERR_NUMERICAL => {
                    c_api::ERROR_FAILED_PRECONDITION
                }
                Status::LRE_ERR_PANIC => c_api::ERROR_INTERNAL,
                _ => c_api::ERROR_INVALID_ARGUMENT,
            };
            f.error(code, &format!("{status:?}: {message}"))
        }
    }
}

fn step(f: &Frame<'_>) -> Result<()> {
    match f.arg_dtype(1, "grads")? {
        c_api::DTYPE_F32 => step_typed::<f32>(f),
        c_api::DTYPE_F64 => step_typed::<f64>(f),
        other => Err(wrong_float("grads", other)),
    }
}

fn probes(f: &Frame<'_>) -> Result<()> {
    match f.arg_dtype(1, "grads")? {
        c_api::DTYPE_F32 => probes_typed::<f32>(f),
        c_api::DTYPE_F64 => probes_typed::<f64>(f),
        other => Err(wrong_float("grads", other)),
    }
}

fn wrong_float(name: &str, code: i32) -> Error {
    Error::invalid(format!(
        "{name} must be float32 or float64, got XLA dtype code {code}"
    ))
}

fn step_typed<T: Keep + Element>(f: &Frame<'_>) -> Result<()> {
    // Everything is read before any result is written: the state result aliases the state
    // argument (XLA passes the same memory, donated or copied).
    let (input, old_len, outcome) = {
        let buffer = f.arg::<u8>(0, "state", None)?;
        let (token, blob) = split_state(buffer)?;
        let mut opt = match memo::take::<T>(token, blob) {
            Some(kept) => kept,
            None => CpuOptimizer::<T>::from_state(blob)?,
        };
        let n = opt.ndim();
        let grads = f.arg::<T>(1, "grads", Some(n))?;
        let params = f.arg::<T>(2, "params", Some(n))?;
        let saved_lr = opt.config().lr;
        opt.set_lr(learning_rate(f)?)?;
        let mut x = params.to_vec();
        let stepped = if f.num_args() > 4 {
            opt.begin(grads).and_then(|count| {
                let rows = hvp_rows::<T>(f, n, count)?;
                opt.finish(&mut x, &rows)
            })
        } else {
            opt.step(&mut x, grads)
        };
        // The optimizer and the moved params; None for a skipped step.
        let outcome = match stepped {
            Ok(()) => Some((opt, x)),
            // Raising would lose a donated state: the step is skipped and counted instead. The
            // optimizer is still the blob's (a failed step changes nothing; lr is put back).
            Err(e) if e.status == Status::LRE_ERR_NUMERICAL => {
                opt.cancel();
                opt.set_lr(saved_lr)?;
                memo::put_back(token, opt, blob);
                None
            }
            Err(e) => return Err(e),
        };
        ((buffer.as_ptr(), buffer.len()), blob.len(), outcome)
    };
    let (input_ptr, capacity) = input;
    let n = f.result_len(1, "updates")?;
    let skipped = outcome.is_none();
    match outcome {
        Some((opt, moved)) => {
            write_state(f, opt, input_ptr, capacity, old_len)?;
            // updates = new params − params, straight into its result (which aliases no
            // argument).
            let params = f.arg::<T>(2, "params", Some(moved.len()))?;
            let updates = f.result::<T>(1, "updates", moved.len())?;
            for ((u, a), b) in updates.iter_mut().zip(&moved).zip(params) {
                *u = T::from_f64(a.to_f64() - b.to_f64());
            }
        }
        None => {
            let out = f.result::<u8>(0, "state", capacity)?;
            if !std::ptr::eq(input_ptr, out.as_ptr()) {
                out.copy_from_slice(f.arg::<u8>(0, "state", Some(capacity))?);
            }
            f.result::<T>(1, "updates", n)?.fill(T::default());
        }
    }
    f.result::<i32>(2, "skipped", 1)?[0] = i32::from(skipped);
    Ok(())
}

/// Writes `opt`'s state into the state result (capacity bytes; `input_ptr` is the state
/// argument's memory, whose old blob had `old_len` bytes) and keeps `opt` for the next call.
fn write_state<T: Keep>(
    f: &Frame<'_>,
    opt: CpuOptimizer<T>,
    input_ptr: *const u8,
    capacity: usize,
    old_len: usize,
) -> Result<()> {
    let new_len = opt.state_size() as usize;
    if PREFIX + new_len > capacity {
        return Err(Error::new(
            Status::LRE_ERR_BUFFER_TOO_SMALL,
            format!(
                "the state needs {} bytes but the state buffer holds {capacity}; create the \
                 state with a larger state_capacity",
                PREFIX + new_len
            ),
        ));
    }
    let out = f.result::<u8>(0, "state", capacity)?;
    let in_place = std::ptr::eq(input_ptr, out.as_ptr());
    let (prefix, rest) = out.split_at_mut(PREFIX);
    let (blob, padding) = rest.split_at_mut(new_len);
    opt.save_state(&mut &mut blob[..])
        .map_err(|e| Error::invalid(format!("writing the state failed: {e}")))?;
    let token = memo::keep(opt, blob);
    prefix[..8].copy_from_slice(&(new_len as u64).to_le_bytes());
    prefix[8..].copy_from_slice(&token.to_le_bytes());
    // Padding is zero. When the result is the argument's memory only the old blob's tail can
    // be non-zero; otherwise the whole padding is written.
    let dirty = if in_place {
        old_len.saturating_sub(new_len)
    } else {
        padding.len()
    };
    padding[..dirty].fill(0);
    Ok(())
}

fn probes_typed<T: Keep + Element>(f: &Frame<'_>) -> Result<()> {
    let (token, blob) = split_state(f.arg::<u8>(0, "state", None)?)?;
    let mut opt = match memo::take::<T>(token, blob) {
        Some(kept) => kept,
        None => CpuOptimizer::<T>::from_state(blob)?,
    };
    // The probes result aliases no argument: the rows go straight into it. Non-finite grads
    // give zero probes; the step call then skips the step.
    let written = f
        .arg::<T>(1, "grads", Some(opt.ndim()))
        .and_then(|grads| match opt.begin(grads) {
            Err(e) if e.status == Status::LRE_ERR_NUMERICAL => Ok(0),
            other => other,
        })
        .and_then(|count| write_probes(f, &opt, count));
    // Beginning and cancelling changes nothing, so the optimizer still is this blob's: the step
    // call that absorbs the products finds it.
    opt.cancel();
    memo::put_back(token, opt, blob);
    written
}

/// Writes the begun step's `count` probes into the probes result (P × n), zero rows after them.
fn write_probes<T: Keep + Element>(
    f: &Frame<'_>,
    opt: &CpuOptimizer<T>,
    count: usize,
) -> Result<()> {
    let n = opt.ndim();
    let out_len = f.result_len(0, "probes")?;
    if out_len % n != 0 || out_len / n < count {
        return Err(Error::invalid(format!(
            "probes holds {out_len} elements; this step needs {count} rows of {n}"
        )));
    }
    let out = f.result::<T>(0, "probes", out_len)?;
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        match i < count {
            true => row.copy_from_slice(opt.probe(i)?),
            false => row.fill(T::default()),
        }
    }
    Ok(())
}

/// The learning rate: a float32 or float64 scalar (float32 when JAX runs without x64).
fn learning_rate(f: &Frame<'_>) -> Result<f64> {
    match f.arg_dtype(3, "learning_rate")? {
        c_api::DTYPE_F32 => Ok(f64::from(f.arg::<f32>(3, "learning_rate", Some(1))?[0])),
        c_api::DTYPE_F64 => Ok(f.arg::<f64>(3, "learning_rate", Some(1))?[0]),
        other => Err(wrong_float("learning_rate", other)),
    }
}

/// The first `count` rows of the `hvps` argument (P × n, P ≥ count).
fn hvp_rows<'f, T: Scalar + Element>(
    f: &Frame<'f>,
    n: usize,
    count: usize,
) -> Result<Vec<&'f [T]>> {
    let hvps = f.arg::<T>(4, "hvps", None)?;
    if n == 0 || hvps.len() % n != 0 || hvps.len() / n < count {
        return Err(Error::invalid(format!(
            "hvps holds {} elements; this step needs {count} rows of {n}",
            hvps.len()
        )));
    }
    Ok(hvps.chunks_exact(n).take(count).collect())
}

/// The token and the blob of a state buffer.
fn split_state(buffer: &[u8]) -> Result<(u64, &[u8])> {
    let corrupt = |what: String| Error::new(Status::LRE_ERR_STATE, what);
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(buffer.get(at..at + 8)?.try_into().ok()?))
    };
    let (Some(len), Some(token)) = (word(0), word(8)) else {
        return Err(corrupt(format!(
            "the state buffer holds {} bytes, fewer than its {PREFIX}-byte prefix",
            buffer.len()
        )));
    };
    let blob = usize::try_from(len)
        .ok()
        .and_then(|len| buffer.get(PREFIX..PREFIX.checked_add(len)?))
        .ok_or_else(|| {
            corrupt(format!(
                "the state buffer says its blob has {len} bytes but holds {}",
                buffer.len()
            ))
        })?;
    Ok((token, blob))
}
