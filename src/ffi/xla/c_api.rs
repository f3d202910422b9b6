//! Mirrors of the parts of XLA's FFI C API (`xla/ffi/api/c_api.h`, API version 0.3, Apache-2.0)
//! that the handlers touch. tests/python.rs compiles a C file against the header
//! shipped by the installed jaxlib and compares every size and offset with these.

use std::ffi::{c_char, c_void};

/// The C API version these mirrors follow; reported to XLA in the metadata probe.
pub const API_MAJOR: i32 = 0;
pub const API_MINOR: i32 = 3;

/// `XLA_FFI_Extension_Type`: the metadata probe's extension.
pub const EXTENSION_METADATA: i32 = 1;
/// `XLA_FFI_ExecutionStage_EXECUTE`.
pub const STAGE_EXECUTE: i32 = 3;
/// `XLA_FFI_ArgType_BUFFER` / `XLA_FFI_RetType_BUFFER`.
pub const BUFFER: i32 = 1;

/// `XLA_FFI_DataType` values the handlers accept.
pub const DTYPE_S32: i32 = 4;
pub const DTYPE_U8: i32 = 6;
pub const DTYPE_F32: i32 = 11;
pub const DTYPE_F64: i32 = 12;

/// `XLA_FFI_Error_Code` values the handlers return.
pub const ERROR_INVALID_ARGUMENT: i32 = 3;
pub const ERROR_FAILED_PRECONDITION: i32 = 9;
pub const ERROR_UNIMPLEMENTED: i32 = 12;
pub const ERROR_INTERNAL: i32 = 13;

/// Opaque `XLA_FFI_Error` (owned by XLA once returned).
#[repr(C)]
pub struct XlaError {
    _private: [u8; 0],
}

#[repr(C)]
pub struct ExtensionBase {
    pub struct_size: usize,
    pub kind: i32,
    pub next: *mut ExtensionBase,
}

#[repr(C)]
pub struct ApiVersion {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub major_version: i32,
    pub minor_version: i32,
}

#[repr(C)]
pub struct ErrorCreateArgs {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub message: *const c_char,
    pub errc: i32,
}

#[repr(C)]
pub struct Buffer {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub dtype: i32,
    pub data: *mut c_void,
    pub rank: i64,
    pub dims: *mut i64,
}

/// `XLA_FFI_Args` and `XLA_FFI_Rets` (same layout).
#[repr(C)]
pub struct Operands {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub size: i64,
    pub types: *mut i32,
    pub items: *mut *mut c_void,
}

#[repr(C)]
pub struct Attrs {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub size: i64,
    pub types: *mut i32,
    pub names: *mut *mut c_void,
    pub attrs: *mut *mut c_void,
}

#[repr(C)]
pub struct CallFrame {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub api: *const Api,
    pub ctx: *mut c_void,
    pub stage: i32,
    pub args: Operands,
    pub rets: Operands,
    pub attrs: Attrs,
    pub future: *mut c_void,
}

#[repr(C)]
pub struct Metadata {
    pub struct_size: usize,
    pub api_version: ApiVersion,
    pub traits: u32,
    pub state_type_id: i64,
}

#[repr(C)]
pub struct MetadataExtension {
    pub extension_base: ExtensionBase,
    pub metadata: *mut Metadata,
}

/// `XLA_FFI_Stream_Get_Args`: XLA's stream for the call (a `CUstream` on CUDA).
#[repr(C)]
pub struct StreamGetArgs {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub ctx: *mut c_void,
    pub stream: *mut c_void,
}

/// `XLA_FFI_DeviceOrdinal_Get_Args`: the device the call runs on.
#[repr(C)]
pub struct DeviceOrdinalGetArgs {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub ctx: *mut c_void,
    pub device_ordinal: i32,
}

type Service<A> = Option<unsafe extern "C" fn(*mut A) -> *mut XlaError>;

/// `XLA_FFI_Api`: the functions the handlers call are typed, the others are opaque pointers
/// that keep the layout.
#[repr(C)]
pub struct Api {
    pub struct_size: usize,
    pub extension_start: *mut ExtensionBase,
    pub api_version: ApiVersion,
    pub internal_api: *const c_void,
    pub error_create: Service<ErrorCreateArgs>,
    pub error_get_message: *const c_void,
    pub error_destroy: *const c_void,
    pub handler_register: *const c_void,
    pub stream_get: Service<StreamGetArgs>,
    pub type_register: *const c_void,
    pub execution_context_get: *const c_void,
    pub state_set: *const c_void,
    pub state_get: *const c_void,
    pub device_memory_allocate: *const c_void,
    pub device_memory_free: *const c_void,
    pub thread_pool_schedule: *const c_void,
    pub thread_pool_num_threads: *const c_void,
    pub future_create: *const c_void,
    pub future_set_available: *const c_void,
    pub future_set_error: *const c_void,
    pub run_id_get: *const c_void,
    pub device_ordinal_get: Service<DeviceOrdinalGetArgs>,
}
