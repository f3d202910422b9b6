//! One opened GPU: its context, the loaded kernels, a cuBLAS handle and the stream every
//! operation is queued on; device buffers that free themselves.
//!
//! Everything goes through cudarc's raw driver and cuBLAS calls on device pointers, so a
//! caller's own pointers (the C API's parameters and gradients) and this backend's buffers are
//! handled alike. A failure of the driver in the middle of an operation is a panic naming the
//! call (the C boundary turns it into `LRE_ERR_PANIC`): the `Backend` operations cannot fail.

use super::{KERNELS, PTX};
use crate::error::{Error, Result, Status};
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{CudaContext, DriverError, result, sys};
use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Threads per block of the one-dimensional kernels (kernels.cu's THREADS).
pub const THREADS: u32 = 256;
/// Row blocks of the reductions (each writes one f64 partial sum per output).
pub const BLOCKS: u32 = 120;

/// An opened device. Shared (`Arc`) by every buffer and backend made on it.
pub struct Device {
    ctx: Arc<CudaContext>,
    module: sys::CUmodule,
    functions: HashMap<&'static str, sys::CUfunction>,
    blas: blas_sys::cublasHandle_t,
    /// The stream created with the device, used until a caller sets its own.
    own_stream: sys::CUstream,
    /// The stream operations are queued on now.
    stream: AtomicPtr<sys::CUstream_st>,
    /// Bytes of dynamic shared memory one block may use (after opting in).
    shared_limit: u32,
}

// SAFETY: the raw handles are used only with the context bound (`enter`), and the driver and
// cuBLAS handles may be used from any thread as long as calls on one handle do not overlap,
// which the optimizer's one-call-at-a-time rule (and `&mut` access) guarantees.
unsafe impl Send for Device {}
// SAFETY: as for Send; the only interior mutability is the atomic stream pointer.
unsafe impl Sync for Device {}

/// Panics with the failing call's name: the driver or cuBLAS failed mid-operation.
pub fn check<V, E: Display>(r: std::result::Result<V, E>, what: &str) -> V {
    r.unwrap_or_else(|e| panic!("CUDA: {what} failed: {e}"))
}

fn driver_error(what: &str, e: DriverError) -> Error {
    let status = match e.0 {
        sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => Status::LRE_ERR_OUT_OF_MEMORY,
        _ => Status::LRE_ERR_DEVICE,
    };
    Error::new(status, format!("CUDA: {what}: {e}"))
}

impl Device {
    /// Loads the kernels into `ctx` and creates a stream and a cuBLAS handle on it.
    pub fn new(ctx: Arc<CudaContext>) -> Result<Arc<Self>> {
        ctx.bind_to_thread()
            .map_err(|e| driver_error("binding the context", e))?;
        let image = CString::new(PTX).expect("the PTX has no NUL byte");
        // SAFETY: `image` is a NUL-terminated PTX text that outlives the call.
        let module = unsafe { result::module::load_data(image.as_ptr().cast()) }
            .map_err(|e| driver_error("loading the kernels' PTX", e))?;
        let mut functions = HashMap::new();
        for &name in KERNELS {
            let c_name = CString::new(name).expect("kernel names have no NUL byte");
            // SAFETY: `module` was just loaded and is not unloaded while `Device` lives.
            let f = unsafe { result::module::get_function(module, c_name) }
                .map_err(|e| driver_error(&format!("finding kernel {name}"), e))?;
            functions.insert(name, f);
        }
        let optin = ctx
            .attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(|e| driver_error("reading the shared memory limit", e))?;
        let shared_limit = u32::try_from(optin).unwrap_or(48 << 10);
        for name in ["combine_f32", "combine_f64"] {
            // SAFETY: the function belongs to the loaded module; the value is the device's own
            // opt-in limit.
            unsafe {
                result::function::set_function_attribute(
                    functions[name],
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared_limit as i32,
                )
            }
            .map_err(|e| driver_error("allowing the combine kernel its shared memory", e))?;
        }
        let own_stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(|e| driver_error("creating a stream", e))?;
        let handle = blas::create_handle().map_err(|e| {
            Error::new(
                Status::LRE_ERR_DEVICE,
                format!("cuBLAS could not start: {e}"),
            )
        })?;
        // SAFETY: both handles were just created.
        unsafe { blas::set_stream(handle, own_stream.cast()) }.map_err(|e| {
            Error::new(
                Status::LRE_ERR_DEVICE,
                format!("cuBLAS could not use the stream: {e}"),
            )
        })?;
        Ok(Arc::new(Device {
            ctx,
            module,
            functions,
            blas: handle,
            own_stream,
            stream: AtomicPtr::new(own_stream),
            shared_limit,
        }))
    }

    /// Makes this device's context current on the calling thread (every operation starts so).
    pub fn enter(&self) {
        check(self.ctx.bind_to_thread(), "binding the context");
    }

    /// The stream operations are queued on.
    pub fn stream(&self) -> sys::CUstream {
        self.stream.load(Ordering::Acquire)
    }

    /// Queues every later operation (kernels, copies, cuBLAS) on `stream`, or on the device's
    /// own stream when `stream` is null. Work queued before stays on the previous stream, so
    /// this first waits for it.
    pub fn set_stream(&self, stream: sys::CUstream) -> Result<()> {
        self.enter();
        let next = if stream.is_null() {
            self.own_stream
        } else {
            stream
        };
        // SAFETY: the current stream is valid (ours, or the caller's, which the caller keeps
        // alive while it is set).
        unsafe { result::stream::synchronize(self.stream()) }
            .map_err(|e| driver_error("finishing the previous stream's work", e))?;
        // SAFETY: the handle is ours; `next` is a valid stream by the caller's contract.
        unsafe { blas::set_stream(self.blas, next.cast()) }.map_err(|e| {
            Error::new(
                Status::LRE_ERR_DEVICE,
                format!("cuBLAS could not use the stream: {e}"),
            )
        })?;
        self.stream.store(next, Ordering::Release);
        Ok(())
    }

    /// Whether the driver knows the memory at `ptr` (allocated or registered with CUDA): a
    /// plain host array is refused before a kernel faults on it, which would poison the context.
    pub fn knows(&self, ptr: sys::CUdeviceptr) -> bool {
        self.enter();
        let mut kind: u32 = 0;
        // SAFETY: the memory-type attribute is a 32-bit CUmemorytype written into `kind`.
        unsafe {
            sys::cuPointerGetAttribute(
                (&mut kind as *mut u32).cast(),
                sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                ptr,
            )
        }
        .result()
        .is_ok()
    }

    /// The cuBLAS handle (bound to [`Device::stream`]).
    pub fn blas(&self) -> blas_sys::cublasHandle_t {
        self.blas
    }

    /// Dynamic shared memory one block may use.
    pub fn shared_limit(&self) -> u32 {
        self.shared_limit
    }

    /// Waits for everything queued.
    pub fn synchronize(&self) {
        self.enter();
        // SAFETY: the stream is valid (see `set_stream`).
        check(
            unsafe { result::stream::synchronize(self.stream()) },
            "waiting for the stream",
        );
    }

    /// Queues kernel `name` with the given argument pointers (each to a value of the type the
    /// kernel declares, as `args!` builds them).
    ///
    /// # Safety
    /// The arguments match the kernel's signature and the device memory they point to is
    /// valid for what the kernel reads and writes until the stream reaches it.
    pub unsafe fn launch(
        &self,
        name: &str,
        grid: (u32, u32),
        block: (u32, u32),
        shared: u32,
        args: &mut [*mut c_void],
    ) {
        let f = *self
            .functions
            .get(name)
            .unwrap_or_else(|| panic!("no kernel {name} in the PTX"));
        // SAFETY: forwarded contract; `f` comes from the loaded module.
        let launched = unsafe {
            result::launch_kernel(
                f,
                (grid.0.max(1), grid.1.max(1), 1),
                (block.0, block.1, 1),
                shared,
                self.stream(),
                args,
            )
        };
        check(launched, &format!("launching {name}"));
    }

    /// Copies `bytes` bytes between device addresses, queued.
    pub fn copy(&self, dst: sys::CUdeviceptr, src: sys::CUdeviceptr, bytes: usize) {
        if bytes == 0 || dst == src {
            return;
        }
        // SAFETY: callers pass ranges of live device memory of at least `bytes` bytes.
        check(
            unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream()) },
            "copying on the device",
        );
    }

    /// Copies host data to the device address, queued (the host data may be dropped after
    /// the call: the driver stages pageable memory before returning).
    pub fn upload<U>(&self, dst: sys::CUdeviceptr, src: &[U]) {
        if src.is_empty() {
            return;
        }
        // SAFETY: callers pass a device range at least as long as `src`.
        check(
            unsafe { result::memcpy_htod_async(dst, src, self.stream()) },
            "copying to the device",
        );
    }

    /// Copies device data to the host and waits for it (and for everything queued before).
    pub fn download<U>(&self, dst: &mut [U], src: sys::CUdeviceptr) {
        self.enter();
        if !dst.is_empty() {
            // SAFETY: callers pass a device range at least as long as `dst`, which stays
            // borrowed until the synchronisation below.
            check(
                unsafe { result::memcpy_dtoh_async(dst, src, self.stream()) },
                "copying to the host",
            );
        }
        self.synchronize();
    }

    /// A zero-filled device buffer of `len` values of `U`.
    pub fn zeros<U>(self: &Arc<Self>, len: usize) -> Result<Buffer<U>> {
        self.enter();
        let bytes = len.checked_mul(size_of::<U>()).ok_or_else(|| {
            Error::new(
                Status::LRE_ERR_OUT_OF_MEMORY,
                format!("cannot allocate {len} elements of optimizer state"),
            )
        })?;
        let ptr = if bytes == 0 {
            0
        } else {
            // Stream-ordered: allocation, use and free are queued in order, no device-wide waits.
            // SAFETY: a plain allocation; it is zero-filled before anyone reads it.
            let ptr = unsafe { result::malloc_async(self.stream(), bytes) }
                .map_err(|e| driver_error(&format!("allocating {bytes} bytes"), e))?;
            // The fill is queued before any use of it.
            self.clear(ptr, bytes);
            ptr
        };
        Ok(Buffer {
            ptr,
            len,
            device: Arc::clone(self),
            lent_slot: None,
            elem: std::marker::PhantomData,
        })
    }

    /// `len` values of `U` at `ptr`, caller memory lent for one call (never freed here); `slot`
    /// numbers it among the vectors of one lent buffer.
    ///
    /// # Safety
    /// `ptr` is a device address on this device holding `len` values of `U`, aligned for `U`,
    /// used by no one else while the buffer lives; the buffer is dropped before the memory's
    /// owner frees it.
    pub unsafe fn lent<U>(
        self: &Arc<Self>,
        ptr: sys::CUdeviceptr,
        len: usize,
        slot: usize,
    ) -> Buffer<U> {
        Buffer {
            ptr,
            len,
            device: Arc::clone(self),
            lent_slot: Some(slot),
            elem: std::marker::PhantomData,
        }
    }

    /// Zeroes `bytes` bytes at a device address, queued.
    pub fn clear(&self, ptr: sys::CUdeviceptr, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.enter();
        // SAFETY: callers pass a range of live device memory of at least `bytes` bytes.
        check(
            unsafe { result::memset_d8_async(ptr, 0, bytes, self.stream()) },
            "zero-filling",
        );
    }

    /// A device copy of small host data for one operation (column lists, coefficients).
    pub fn staged<U>(self: &Arc<Self>, data: &[U]) -> Buffer<U> {
        let buffer = check(self.zeros(data.len()), "allocating a staging buffer");
        self.upload(buffer.ptr, data);
        buffer
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Teardown failures are ignored: nothing can be done about them here.
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: the handles are ours and nothing uses them after this.
            unsafe {
                let _ = result::stream::synchronize(self.stream());
                let _ = blas::destroy_handle(self.blas);
                let _ = result::stream::destroy(self.own_stream);
                let _ = result::module::unload(self.module);
            }
        }
    }
}

/// `len` values of `U` in device memory, freed on drop unless the memory is lent.
pub struct Buffer<U> {
    pub ptr: sys::CUdeviceptr,
    pub len: usize,
    device: Arc<Device>,
    /// Some(slot) for caller memory (`Device::lent`).
    pub lent_slot: Option<usize>,
    elem: std::marker::PhantomData<U>,
}

impl<U> Drop for Buffer<U> {
    fn drop(&mut self) {
        if self.ptr != 0 && self.lent_slot.is_none() && self.device.ctx.bind_to_thread().is_ok() {
            // Queued after the work that uses the buffer (a stream change waits for the old
            // stream first, so that work is queued on this one or finished).
            // SAFETY: allocated by `Device::zeros`, freed once, here.
            let _ = unsafe { result::free_async(self.ptr, self.device.stream()) };
        }
    }
}

/// Kernel argument pointers: `args![a, b]` points at the locals `a`, `b` (each of the exact
/// type the kernel declares), which must live until the launch returns.
macro_rules! args {
    ($($x:ident),* $(,)?) => {
        [$((&$x as *const _ as *mut std::ffi::c_void)),*]
    };
}
pub(crate) use args;
