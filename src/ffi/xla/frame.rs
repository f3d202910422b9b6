//! A checked view of one XLA FFI call: the metadata probe, the execution stage, typed buffers and
//! errors handed back to XLA. Every raw pointer of a call frame is read here and only here.

use super::c_api::{self, Buffer, CallFrame, MetadataExtension, XlaError};
use crate::error::{Error, Result};
use std::ffi::{CString, c_void};
use std::ptr;

/// What XLA asked for.
pub enum Call<'f> {
    /// Registration asked for metadata (answered) or a stage other than execution (nothing to
    /// do): return "no error".
    Done,
    /// Run the handler on these operands.
    Execute(Frame<'f>),
}

/// The operands of an executing call.
pub struct Frame<'f> {
    raw: &'f CallFrame,
}

/// Element types a buffer can be read as.
pub trait Element: Copy {
    const DTYPE: i32;
    const NAME: &'static str;
}

impl Element for u8 {
    const DTYPE: i32 = c_api::DTYPE_U8;
    const NAME: &'static str = "uint8";
}
impl Element for i32 {
    const DTYPE: i32 = c_api::DTYPE_S32;
    const NAME: &'static str = "int32";
}
impl Element for f32 {
    const DTYPE: i32 = c_api::DTYPE_F32;
    const NAME: &'static str = "float32";
}
impl Element for f64 {
    const DTYPE: i32 = c_api::DTYPE_F64;
    const NAME: &'static str = "float64";
}

/// Classifies a call; answers the metadata probe (API version 0.3, no traits).
///
/// # Safety
/// `frame` is the call frame XLA passed to the handler, valid for the call.
pub unsafe fn classify<'f>(frame: *mut CallFrame) -> Call<'f> {
    // SAFETY: XLA passes a valid frame for the duration of the call (caller contract).
    let raw: &'f CallFrame = unsafe { &*frame };
    let ext = raw.extension_start;
    // SAFETY: a non-NULL extension_start points to an extension header.
    if !ext.is_null() && unsafe { (*ext).kind } == c_api::EXTENSION_METADATA {
        // SAFETY: an extension of type Metadata is an XLA_FFI_Metadata_Extension.
        let metadata = unsafe { (*(ext as *mut MetadataExtension)).metadata };
        if !metadata.is_null() {
            // SAFETY: XLA hands a metadata struct to fill in; we write only its fields.
            unsafe {
                (*metadata).api_version.struct_size = std::mem::size_of::<c_api::ApiVersion>();
                (*metadata).api_version.extension_start = ptr::null_mut();
                (*metadata).api_version.major_version = c_api::API_MAJOR;
                (*metadata).api_version.minor_version = c_api::API_MINOR;
                (*metadata).traits = 0;
            }
        }
        return Call::Done;
    }
    if raw.stage != c_api::STAGE_EXECUTE {
        return Call::Done;
    }
    Call::Execute(Frame { raw })
}

impl<'f> Frame<'f> {
    pub fn num_args(&self) -> usize {
        self.raw.args.size.max(0) as usize
    }

    /// Buffer `i` of `operands` after checking its kind.
    fn buffer(operands: &c_api::Operands, i: usize, what: &str) -> Result<&'f Buffer> {
        if i >= operands.size.max(0) as usize {
            return Err(Error::invalid(format!("missing {what} operand {i}")));
        }
        // SAFETY: types and items hold `size` entries (XLA's contract); i < size.
        let (kind, item) = unsafe { (*operands.types.add(i), *operands.items.add(i)) };
        if kind != c_api::BUFFER || item.is_null() {
            return Err(Error::invalid(format!(
                "{what} operand {i} is not a buffer"
            )));
        }
        // SAFETY: a BUFFER operand points to an XLA_FFI_Buffer valid for the call.
        Ok(unsafe { &*(item as *const Buffer) })
    }

    /// The element count of a buffer.
    fn shape(b: &Buffer) -> usize {
        if b.rank <= 0 || b.dims.is_null() {
            return 1;
        }
        // SAFETY: dims holds `rank` entries.
        let dims = unsafe { std::slice::from_raw_parts(b.dims, b.rank as usize) };
        dims.iter().map(|&d| d.max(0) as usize).product()
    }

    fn check<T: Element>(b: &Buffer, name: &str, len: Option<usize>) -> Result<usize> {
        if b.dtype != T::DTYPE {
            return Err(Error::invalid(format!(
                "{name} must be {} (XLA dtype code {}), got dtype code {}",
                T::NAME,
                T::DTYPE,
                b.dtype
            )));
        }
        let count = Self::shape(b);
        if let Some(want) = len.filter(|&w| w != count) {
            return Err(Error::invalid(format!(
                "{name} has {count} elements, expected {want}"
            )));
        }
        Ok(count)
    }

    /// The element type code of argument `i`.
    pub fn arg_dtype(&self, i: usize, name: &str) -> Result<i32> {
        Ok(Self::buffer(&self.raw.args, i, name)?.dtype)
    }

    /// Argument `i` as a slice of `T` (`len` elements when given). The slice must be dropped
    /// before any result that may alias it is written.
    pub fn arg<T: Element>(&self, i: usize, name: &str, len: Option<usize>) -> Result<&'f [T]> {
        let b = Self::buffer(&self.raw.args, i, name)?;
        let count = Self::check::<T>(b, name, len)?;
        Ok(slice(b.data, count))
    }

    pub fn num_results(&self) -> usize {
        self.raw.rets.size.max(0) as usize
    }

    /// The element type code of result `i`.
    pub fn result_dtype(&self, i: usize, name: &str) -> Result<i32> {
        Ok(Self::buffer(&self.raw.rets, i, name)?.dtype)
    }

    /// The element count of result `i`.
    pub fn result_len(&self, i: usize, name: &str) -> Result<usize> {
        Ok(Self::shape(Self::buffer(&self.raw.rets, i, name)?))
    }

    /// Result `i` as a mutable slice of `T` with exactly `len` elements.
    pub fn result<T: Element>(&self, i: usize, name: &str, len: usize) -> Result<&'f mut [T]> {
        let b = Self::buffer(&self.raw.rets, i, name)?;
        Self::check::<T>(b, name, Some(len))?;
        Ok(slice_mut(b.data, len))
    }

    /// An XLA error carrying `message` (XLA copies the text and owns the error).
    pub fn error(&self, code: i32, message: &str) -> *mut XlaError {
        error(self.raw, code, message)
    }
}

/// What the CUDA handlers read of a call: device addresses and XLA's services.
#[cfg(feature = "cuda")]
impl Frame<'_> {
    /// Argument `i` on a GPU: its device address and element count after the checks of
    /// `arg` (device memory is never read on the host).
    pub fn arg_address<T: Element>(
        &self,
        i: usize,
        name: &str,
        len: Option<usize>,
    ) -> Result<(u64, usize)> {
        let b = Self::buffer(&self.raw.args, i, name)?;
        Ok((b.data as u64, Self::check::<T>(b, name, len)?))
    }

    /// Result `i` on a GPU: its device address and element count after the checks of `result`.
    pub fn result_address<T: Element>(
        &self,
        i: usize,
        name: &str,
        len: Option<usize>,
    ) -> Result<(u64, usize)> {
        let b = Self::buffer(&self.raw.rets, i, name)?;
        Ok((b.data as u64, Self::check::<T>(b, name, len)?))
    }

    /// XLA's stream for this call (a `CUstream` on CUDA), on which the handler queues its work.
    pub fn stream(&self) -> Result<*mut c_void> {
        let mut args = c_api::StreamGetArgs {
            struct_size: std::mem::size_of::<c_api::StreamGetArgs>(),
            extension_start: ptr::null_mut(),
            ctx: self.raw.ctx,
            stream: ptr::null_mut(),
        };
        // SAFETY: `api` is XLA's API table, valid for the call.
        let get = unsafe { self.raw.api.as_ref() }.and_then(|api| api.stream_get);
        let no_stream = || Error::invalid("XLA gave no stream for this call");
        let get = get.ok_or_else(no_stream)?;
        // SAFETY: XLA's own function, given a complete argument struct.
        if !unsafe { get(&mut args) }.is_null() || args.stream.is_null() {
            return Err(no_stream());
        }
        Ok(args.stream)
    }

    /// The ordinal of the device this call runs on.
    pub fn device_ordinal(&self) -> Result<u32> {
        let mut args = c_api::DeviceOrdinalGetArgs {
            struct_size: std::mem::size_of::<c_api::DeviceOrdinalGetArgs>(),
            extension_start: ptr::null_mut(),
            ctx: self.raw.ctx,
            device_ordinal: -1,
        };
        // SAFETY: `api` is XLA's API table, valid for the call.
        let get = unsafe { self.raw.api.as_ref() }.and_then(|api| api.device_ordinal_get);
        let no_ordinal = || Error::invalid("XLA gave no device ordinal for this call");
        let get = get.ok_or_else(no_ordinal)?;
        // SAFETY: XLA's own function, given a complete argument struct.
        if !unsafe { get(&mut args) }.is_null() {
            return Err(no_ordinal());
        }
        u32::try_from(args.device_ordinal).map_err(|_| no_ordinal())
    }
}

fn slice<'f, T>(data: *mut c_void, count: usize) -> &'f [T] {
    if count == 0 {
        return &[];
    }
    // SAFETY: XLA buffers are valid, aligned for their dtype and `count` elements long for the
    // call; the dtype was checked to be T.
    unsafe { std::slice::from_raw_parts(data as *const T, count) }
}

fn slice_mut<'f, T>(data: *mut c_void, count: usize) -> &'f mut [T] {
    if count == 0 {
        return &mut [];
    }
    // SAFETY: as `slice`; results are written only after every input slice that may alias them
    // was dropped (the handlers compute into owned memory first).
    unsafe { std::slice::from_raw_parts_mut(data as *mut T, count) }
}

/// An XLA error from the frame's API table (NULL, i.e. "no error", if XLA gave no way to make
/// one — it always does).
pub fn error(raw: &CallFrame, code: i32, message: &str) -> *mut XlaError {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let mut args = c_api::ErrorCreateArgs {
        struct_size: std::mem::size_of::<c_api::ErrorCreateArgs>(),
        extension_start: ptr::null_mut(),
        message: text.as_ptr(),
        errc: code,
    };
    // SAFETY: `api` is XLA's API table, valid for the call; Error_Create copies the message.
    match unsafe { raw.api.as_ref() }.and_then(|api| api.error_create) {
        // SAFETY: `args` is a complete, initialised argument struct.
        Some(create) => unsafe { create(&mut args) },
        None => ptr::null_mut(),
    }
}
