//! Status codes and the error type every layer returns.
//!
//! `Status` is the C enum `lre_status` itself: its discriminants are part of the ABI, so codes are
//! only ever appended and never renumbered or reused.

use std::fmt;

/// Result of every fallible `lre_` call. `LRE_OK` is 0; the others say which kind of failure
/// happened, and `lre_last_error_message()` says what exactly was wrong.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    LRE_OK = 0,
    /// A required pointer argument was NULL.
    LRE_ERR_NULL_POINTER = 1,
    /// An argument had a wrong value or size, or the wrong dtype entry point was called.
    LRE_ERR_INVALID_ARGUMENT = 2,
    /// The spec string could not be parsed, or named an unknown component or key.
    LRE_ERR_SPEC = 3,
    /// The configuration is valid but not implemented (yet) in this build.
    LRE_ERR_UNSUPPORTED = 4,
    /// A user callback returned non-zero.
    LRE_ERR_CALLBACK = 5,
    /// Non-finite input (NaN or Inf in a gradient or HVP) or an unrecoverable numerical failure.
    LRE_ERR_NUMERICAL = 6,
    /// A saved state could not be read, or does not match this optimizer.
    LRE_ERR_STATE = 7,
    /// A file could not be read or written.
    LRE_ERR_IO = 8,
    /// The requested device is not available.
    LRE_ERR_DEVICE = 9,
    /// An output buffer is too small; the message gives the size needed.
    LRE_ERR_BUFFER_TOO_SMALL = 10,
    /// A call came in the wrong order (e.g. configuring the chain after the first step).
    LRE_ERR_CALL_ORDER = 11,
    /// Memory for the optimizer's buffers could not be allocated.
    LRE_ERR_OUT_OF_MEMORY = 12,
    /// A Rust panic was caught at the C boundary (a bug in LRE; please report it).
    LRE_ERR_PANIC = 13,
    /// The optimizer is in use by another call: two threads used one handle at once, or an HVP
    /// callback called into the optimizer whose step called it. The refused call changed nothing.
    LRE_ERR_BUSY = 14,
    // Last added: LRE_ERR_BUSY = 14. New codes go below with the next number.
}

impl Status {
    /// Every status, in code order (tests sweep it; bindings mirror it).
    pub const ALL: [Status; 15] = [
        Status::LRE_OK,
        Status::LRE_ERR_NULL_POINTER,
        Status::LRE_ERR_INVALID_ARGUMENT,
        Status::LRE_ERR_SPEC,
        Status::LRE_ERR_UNSUPPORTED,
        Status::LRE_ERR_CALLBACK,
        Status::LRE_ERR_NUMERICAL,
        Status::LRE_ERR_STATE,
        Status::LRE_ERR_IO,
        Status::LRE_ERR_DEVICE,
        Status::LRE_ERR_BUFFER_TOO_SMALL,
        Status::LRE_ERR_CALL_ORDER,
        Status::LRE_ERR_OUT_OF_MEMORY,
        Status::LRE_ERR_PANIC,
        Status::LRE_ERR_BUSY,
    ];

    /// A static one-line description.
    pub fn description(self) -> &'static str {
        let text = self.description_with_nul();
        &text[..text.len() - 1]
    }

    /// The description with a trailing NUL, as `lre_status_string` returns it.
    pub fn description_with_nul(self) -> &'static str {
        match self {
            Status::LRE_OK => "success\0",
            Status::LRE_ERR_NULL_POINTER => "a required pointer argument was NULL\0",
            Status::LRE_ERR_INVALID_ARGUMENT => "invalid argument\0",
            Status::LRE_ERR_SPEC => "invalid spec string\0",
            Status::LRE_ERR_UNSUPPORTED => "not supported by this build\0",
            Status::LRE_ERR_CALLBACK => "a user callback reported failure\0",
            Status::LRE_ERR_NUMERICAL => "non-finite input or numerical failure\0",
            Status::LRE_ERR_STATE => "invalid or mismatching optimizer state\0",
            Status::LRE_ERR_IO => "file input/output failed\0",
            Status::LRE_ERR_DEVICE => "device not available\0",
            Status::LRE_ERR_BUFFER_TOO_SMALL => "output buffer too small\0",
            Status::LRE_ERR_CALL_ORDER => "call made in the wrong order\0",
            Status::LRE_ERR_OUT_OF_MEMORY => "out of memory\0",
            Status::LRE_ERR_PANIC => "internal error (caught panic)\0",
            Status::LRE_ERR_BUSY => "optimizer in use by another call\0",
        }
    }
}

/// An error: a status for programs and a sentence for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub status: Status,
    pub message: String,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }
    pub fn spec(message: impl Into<String>) -> Self {
        Error::new(Status::LRE_ERR_SPEC, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Status::LRE_ERR_INVALID_ARGUMENT, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(Status::LRE_ERR_UNSUPPORTED, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.description(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
