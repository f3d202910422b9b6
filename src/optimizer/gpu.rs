//! Optimizers whose n-sized data live on a GPU (cargo feature "cuda"): created for
//! `device=cuda:N`; the parameters, gradients and HVP vectors they step are device vectors.

use super::{Optimizer, check_dtype};
use crate::backend::cuda::{self, Cuda};
use crate::backend::{LentMemory, Scalar};
use crate::error::{Error, Result};
use crate::spec::{Config, Device};
use crate::state::Decoder;
use std::ffi::c_void;
use std::sync::Arc;

/// The CUDA optimizer for element type `T` (f32 or f64).
pub type CudaOptimizer<T> = Optimizer<Cuda<T>>;

impl<T: Scalar> Optimizer<Cuda<T>> {
    /// Creates an optimizer on the GPU its spec names (`device=cuda:N`) for `n` parameters.
    pub fn from_spec(spec: &str, n: usize) -> Result<Self> {
        Self::from_config(Config::parse(spec)?, n)
    }

    /// Creates an optimizer on the GPU `config.device` names. `LRE_ERR_DEVICE` naming what is
    /// missing (driver, cuBLAS, device) when it cannot be opened.
    pub fn from_config(config: Config, n: usize) -> Result<Self> {
        check_dtype::<T>(&config)?;
        let Device::Cuda(ordinal) = config.device else {
            return Err(Error::invalid(
                "a CUDA optimizer needs device=cuda:N in its spec (device=cpu is CpuOptimizer)",
            ));
        };
        if config.sharded() {
            return Err(Error::unsupported(
                "a sharded optimizer (global_ndim, shard_offset) runs on the CPU only",
            ));
        }
        if n == 0 {
            return Err(Error::invalid("ndim = 0; expected ndim >= 1"));
        }
        let (device, _) = cuda::open(ordinal as usize)?;
        Optimizer::new(config, Cuda::new(device, n)?)
    }

    /// Recreates an optimizer on device `cuda:ordinal` from a saved state, whichever device
    /// wrote it (the format is the same).
    pub fn from_state_on(ordinal: u32, bytes: &[u8]) -> Result<Self> {
        let mut dec = Decoder::new(bytes)?;
        let config = super::checkpoint::config_for::<T>(&dec, Device::Cuda(ordinal))?;
        let mut opt = Self::from_config(config, dec.n)?;
        opt.restore(&mut dec)?;
        Ok(opt)
    }

    /// The optimizer of a small state (or a full blob) on an opened device (`cuda:ordinal`),
    /// whose n-sized buffers are device memory lent for one call (`Optimizer::lend_state`).
    pub fn from_lent_on(
        device: Arc<cuda::Device>,
        ordinal: u32,
        state: &[u8],
        lent: Vec<LentMemory>,
    ) -> Result<Self> {
        let dec = Decoder::new(state)?;
        let config = super::checkpoint::config_for::<T>(&dec, Device::Cuda(ordinal))?;
        if config.sharded() {
            return Err(Error::unsupported(
                "a sharded optimizer (global_ndim, shard_offset) runs on the CPU only",
            ));
        }
        let n = dec.n;
        Optimizer::new(config, Cuda::new(device, n)?)?.lend_state(dec, lent)
    }

    /// Queues the optimizer's GPU work on the caller's CUDA stream (a `CUstream` /
    /// `cudaStream_t`), or on its own stream again for null. Work queued before is finished
    /// first. The caller keeps the stream alive while it is set.
    pub fn set_stream(&mut self, stream: *mut c_void) -> Result<()> {
        self.backend.device().set_stream(stream.cast())
    }

    /// The backend: makes device vectors on this optimizer's device and stream (for callers
    /// that keep their parameters in buffers of this library).
    pub fn backend(&self) -> &Cuda<T> {
        &self.backend
    }

    /// Host threads of the n-sized loops: one (the loops run on the GPU).
    pub fn threads(&self) -> usize {
        1
    }

    /// Waits until the GPU has finished every step queued so far.
    pub fn synchronize(&self) {
        self.backend.device().synchronize();
    }
}
