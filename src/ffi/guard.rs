//! The panic guard and the thread-local last error.

use crate::error::{Error, Result, Status};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error (interior NUL bytes are replaced).
pub fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Pointer to this thread's last error message ("" if none). Valid until the next failing
/// `lre_` call on this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The one place panics are caught: runs `body` and turns a panic into an `LRE_ERR_PANIC`
/// error. Every export (C functions, XLA handlers) goes through it, so nothing unwinds into
/// foreign code.
pub fn catching<T>(body: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(Error::new(
            Status::LRE_ERR_PANIC,
            format!("internal error (please report): {what}"),
        ))
    })
}

/// Runs an export's body: `Ok` → `LRE_OK`; `Err` (a panic included) → its status, message
/// recorded as this thread's last error.
pub fn guard(body: impl FnOnce() -> Result<()>) -> Status {
    match catching(body) {
        Ok(()) => Status::LRE_OK,
        Err(Error { status, message }) => {
            set_last_error(&message);
            status
        }
    }
}

/// Runs an infallible export that returns a value; a panic yields `fallback`.
pub fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catching(|| Ok(body())).unwrap_or(fallback)
}

/// A static C string for a string literal with a trailing NUL.
pub fn static_cstr(text: &'static [u8]) -> *const c_char {
    CStr::from_bytes_with_nul(text).map_or(c"".as_ptr(), CStr::as_ptr)
}
