//! The XLA FFI handlers behind `lre.jax`, exported from liblre. They are pure: the optimizer's
//! whole state comes in as arguments and goes out as results aliased to them (in place when
//! the caller donates it); nothing is kept in the library between calls.
//!
//! The state is the small state of docs/state-format.md in a uint8 buffer (its byte count as a
//! u64, little-endian, the state, then zeros up to the buffer's fixed capacity, which lre.jax
//! sizes with `lre_optimizer_small_state_bound`), followed by one array per n-sized buffer of
//! the optimizer's layout (`lre_optimizer_state_layout`, `LRE_BUFFER_VECTORS`, in order): the
//! optimizer steps those arrays in place, so a step copies no n-sized state.
//!
//! * `lre_xla_step(state, arrays…, grads, params, learning_rate[, hvps]) -> (state', arrays'…,
//!   updates, skipped)`: one step; `updates` = new params − params. With `hvps` (P × n, P ≥ the
//!   step's probe count) the step is the split step's second phase. A non-finite gradient or
//!   HVP skips the step instead of failing (a failed call would lose a donated state): state
//!   and arrays unchanged, zero updates and `skipped` (an int32 scalar) = 1.
//! * `lre_xla_probes(state, arrays…, grads) -> (state', arrays'…, probes (P × n))`: the split
//!   step's first phase — the vectors whose Hessian products `lre_xla_step` needs, zero rows
//!   beyond the step's count. State and arrays come back unchanged (aliased, so not copied).

use super::c_api::{self, CallFrame, XlaError};
use super::frame::{Call, Element, Frame, classify};
use crate::backend::Scalar;
use crate::error::{Error, Result, Status};
use crate::ffi::guard::catching;
use crate::optimizer::LentOptimizer;

/// Bytes before the small state in the state buffer: its length.
pub const PREFIX: usize = 8;

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

/// Answers the metadata probe and non-execute stages; runs `body` on execution, turning errors
/// and panics into XLA errors whose message starts with our status name.
///
/// # Safety
/// `frame` is a valid call frame.
pub(super) unsafe fn run(
    frame: *mut CallFrame,
    body: fn(&Frame<'_>) -> Result<()>,
) -> *mut XlaError {
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

/// The parameters' dtype is that of `updates`, the second-to-last result (the results before
/// it are the state's).
fn step(f: &Frame<'_>) -> Result<()> {
    let updates = f.num_results().saturating_sub(2);
    match f.result_dtype(updates, "updates")? {
        c_api::DTYPE_F32 => step_typed::<f32>(f),
        c_api::DTYPE_F64 => step_typed::<f64>(f),
        other => Err(wrong_float("updates", other)),
    }
}

/// The parameters' dtype is that of `probes`, the last result.
fn probes(f: &Frame<'_>) -> Result<()> {
    let probes = f.num_results().saturating_sub(1);
    match f.result_dtype(probes, "probes")? {
        c_api::DTYPE_F32 => probes_typed::<f32>(f),
        c_api::DTYPE_F64 => probes_typed::<f64>(f),
        other => Err(wrong_float("probes", other)),
    }
}

pub(super) fn wrong_float(name: &str, code: i32) -> Error {
    Error::invalid(format!(
        "{name} must be float32 or float64, got XLA dtype code {code}"
    ))
}

/// The optimizer of the call's state: the small state (argument 0) and the n-sized arrays
/// (arguments 1..=L), lent as the matching results, which alias them (XLA hands the same memory
/// when the state is donated; when it does not, the argument is copied to the result once here
/// and the result is stepped). The optimizer must be dropped before the handler returns.
pub(super) fn lent_optimizer<T: Scalar + Element>(
    f: &Frame<'_>,
) -> Result<(LentOptimizer<T>, usize)> {
    let small = small_state(f.arg::<u8>(0, "state", None)?)?;
    let names = LentOptimizer::<T>::lent_names(small)?;
    let mut lent = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let output = result_from_arg::<T>(f, 1 + i, name)?;
        // SAFETY: the result buffer is valid and exclusively ours for the whole call; the
        // optimizer holding this slice is dropped before the handler returns (callers keep it
        // a local), so no reference outlives the call.
        lent.push(unsafe { for_this_call(bytemuck::cast_slice_mut::<T, u8>(output)) });
    }
    Ok((LentOptimizer::<T>::from_lent(small, lent)?, names.len()))
}

/// Result `i`, holding argument `i`: the same memory when XLA aliases them (always, for a
/// donated state), else a copy made here.
fn result_from_arg<'f, T: Element>(f: &Frame<'f>, i: usize, name: &str) -> Result<&'f mut [T]> {
    let len = f.result_len(i, name)?;
    let input = f.arg::<T>(i, name, Some(len))?.as_ptr();
    let output = f.result::<T>(i, name, len)?;
    if !std::ptr::eq(input, output.as_ptr()) {
        // Distinct memory: the argument slice does not alias the result.
        output.copy_from_slice(f.arg::<T>(i, name, Some(len))?);
    }
    Ok(output)
}

/// A slice of the current call's memory, usable as lent optimizer state.
///
/// # Safety
/// The returned slice must not be used after the handler returns.
unsafe fn for_this_call(slice: &mut [u8]) -> &'static mut [u8] {
    // SAFETY: the caller's contract: the slice is dropped before the memory's call returns.
    unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr(), slice.len()) }
}

fn step_typed<T: Scalar + Element>(f: &Frame<'_>) -> Result<()> {
    let capacity = f.result_len(0, "state")?;
    let (mut opt, lent) = lent_optimizer::<T>(f)?;
    let (grads, params) = step_inputs(f, &mut opt, lent, capacity)?;
    let mut x = params.to_vec();
    let stepped = if f.num_args() > 4 + lent {
        opt.begin(grads).and_then(|count| {
            let rows = hvp_rows::<T>(f, 4 + lent, opt.ndim(), count)?;
            opt.finish(&mut x, &rows)
        })
    } else {
        opt.step(&mut x, grads)
    };
    conclude(f, opt, stepped, &x, params, lent, capacity)
}

/// The step's grads and params (arguments after the lent arrays), with the learning rate set
/// and the state buffer checked to hold this optimizer's small state.
pub(super) fn step_inputs<'f, T: Scalar + Element>(
    f: &Frame<'f>,
    opt: &mut LentOptimizer<T>,
    lent: usize,
    capacity: usize,
) -> Result<(&'f [T], &'f [T])> {
    let n = opt.ndim();
    let grads = f.arg::<T>(1 + lent, "grads", Some(n))?;
    let params = f.arg::<T>(2 + lent, "params", Some(n))?;
    opt.set_lr(learning_rate(f, 3 + lent)?)?;
    check_capacity(opt.small_bound()?, capacity)?;
    Ok((grads, params))
}

/// Writes a step's results: the stepped state and `x − params` as the updates, or, for a step
/// refused as non-finite, the unchanged state, zero updates and `skipped` = 1.
pub(super) fn conclude<T: Scalar + Element>(
    f: &Frame<'_>,
    opt: LentOptimizer<T>,
    stepped: Result<()>,
    x: &[T],
    params: &[T],
    lent: usize,
    capacity: usize,
) -> Result<()> {
    let updates = f.result::<T>(1 + lent, "updates", opt.ndim())?;
    let skipped = match stepped {
        Ok(()) => {
            let small = opt.small_state();
            drop(opt);
            write_small(f, &small, capacity)?;
            for ((u, a), b) in updates.iter_mut().zip(x).zip(params) {
                *u = T::from_f64(a.to_f64() - b.to_f64());
            }
            false
        }
        // Raising would lose a donated state: the step is skipped and counted instead. A
        // refused step changed nothing, so the state result is the state argument.
        Err(e) if e.status == Status::LRE_ERR_NUMERICAL => {
            drop(opt);
            unchanged(f, updates)?;
            true
        }
        Err(e) => return Err(e),
    };
    f.result::<i32>(2 + lent, "skipped", 1)?[0] = i32::from(skipped);
    Ok(())
}

/// Fails unless a state buffer of `capacity` bytes holds every small state up to `bound` bytes.
pub(super) fn check_capacity(bound: usize, capacity: usize) -> Result<()> {
    if PREFIX + bound > capacity {
        return Err(Error::new(
            Status::LRE_ERR_BUFFER_TOO_SMALL,
            format!(
                "the state buffer holds {capacity} bytes; this optimizer's small state needs up \
                 to {}: create the state with a larger state_capacity",
                PREFIX + bound
            ),
        ));
    }
    Ok(())
}

/// The results of a step that changed nothing: the state argument and zero updates.
pub(super) fn unchanged<T: Element + Default>(f: &Frame<'_>, updates: &mut [T]) -> Result<()> {
    result_from_arg::<u8>(f, 0, "state")?;
    updates.fill(T::default());
    Ok(())
}

/// Writes the small state into the state result.
fn write_small(f: &Frame<'_>, small: &[u8], capacity: usize) -> Result<()> {
    frame_small(small, f.result::<u8>(0, "state", capacity)?);
    Ok(())
}

/// A state buffer's content (`out`, at least PREFIX + small.len() bytes): the small state's
/// length, the state, zeros after it.
pub(super) fn frame_small(small: &[u8], out: &mut [u8]) {
    let (prefix, rest) = out.split_at_mut(PREFIX);
    prefix.copy_from_slice(&(small.len() as u64).to_le_bytes());
    let (body, padding) = rest.split_at_mut(small.len());
    body.copy_from_slice(small);
    padding.fill(0);
}

fn probes_typed<T: Scalar + Element>(f: &Frame<'_>) -> Result<()> {
    let (mut opt, lent) = lent_optimizer::<T>(f)?;
    // The probes result follows the lent buffers; it aliases no argument. Non-finite grads
    // give zero probes; the step call then skips the step. Beginning and cancelling changes
    // nothing.
    let written = f
        .arg::<T>(1 + lent, "grads", Some(opt.ndim()))
        .and_then(|grads| match opt.begin(grads) {
            Err(e) if e.status == Status::LRE_ERR_NUMERICAL => Ok(0),
            other => other,
        })
        .and_then(|count| write_probes(f, 1 + lent, &opt, count));
    opt.cancel();
    drop(opt);
    result_from_arg::<u8>(f, 0, "state")?;
    written
}

/// Writes the begun step's `count` probes into result `at` (P × n), zero rows after them.
fn write_probes<T: Scalar + Element>(
    f: &Frame<'_>,
    at: usize,
    opt: &LentOptimizer<T>,
    count: usize,
) -> Result<()> {
    let n = opt.ndim();
    let out_len = f.result_len(at, "probes")?;
    check_rows("probes", out_len, n, count)?;
    let out = f.result::<T>(at, "probes", out_len)?;
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        match i < count {
            true => row.copy_from_slice(opt.probe(i)?),
            false => row.fill(T::default()),
        }
    }
    Ok(())
}

/// The learning rate (argument `at`): a float32 or float64 scalar (float32 when JAX runs
/// without x64).
fn learning_rate(f: &Frame<'_>, at: usize) -> Result<f64> {
    match f.arg_dtype(at, "learning_rate")? {
        c_api::DTYPE_F32 => Ok(f64::from(f.arg::<f32>(at, "learning_rate", Some(1))?[0])),
        c_api::DTYPE_F64 => Ok(f.arg::<f64>(at, "learning_rate", Some(1))?[0]),
        other => Err(wrong_float("learning_rate", other)),
    }
}

/// The first `count` rows of the `hvps` argument (argument `at`, P × n, P ≥ count).
fn hvp_rows<'f, T: Scalar + Element>(
    f: &Frame<'f>,
    at: usize,
    n: usize,
    count: usize,
) -> Result<Vec<&'f [T]>> {
    let hvps = f.arg::<T>(at, "hvps", None)?;
    check_rows("hvps", hvps.len(), n, count)?;
    Ok(hvps.chunks_exact(n).take(count).collect())
}

/// Fails unless `len` elements are whole rows of n, at least `count` of them.
pub(super) fn check_rows(name: &str, len: usize, n: usize, count: usize) -> Result<()> {
    if n == 0 || !len.is_multiple_of(n) || len / n < count {
        return Err(Error::invalid(format!(
            "{name} holds {len} elements; this step needs {count} rows of {n}"
        )));
    }
    Ok(())
}

/// The small state inside a state buffer (its length, then the state).
pub(super) fn small_state(buffer: &[u8]) -> Result<&[u8]> {
    let corrupt = |what: String| Error::new(Status::LRE_ERR_STATE, what);
    let Some(len) = buffer
        .get(..PREFIX)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    else {
        return Err(corrupt(format!(
            "the state buffer holds {} bytes, fewer than its {PREFIX}-byte prefix",
            buffer.len()
        )));
    };
    usize::try_from(len)
        .ok()
        .and_then(|len| buffer.get(PREFIX..PREFIX.checked_add(len)?))
        .ok_or_else(|| {
            corrupt(format!(
                "the state buffer says its state has {len} bytes but holds {}",
                buffer.len()
            ))
        })
}
