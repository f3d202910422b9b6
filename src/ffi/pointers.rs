//! Checked conversions of C arguments. Each takes the argument's name so the message can say
//! which one was wrong.

use super::handle::{Claim, LreOptimizer};
use crate::error::{Error, Result, Status};
use std::ffi::{CStr, c_char};

fn null(name: &str) -> Error {
    Error::new(Status::LRE_ERR_NULL_POINTER, format!("`{name}` is NULL"))
}

fn check_aligned<T>(p: *const T, name: &str) -> Result<()> {
    if p.align_offset(std::mem::align_of::<T>()) != 0 {
        return Err(Error::invalid(format!(
            "`{name}` is not aligned to {} bytes",
            std::mem::align_of::<T>()
        )));
    }
    Ok(())
}

/// Claims the optimizer `p` points to for one call (`LRE_ERR_BUSY` while another call holds it).
///
/// # Safety
/// `p` is NULL or points to a live optimizer created by `lre_optimizer_new` or
/// `lre_optimizer_from_state` and not freed during the returned claim.
pub(crate) unsafe fn optimizer<'a>(p: *const LreOptimizer, name: &str) -> Result<Claim<'a>> {
    // SAFETY: non-NULL is checked by `as_ref`; liveness is the caller's contract, and the claim
    // keeps overlapping calls out.
    unsafe { p.as_ref() }.ok_or_else(|| null(name))?.claim()
}

/// A NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid during the borrow.
pub unsafe fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL checked above; NUL termination is the caller's contract.
    let raw = unsafe { CStr::from_ptr(p) };
    raw.to_str()
        .map_err(|_| Error::invalid(format!("`{name}` is not valid UTF-8")))
}

/// A spec string where NULL means "" (the default configuration).
///
/// # Safety
/// As [`text`].
pub unsafe fn optional_text<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Ok("");
    }
    // SAFETY: forwarded contract.
    unsafe { text(p, name) }
}

/// An array of `len` elements to read.
///
/// # Safety
/// `p` is NULL or points to `len` initialized elements valid for reads during the borrow and not
/// written through any other pointer meanwhile.
pub unsafe fn slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if p.is_null() {
        return Err(null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL and aligned checked above; extent and validity are the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An array of `len` elements to read and write.
///
/// # Safety
/// `p` is NULL or points to `len` initialized elements valid for reads and writes during the
/// borrow and not accessed through any other pointer meanwhile.
pub unsafe fn slice_mut<'a, T>(p: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    if p.is_null() {
        return Err(null(name));
    }
    check_aligned(p, name)?;
    // SAFETY: non-NULL and aligned checked above; extent and exclusivity are the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// Fails unless the two arrays are disjoint (a mutable one may not alias another).
pub fn check_disjoint<T, U>(
    a: *const T,
    a_len: usize,
    a_name: &str,
    b: *const U,
    b_len: usize,
    b_name: &str,
) -> Result<()> {
    let (a0, a1) = (a as usize, a as usize + a_len * std::mem::size_of::<T>());
    let (b0, b1) = (b as usize, b as usize + b_len * std::mem::size_of::<U>());
    if a0 < b1 && b0 < a1 {
        return Err(Error::invalid(format!(
            "`{a_name}` and `{b_name}` overlap; pass separate arrays"
        )));
    }
    Ok(())
}

/// Checks an out-pointer before any work is done.
pub fn out<T>(p: *mut T, name: &str) -> Result<*mut T> {
    if p.is_null() {
        return Err(null(name));
    }
    check_aligned(p, name)?;
    Ok(p)
}

/// Writes a result through an out-pointer checked by [`out`].
///
/// # Safety
/// `p` came from [`out`] and is valid for a write of `T`.
pub unsafe fn write<T>(p: *mut T, value: T) {
    // SAFETY: non-NULL and aligned (checked by `out`); validity is the caller's contract.
    unsafe { p.write(value) }
}
