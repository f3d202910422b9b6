//! Stepping in caller memory (docs/state-format.md, small states): the optimizer's n-sized
//! buffers are arrays the caller owns, and the rest of its state is a small byte buffer the
//! caller also owns. The arrays are lent for one call: the optimizer that uses them is a local of
//! that call, dropped before it returns (also when it fails or unwinds), so no pointer to them
//! outlives the call. The buffers are the layout's `LRE_BUFFER_VECTORS` entries
//! (`lre_optimizer_state_layout`), in that order, each of exactly its `bytes`.

use super::guard::guard;
use super::handle::{LreOptimizer, with_host_optimizer};
use super::pointers::{self, check_disjoint, optimizer, out};
use super::step::{Hvp, HvpF32, HvpF64, host_step};
use crate::backend::Scalar;
use crate::elem::Dtype;
use crate::error::{Error, Result, Status};
use crate::optimizer::{CpuOptimizer, LentOptimizer};
use crate::state::header_dtype;
use std::ffi::c_void;

/// The caller's arrays as slices lent until the end of the current call, checked to be
/// pairwise disjoint and disjoint from `others` (the call's other arrays).
///
/// # Safety
/// `buffers` and `sizes` are NULL or arrays of `count` elements; each `buffers[i]` is NULL (when
/// `sizes[i]` is 0) or valid for reads and writes of `sizes[i]` bytes for the whole call and not
/// accessed otherwise meanwhile. The slices must not outlive the call.
unsafe fn lent_memory(
    buffers: *const *mut c_void,
    sizes: *const usize,
    count: usize,
    others: &[(*const u8, usize, &str)],
) -> Result<Vec<&'static mut [u8]>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: caller contract (arrays of `count` elements).
    let (pointers_in, sizes) = unsafe {
        (
            pointers::slice(buffers, count, "buffers")?,
            pointers::slice(sizes, count, "sizes")?,
        )
    };
    for (i, (&p, &len)) in pointers_in.iter().zip(sizes).enumerate() {
        for &(q, q_len, name) in others {
            check_disjoint(
                p as *const u8,
                len,
                &format!("buffers[{i}]"),
                q,
                q_len,
                name,
            )?;
        }
        for (j, (&q, &q_len)) in pointers_in.iter().zip(sizes).enumerate().take(i) {
            check_disjoint(
                p as *const u8,
                len,
                &format!("buffers[{i}]"),
                q as *const u8,
                q_len,
                &format!("buffers[{j}]"),
            )?;
        }
    }
    pointers_in
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (&p, &len))| {
            if len == 0 {
                return Ok(<&mut [u8]>::default());
            }
            // SAFETY: caller contract: valid for `len` bytes for the whole call and accessed
            // only through this slice (disjoint from the others, checked above). The slice is
            // given to an optimizer that is dropped before the call returns.
            unsafe { pointers::slice_mut(p as *mut u8, len, &format!("buffers[{i}]")) }
        })
        .collect()
}

/// Copies `bytes` to the caller's buffer (`cap` bytes) and writes the length.
///
/// # Safety
/// `dst` is NULL or valid for `cap` bytes; `len` was checked by `out`.
unsafe fn copy_to(bytes: &[u8], dst: *mut u8, cap: usize, len: *mut usize) -> Result<()> {
    if !dst.is_null() {
        if cap < bytes.len() {
            return Err(Error::new(
                Status::LRE_ERR_BUFFER_TOO_SMALL,
                format!("the buffer holds {cap} bytes; {} are needed", bytes.len()),
            ));
        }
        // SAFETY: caller contract; `cap` >= the length (checked).
        unsafe { pointers::slice_mut(dst, bytes.len(), "buf") }?.copy_from_slice(bytes);
    }
    // SAFETY: `len` was checked by `out`.
    unsafe { pointers::write(len, bytes.len()) };
    Ok(())
}

/// The most bytes of a small state of this optimizer (`lre_optimizer_lend`, the lent steps).
///
/// # Safety
/// `opt` is a live optimizer; `bytes` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_small_state_bound(
    opt: *const LreOptimizer,
    bytes: *mut usize,
) -> Status {
    guard(|| {
        let bytes = out(bytes, "bytes")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        let bound =
            with_host_optimizer!(&*opt, o => o.lent_buffers().and_then(|_| o.small_bound()))?;
        // SAFETY: `bytes` was checked by `out`.
        unsafe { pointers::write(bytes, bound) };
        Ok(())
    })
}

/// Moves the optimizer's state out to caller memory: its n-sized buffers into `buffers`
/// (zero-filled first; `count` arrays of `sizes[i]` bytes, the layout's `LRE_BUFFER_VECTORS`
/// entries in order), the rest as a small state into `small` (`cap` bytes, at least
/// `lre_optimizer_small_state_bound`); `*len` receives its length. The optimizer is unchanged.
/// Wrong sizes or count are `LRE_ERR_INVALID_ARGUMENT` naming the buffer; configurations whose
/// state follows the batch size are `LRE_ERR_UNSUPPORTED`. On error nothing is written.
///
/// # Safety
/// `opt` is a live optimizer; `buffers`/`sizes` as for `lre_lent_step_f32`; `small` is valid for
/// `cap` bytes and disjoint from the buffers; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_lend(
    opt: *const LreOptimizer,
    buffers: *const *mut c_void,
    sizes: *const usize,
    count: usize,
    small: *mut u8,
    cap: usize,
    len: *mut usize,
) -> Status {
    guard(|| {
        let len = out(len, "len")?;
        out(small, "small")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: forwarded caller contract; the slices live in this call only.
        let lent = unsafe { lent_memory(buffers, sizes, count, &[(small, cap, "small")]) }?;
        let state = with_host_optimizer!(&*opt, o => lend(o, lent, cap))?;
        // SAFETY: `small` is valid for `cap` bytes (caller contract).
        unsafe { copy_to(&state, small, cap, len) }
    })
}

fn lend<T: Scalar>(
    o: &CpuOptimizer<T>,
    mut lent: Vec<&'static mut [u8]>,
    cap: usize,
) -> Result<Vec<u8>> {
    let sizes: Vec<usize> = lent.iter().map(|m| m.len()).collect();
    o.check_lent(&sizes)?;
    let bound = o.small_bound()?;
    if cap < bound {
        return Err(Error::new(
            Status::LRE_ERR_BUFFER_TOO_SMALL,
            format!("the small state buffer holds {cap} bytes; it needs {bound}"),
        ));
    }
    lent.iter_mut().for_each(|m| m.fill(0));
    let lent_opt = LentOptimizer::<T>::from_lent(&o.state(), lent)?;
    Ok(lent_opt.small_state())
}

/// The complete state blob (as `lre_optimizer_state_save` writes it) of a small state and its
/// buffers, into `buf` (`cap` bytes); `*len` receives its size. With `buf == NULL` only `*len`
/// is written. The buffers are only read.
///
/// # Safety
/// `small` is valid for `small_len` bytes; `buffers`/`sizes` as for `lre_lent_step_f32`; `buf`
/// is NULL or valid for `cap` bytes, disjoint from the others; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_lent_state_save(
    small: *const u8,
    small_len: usize,
    buffers: *const *mut c_void,
    sizes: *const usize,
    count: usize,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> Status {
    guard(|| {
        let len = out(len, "len")?;
        // SAFETY: caller contract.
        let small = unsafe { pointers::slice(small, small_len, "small") }?;
        let others = [
            (small.as_ptr(), small_len, "small"),
            (buf as *const u8, cap, "buf"),
        ];
        // SAFETY: forwarded caller contract; the slices live in this call only.
        let lent = unsafe { lent_memory(buffers, sizes, count, &others) }?;
        let blob = match header_dtype(small)? {
            Dtype::F32 => LentOptimizer::<f32>::from_lent(small, lent)?.state(),
            Dtype::F64 => LentOptimizer::<f64>::from_lent(small, lent)?.state(),
        };
        // SAFETY: `buf` is NULL or valid for `cap` bytes (caller contract).
        unsafe { copy_to(&blob, buf, cap, len) }
    })
}

/// One step of an f32 optimizer kept in caller memory: the small state `small` (`small_len`
/// bytes) and the n-sized `buffers` (`count` arrays of `sizes[i]` bytes, aligned for f32) are
/// stepped with `grad`, `params` moved in place, the buffers updated in place and the new small
/// state written to `small_out` (`cap` bytes, at least `lre_optimizer_small_state_bound`; it may
/// be `small` itself), its length to `*len`. Equal, bit for bit, to `lre_optimizer_step_f32` on
/// the optimizer the state came from. `hvp`/`user` as for `lre_optimizer_step_f32`. On any
/// error params, buffers and the small state are unchanged.
///
/// # Safety
/// `small` is valid for `small_len` bytes and `small_out` for `cap` bytes (they may be the same
/// memory); `buffers` and `sizes` are arrays of `count` elements, each buffer valid for reads and
/// writes of its size and disjoint from the others, `params` and `grad`; `params` and `grad` are
/// arrays of ndim floats; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_lent_step_f32(
    small: *const u8,
    small_len: usize,
    buffers: *const *mut c_void,
    sizes: *const usize,
    count: usize,
    params: *mut f32,
    grad: *const f32,
    hvp: HvpF32,
    user: *mut c_void,
    small_out: *mut u8,
    cap: usize,
    len: *mut usize,
) -> Status {
    // SAFETY: forwarded caller contract.
    guard(|| unsafe {
        lent_step(
            (small, small_len),
            (buffers, sizes, count),
            (params, grad, hvp, user),
            (small_out, cap, len),
        )
    })
}

/// One step of an f64 optimizer kept in caller memory (see `lre_lent_step_f32`).
///
/// # Safety
/// As `lre_lent_step_f32`, with arrays of doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_lent_step_f64(
    small: *const u8,
    small_len: usize,
    buffers: *const *mut c_void,
    sizes: *const usize,
    count: usize,
    params: *mut f64,
    grad: *const f64,
    hvp: HvpF64,
    user: *mut c_void,
    small_out: *mut u8,
    cap: usize,
    len: *mut usize,
) -> Status {
    // SAFETY: forwarded caller contract.
    guard(|| unsafe {
        lent_step(
            (small, small_len),
            (buffers, sizes, count),
            (params, grad, hvp, user),
            (small_out, cap, len),
        )
    })
}

/// # Safety
/// The contract of `lre_lent_step_f32` for element type `T`.
unsafe fn lent_step<T: Scalar>(
    (small, small_len): (*const u8, usize),
    (buffers, sizes, count): (*const *mut c_void, *const usize, usize),
    (params, grad, hvp, user): (*mut T, *const T, Hvp<T>, *mut c_void),
    (small_out, cap, len): (*mut u8, usize, *mut usize),
) -> Result<()> {
    let len = out(len, "len")?;
    out(small_out, "small_out")?;
    let mut opt = {
        // SAFETY: caller contract; this borrow ends before `small_out` (maybe the same memory)
        // is written.
        let small = unsafe { pointers::slice(small, small_len, "small") }?;
        if header_dtype(small)? != T::DTYPE {
            return Err(Error::invalid(format!(
                "the small state is not for {}; call lre_lent_step_{}",
                T::DTYPE,
                header_dtype(small)?
            )));
        }
        let others = [
            (small.as_ptr(), small_len, "small"),
            (small_out as *const u8, cap, "small_out"),
        ];
        // SAFETY: forwarded caller contract; the slices live in this call only (`opt` is
        // dropped before it returns).
        let lent = unsafe { lent_memory(buffers, sizes, count, &others) }?;
        LentOptimizer::<T>::from_lent(small, lent)?
    };
    let bound = opt.small_bound()?;
    if cap < bound {
        return Err(Error::new(
            Status::LRE_ERR_BUFFER_TOO_SMALL,
            format!("small_out holds {cap} bytes; it needs {bound}"),
        ));
    }
    // SAFETY: forwarded caller contract (params, grad, hvp, user).
    unsafe { host_step(&mut opt, params, grad, hvp, user) }?;
    let state = opt.small_state();
    drop(opt);
    // SAFETY: `small_out` is valid for `cap` bytes (caller contract); `cap` >= the bound.
    unsafe { copy_to(&state, small_out, cap, len) }
}
