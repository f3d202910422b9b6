//! The C API on a GPU: for an optimizer created with `device=cuda:N`, the step entry points
//! take device pointers (checked here for NULL, alignment and overlap, the rest is the caller's
//! contract), and `lre_optimizer_set_stream` chooses the CUDA stream its work is queued on.
//! Every call returns with its GPU work finished, so the caller may use the vectors at once on
//! any stream.

use super::guard::guard;
#[cfg(feature = "cuda")]
use super::handle::Handle;
use super::handle::LreOptimizer;
use super::pointers::optimizer;
use std::ffi::c_void;

/// Queues an optimizer's GPU work on `stream` (a `cudaStream_t` / `CUstream` of the optimizer's
/// device), or on the optimizer's own stream again for NULL. Work queued before is finished
/// first. The caller keeps the stream alive while it is set (and until the optimizer is freed
/// or another stream is set). For an optimizer on the CPU: `LRE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `opt` is a live optimizer; `stream` is NULL or a valid stream of the optimizer's device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_set_stream(
    opt: *mut LreOptimizer,
    stream: *mut c_void,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        #[cfg(feature = "cuda")]
        match &mut *opt {
            Handle::CudaF32(o) => return o.set_stream(stream),
            Handle::CudaF64(o) => return o.set_stream(stream),
            _ => {}
        }
        let _ = (&mut opt, stream);
        Err(crate::Error::invalid(
            "lre_optimizer_set_stream: this optimizer runs on the CPU (device=cpu); a stream \
             applies to optimizers created with device=cuda:N",
        ))
    })
}

#[cfg(feature = "cuda")]
pub(crate) use on_device::{begin, finish, step, step_batch, write_probes};

#[cfg(feature = "cuda")]
mod on_device {
    use super::super::pointers::{check_disjoint, out};
    use super::super::step::Hvp;
    use crate::CudaOptimizer;
    use crate::backend::cuda::{DeviceIn, DeviceInOut};
    use crate::backend::{Backend, Scalar};
    use crate::error::{Error, Result};
    use std::ffi::c_void;

    /// Checks a caller's vector: not NULL, aligned, and memory the driver knows (a host array
    /// passed to a GPU optimizer is refused, naming the argument).
    fn device_vector<T: Scalar>(o: &CudaOptimizer<T>, p: *const T, name: &str) -> Result<()> {
        out(p.cast_mut(), name)?;
        match o.backend().device().knows(p as u64) {
            true => Ok(()),
            false => Err(Error::invalid(format!(
                "`{name}` is not CUDA memory: an optimizer with device=cuda:N takes device \
                 pointers (cudaMalloc'd on that GPU)"
            ))),
        }
    }

    /// A caller's device vector of `len` elements, after the NULL and alignment checks.
    ///
    /// # Safety
    /// `p` is NULL or a device address of the optimizer's device holding `len` elements.
    unsafe fn input<'a, T>(p: *const T, len: usize, name: &str) -> Result<DeviceIn<'a, T>> {
        out(p.cast_mut(), name)?;
        // SAFETY: checked non-NULL and aligned; the extent is the caller's contract.
        Ok(unsafe { DeviceIn::from_raw(p, len) })
    }

    /// # Safety
    /// As [`input`], with exclusive access.
    unsafe fn in_out<'a, T>(p: *mut T, len: usize, name: &str) -> Result<DeviceInOut<'a, T>> {
        out(p, name)?;
        // SAFETY: checked non-NULL and aligned; extent and exclusivity are the caller's contract.
        Ok(unsafe { DeviceInOut::from_raw(p, len) })
    }

    /// `count` device vectors of n elements laid out one after another from `p`.
    ///
    /// # Safety
    /// `p` is NULL or a device address holding count × n elements (NULL allowed for count 0).
    unsafe fn rows<'a, T>(
        p: *const T,
        count: usize,
        n: usize,
        name: &str,
    ) -> Result<Vec<DeviceIn<'a, T>>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        out(p.cast_mut(), name)?;
        // SAFETY: the rows lie within the count × n elements of the caller's contract.
        Ok((0..count)
            .map(|i| unsafe { DeviceIn::from_raw(p.wrapping_add(i * n), n) })
            .collect())
    }

    /// One step on device vectors; `hvp` receives device pointers (probe and product, n
    /// elements each) and must have finished writing the product when it returns.
    ///
    /// # Safety
    /// `params` and `grad` are NULL or disjoint device vectors of ndim elements; `hvp` is NULL
    /// or callable with `user`.
    pub(crate) unsafe fn step<T: Scalar>(
        o: &mut CudaOptimizer<T>,
        params: *mut T,
        grad: *const T,
        hvp: Hvp<T>,
        user: *mut c_void,
    ) -> Result<()> {
        let n = o.ndim();
        device_vector(o, params, "params")?;
        device_vector(o, grad, "grad")?;
        check_disjoint(params, n, "params", grad, n, "grad")?;
        // SAFETY: caller contract.
        let (params, grad) = unsafe { (in_out(params, n, "params")?, input(grad, n, "grad")?) };
        let finished = match hvp {
            None => o.step(params, grad),
            Some(f) => {
                let device = o.backend().device().clone();
                o.step_with_hvp_vectors(params, grad, |v, hv| {
                    // The probe must be written before the caller's code reads it.
                    device.synchronize();
                    // SAFETY: the caller's callback, with its own `user` and two device
                    // vectors of n elements that live for the call.
                    unsafe { f(user, v.ptr as *const T, hv.ptr as *mut T, n) == 0 }
                })
            }
        };
        o.synchronize();
        finished
    }

    /// # Safety
    /// `grad` is NULL or a device vector of ndim elements.
    pub(crate) unsafe fn begin<T: Scalar>(
        o: &mut CudaOptimizer<T>,
        grad: *const T,
    ) -> Result<usize> {
        device_vector(o, grad, "grad")?;
        // SAFETY: caller contract.
        let grad = unsafe { input(grad, o.ndim(), "grad") }?;
        let probes = o.begin(grad);
        o.synchronize();
        probes
    }

    /// # Safety
    /// `probes` is NULL or device memory for num_probes × ndim elements.
    pub(crate) unsafe fn write_probes<T: Scalar>(
        o: &mut CudaOptimizer<T>,
        probes: *mut T,
    ) -> Result<()> {
        let count = o.begun_probes()?;
        let n = o.ndim();
        if count == 0 {
            return Ok(());
        }
        device_vector(o, probes, "probes")?;
        let be = o.backend().clone();
        for i in 0..count {
            // SAFETY: row i lies within the caller's count × n elements.
            let row = unsafe { DeviceInOut::from_raw(probes.wrapping_add(i * n), n) };
            be.restore_params(o.probe(i)?, row);
        }
        o.synchronize();
        Ok(())
    }

    /// # Safety
    /// `params` is NULL or ndim device elements; `hvps` NULL or num_probes × ndim, disjoint.
    pub(crate) unsafe fn finish<T: Scalar>(
        o: &mut CudaOptimizer<T>,
        params: *mut T,
        hvps: *const T,
    ) -> Result<()> {
        let n = o.ndim();
        let count = o.begun_probes()?;
        device_vector(o, params, "params")?;
        if count > 0 {
            device_vector(o, hvps, "hvps")?;
            check_disjoint(params, n, "params", hvps, count * n, "hvps")?;
        }
        // SAFETY: caller contract.
        let (params, rows) =
            unsafe { (in_out(params, n, "params")?, rows(hvps, count, n, "hvps")?) };
        let finished = o.finish(params, &rows);
        o.synchronize();
        finished
    }

    /// # Safety
    /// `params` is NULL or ndim device elements; `grads` NULL or batch × ndim device elements;
    /// `values` NULL or batch device elements; none overlap `params`.
    pub(crate) unsafe fn step_batch<T: Scalar>(
        o: &mut CudaOptimizer<T>,
        params: *mut T,
        grads: *const T,
        batch: usize,
        values: *const T,
    ) -> Result<()> {
        let n = o.ndim();
        let rows_len = batch
            .checked_mul(n)
            .ok_or_else(|| Error::invalid(format!("batch = {batch} is too large")))?;
        device_vector(o, params, "params")?;
        if batch > 0 {
            device_vector(o, grads, "per_sample_grads")?;
        }
        check_disjoint(params, n, "params", grads, rows_len, "per_sample_grads")?;
        let values: Option<Vec<f64>> = if values.is_null() {
            None
        } else {
            check_disjoint(params, n, "params", values, batch, "per_sample_values")?;
            device_vector(o, values, "per_sample_values")?;
            let mut host = vec![T::default(); batch];
            o.backend().device().download(&mut host, values as u64);
            Some(host.iter().map(|x| x.to_f64()).collect())
        };
        // SAFETY: caller contract.
        let (params, rows) = unsafe {
            (
                in_out(params, n, "params")?,
                rows(grads, batch, n, "per_sample_grads")?,
            )
        };
        let finished = o.step_batch_rows(params, &rows, values.as_deref());
        o.synchronize();
        finished
    }
}
