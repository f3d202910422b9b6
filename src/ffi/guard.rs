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

/// Runs an export's body: `Ok` → `LRE_OK`; `Err` → its status, message recorded; a panic →
/// `LRE_ERR_PANIC`, message recorded. Nothing unwinds into C.
pub fn guard(body: impl FnOnce() -> Result<()>) -> Status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::LRE_OK,
        Ok(Err(Error { status, message })) => {
            set_last_error(&message);
            status
        }
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            Status::LRE_ERR_PANIC
        }
    }
}

/// The message for a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("internal error (please report): {what}")
}

/// Runs an infallible export that returns a value; a panic yields `fallback`.
pub fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A static C string for a string literal with a trailing NUL.
pub fn static_cstr(text: &'static [u8]) -> *const c_char {
    CStr::from_bytes_with_nul(text).map_or(c"".as_ptr(), CStr::as_ptr)
}
