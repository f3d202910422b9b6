//! The opaque handle behind `lre_optimizer_t`: an optimizer of either dtype, and the busy flag
//! that refuses overlapping calls on it.

use crate::CpuOptimizer;
#[cfg(feature = "cuda")]
use crate::CudaOptimizer;
use crate::backend::Scalar;
use crate::elem::Dtype;
use crate::error::{Error, Result, Status};
use crate::spec::Config;
use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// An LRE optimizer (C: `lre_optimizer_t`). Create with `lre_optimizer_new`, destroy with
/// `lre_optimizer_free`. One handle serves one call at a time: every function that takes it,
/// read-only queries included, marks it busy for the duration of the call (an atomic flag, not
/// a lock), and a call that overlaps another one on the same handle — from a second thread, or
/// from the HVP callback of a step on it — returns `LRE_ERR_BUSY` at once and changes nothing.
/// Callers that share a handle between threads must take turns themselves (a refused call may
/// be retried). Distinct handles are independent. Freeing a handle that another thread may still
/// call remains the caller's error.
pub struct LreOptimizer {
    busy: AtomicBool,
    optimizer: UnsafeCell<Handle>,
}

/// The optimizer, by dtype and device.
pub(crate) enum Handle {
    F32(CpuOptimizer<f32>),
    F64(CpuOptimizer<f64>),
    /// `device=cuda:N`: its vectors are device pointers.
    #[cfg(feature = "cuda")]
    CudaF32(CudaOptimizer<f32>),
    #[cfg(feature = "cuda")]
    CudaF64(CudaOptimizer<f64>),
}

/// An optimizer of one element type, on the host or on a GPU.
pub(crate) enum Typed<'a, T: Scalar> {
    Host(&'a mut CpuOptimizer<T>),
    #[cfg(feature = "cuda")]
    Device(&'a mut CudaOptimizer<T>),
}

impl LreOptimizer {
    pub(crate) fn new(optimizer: Handle) -> Self {
        LreOptimizer {
            busy: AtomicBool::new(false),
            optimizer: UnsafeCell::new(optimizer),
        }
    }

    /// Takes the handle for one call, or `LRE_ERR_BUSY` while another call holds it. The claim
    /// lets go when dropped, also when the call unwinds.
    pub(crate) fn claim(&self) -> Result<Claim<'_>> {
        // Acquire/Release: whatever the previous holder wrote is visible to the next one.
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| busy())?;
        Ok(Claim { opt: self })
    }
}

fn busy() -> Error {
    Error::new(
        Status::LRE_ERR_BUSY,
        "the optimizer is in use by another call: one optimizer must not be used by two threads \
         at once or re-entered from its HVP callback; this call was refused and changed nothing",
    )
}

/// Exclusive access to a handle's optimizer for the duration of one call.
pub(crate) struct Claim<'a> {
    opt: &'a LreOptimizer,
}

impl Deref for Claim<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        // SAFETY: the busy flag, set by `claim` and cleared only by this claim's drop, makes
        // this claim the only access to `optimizer` while it lives.
        unsafe { &*self.opt.optimizer.get() }
    }
}

impl DerefMut for Claim<'_> {
    fn deref_mut(&mut self) -> &mut Handle {
        // SAFETY: as in `deref`; `&mut self` keeps the borrows of this claim apart.
        unsafe { &mut *self.opt.optimizer.get() }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.opt.busy.store(false, Ordering::Release);
    }
}

/// Runs the same expression on whichever optimizer the handle holds.
macro_rules! with_optimizer {
    ($handle:expr, $opt:ident => $body:expr) => {
        match $handle {
            $crate::ffi::handle::Handle::F32($opt) => $body,
            $crate::ffi::handle::Handle::F64($opt) => $body,
            #[cfg(feature = "cuda")]
            $crate::ffi::handle::Handle::CudaF32($opt) => $body,
            #[cfg(feature = "cuda")]
            $crate::ffi::handle::Handle::CudaF64($opt) => $body,
        }
    };
}
pub(crate) use with_optimizer;

/// Runs `$body` with the host optimizer of a handle; a device optimizer's state is device
/// memory and cannot be moved to caller (host) memory.
macro_rules! with_host_optimizer {
    ($handle:expr, $opt:ident => $body:expr) => {
        match $handle {
            $crate::ffi::handle::Handle::F32($opt) => $body,
            $crate::ffi::handle::Handle::F64($opt) => $body,
            #[cfg(feature = "cuda")]
            _ => Err($crate::error::Error::unsupported(
                "a device=cuda optimizer's state is device memory; only host (device=cpu) \
                 optimizers can keep their n-sized state in caller memory",
            )),
        }
    };
}
pub(crate) use with_host_optimizer;

impl Handle {
    /// An optimizer for `config` on the device it names.
    pub fn new(config: Config, ndim: usize) -> Result<Handle> {
        Ok(match (config.dtype, config.device) {
            #[cfg(feature = "cuda")]
            (Dtype::F32, crate::spec::Device::Cuda(_)) => {
                Handle::CudaF32(CudaOptimizer::from_config(config, ndim)?)
            }
            #[cfg(feature = "cuda")]
            (Dtype::F64, crate::spec::Device::Cuda(_)) => {
                Handle::CudaF64(CudaOptimizer::from_config(config, ndim)?)
            }
            (Dtype::F32, _) => Handle::F32(CpuOptimizer::from_config(config, ndim)?),
            (Dtype::F64, _) => Handle::F64(CpuOptimizer::from_config(config, ndim)?),
        })
    }

    /// An optimizer recreated from a saved state, on the device its spec names.
    pub fn from_state(bytes: &[u8]) -> Result<Handle> {
        let dtype = crate::state::header_dtype(bytes)?;
        #[cfg(feature = "cuda")]
        {
            let saved = crate::state::Decoder::new(bytes)?;
            if let Ok(Config {
                device: crate::spec::Device::Cuda(ordinal),
                ..
            }) = Config::parse(&saved.spec)
            {
                return Ok(match dtype {
                    Dtype::F32 => Handle::CudaF32(CudaOptimizer::from_state_on(ordinal, bytes)?),
                    Dtype::F64 => Handle::CudaF64(CudaOptimizer::from_state_on(ordinal, bytes)?),
                });
            }
        }
        Ok(match dtype {
            Dtype::F32 => Handle::F32(CpuOptimizer::from_state(bytes)?),
            Dtype::F64 => Handle::F64(CpuOptimizer::from_state(bytes)?),
        })
    }

    /// The f32 optimizer, or an error naming the right entry point.
    pub fn f32(&mut self, function: &str) -> Result<Typed<'_, f32>> {
        match self {
            Handle::F32(o) => Ok(Typed::Host(o)),
            #[cfg(feature = "cuda")]
            Handle::CudaF32(o) => Ok(Typed::Device(o)),
            _ => Err(wrong_dtype(function, Dtype::F64)),
        }
    }

    /// The f64 optimizer, or an error naming the right entry point.
    pub fn f64(&mut self, function: &str) -> Result<Typed<'_, f64>> {
        match self {
            Handle::F64(o) => Ok(Typed::Host(o)),
            #[cfg(feature = "cuda")]
            Handle::CudaF64(o) => Ok(Typed::Device(o)),
            _ => Err(wrong_dtype(function, Dtype::F32)),
        }
    }
}

fn wrong_dtype(function: &str, actual: Dtype) -> Error {
    Error::invalid(format!(
        "{function} called on an optimizer with dtype={actual}; call the _{actual} variant (or create the \
         optimizer with dtype={})",
        if actual == Dtype::F32 { "f64" } else { "f32" }
    ))
}
