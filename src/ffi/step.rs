//! The step entry points: the one-call step (optionally with an HVP callback), the split step
//! (`begin` → `probes` → `finish`, for HVPs computed elsewhere: batched, asynchronous, or by
//! JAX), and the batch step with per-sample gradients.

use super::guard::guard;
use super::handle::{LreOptimizer, Typed, with_optimizer};
use super::pointers::{self, check_disjoint, optimizer, out};
use crate::backend::Cpu;
use crate::backend::Scalar;
use crate::backend::cpu::VectorStorage;
use crate::error::{Error, Result};
use crate::optimizer::Optimizer;
use std::ffi::c_void;

/// A Hessian-vector product callback for element type `T` (`HvpF32` / `HvpF64` spelled out
/// for cbindgen).
pub(crate) type Hvp<T> =
    Option<unsafe extern "C" fn(user: *mut c_void, v: *const T, hv: *mut T, n: usize) -> i32>;

/// Hessian-vector product callback for f32 optimizers: writes H·v into `hv` (both of length n)
/// and returns 0, or returns non-zero to abort the step (`LRE_ERR_CALLBACK`, nothing changed).
/// Called synchronously on the caller's thread, once per probe, only during the step that
/// received it. It must not use the optimizer whose step called it: such a call returns
/// `LRE_ERR_BUSY` and changes nothing, and the step goes on as the callback's return value says.
pub type HvpF32 =
    Option<unsafe extern "C" fn(user: *mut c_void, v: *const f32, hv: *mut f32, n: usize) -> i32>;

/// Hessian-vector product callback for f64 optimizers (see `lre_hvp_f32_fn`).
pub type HvpF64 =
    Option<unsafe extern "C" fn(user: *mut c_void, v: *const f64, hv: *mut f64, n: usize) -> i32>;

/// One step of an f32 optimizer: reads `grad` (ndim floats) and updates `params` (ndim floats)
/// in place. Curvatures that need Hessian-vector products (full_hutchinson_hessian, bfgs, sr1;
/// see get_param "num_probes") call `hvp(user, v, hv, ndim)` for each probe; others ignore it
/// (pass NULL). On any error `params` and the optimizer are unchanged.
///
/// # Safety
/// `opt` is a live optimizer; `params` and `grad` are NULL or arrays of ndim floats that do not
/// overlap; `hvp` is NULL or a function that may be called with `user`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_step_f32(
    opt: *mut LreOptimizer,
    params: *mut f32,
    grad: *const f32,
    hvp: HvpF32,
    user: *mut c_void,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f32("lre_optimizer_step_f32")?;
        // SAFETY: forwarded caller contract.
        unsafe { step(o, params, grad, hvp, user) }
    })
}

/// One step of an f64 optimizer (see `lre_optimizer_step_f32`).
///
/// # Safety
/// As `lre_optimizer_step_f32`, with arrays of ndim doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_step_f64(
    opt: *mut LreOptimizer,
    params: *mut f64,
    grad: *const f64,
    hvp: HvpF64,
    user: *mut c_void,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f64("lre_optimizer_step_f64")?;
        // SAFETY: forwarded caller contract.
        unsafe { step(o, params, grad, hvp, user) }
    })
}

/// # Safety
/// `params` and `grad` are NULL or arrays of `o.ndim()` elements that do not overlap; `hvp` is
/// NULL or callable with `user`.
unsafe fn step<T: Scalar>(
    o: Typed<'_, T>,
    params: *mut T,
    grad: *const T,
    hvp: Hvp<T>,
    user: *mut c_void,
) -> Result<()> {
    match o {
        // SAFETY: forwarded caller contract.
        Typed::Host(o) => unsafe { host_step(o, params, grad, hvp, user) },
        // SAFETY: forwarded caller contract (device pointers for a device optimizer).
        #[cfg(feature = "cuda")]
        Typed::Device(o) => unsafe { super::device::step(o, params, grad, hvp, user) },
    }
}

/// A step of a host optimizer, its n-sized state in its own or in lent memory.
///
/// # Safety
/// As [`step`].
pub(super) unsafe fn host_step<T: Scalar, V: VectorStorage<T>>(
    o: &mut Optimizer<Cpu<T, V>>,
    params: *mut T,
    grad: *const T,
    hvp: Hvp<T>,
    user: *mut c_void,
) -> Result<()> {
    let n = o.ndim();
    // SAFETY: caller contract (NULL or ndim readable elements).
    let grad = unsafe { pointers::slice(grad, n, "grad") }?;
    check_disjoint(params, n, "params", grad.as_ptr(), n, "grad")?;
    // SAFETY: caller contract (NULL or ndim writable elements), disjoint from `grad` (checked).
    let params = unsafe { pointers::slice_mut(params, n, "params") }?;
    match hvp {
        None => o.step(params, grad),
        // SAFETY: the caller's callback, called with its own `user` and two arrays of n
        // elements that live for the call.
        Some(f) => o.step_with_hvp(
            params,
            grad,
            |v, hv| unsafe { f(user, v.as_ptr(), hv.as_mut_ptr(), v.len()) } == 0,
        ),
    }
}

/// Split step, phase one: validates `grad` (ndim floats) and writes how many Hessian-vector
/// products this step needs to `*num_probes` (0 on steps that do not update the curvature).
/// Then call `lre_optimizer_probes_f32` for the probe vectors and `lre_optimizer_finish_f32`
/// with their HVPs. Beginning while a step is begun is `LRE_ERR_CALL_ORDER`.
///
/// # Safety
/// `opt` is a live optimizer; `grad` is NULL or an array of ndim floats; `num_probes` is valid
/// to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_begin_f32(
    opt: *mut LreOptimizer,
    grad: *const f32,
    num_probes: *mut usize,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f32("lre_optimizer_begin_f32")?;
        // SAFETY: forwarded caller contract.
        unsafe { begin(o, grad, num_probes) }
    })
}

/// Split step, phase one, for f64 optimizers (see `lre_optimizer_begin_f32`).
///
/// # Safety
/// As `lre_optimizer_begin_f32`, with an array of ndim doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_begin_f64(
    opt: *mut LreOptimizer,
    grad: *const f64,
    num_probes: *mut usize,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f64("lre_optimizer_begin_f64")?;
        // SAFETY: forwarded caller contract.
        unsafe { begin(o, grad, num_probes) }
    })
}

/// # Safety
/// `grad` is NULL or an array of `o.ndim()` elements; `num_probes` is valid to write.
unsafe fn begin<T: Scalar>(o: Typed<'_, T>, grad: *const T, num_probes: *mut usize) -> Result<()> {
    let num_probes = out(num_probes, "num_probes")?;
    let probes = match o {
        Typed::Host(o) => {
            // SAFETY: caller contract.
            let grad = unsafe { pointers::slice(grad, o.ndim(), "grad") }?;
            o.begin(grad)?
        }
        // SAFETY: caller contract (a device vector of ndim elements).
        #[cfg(feature = "cuda")]
        Typed::Device(o) => unsafe { super::device::begin(o, grad) }?,
    };
    // SAFETY: checked by `out`.
    unsafe { pointers::write(num_probes, probes) };
    Ok(())
}

/// Split step: writes the begun step's probe vectors, num_probes × ndim floats (row-major), to
/// `probes`. NULL is allowed when num_probes is 0.
///
/// # Safety
/// `opt` is a live optimizer; `probes` is NULL or valid for num_probes × ndim floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_probes_f32(
    opt: *const LreOptimizer,
    probes: *mut f32,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f32("lre_optimizer_probes_f32")?;
        // SAFETY: forwarded caller contract.
        unsafe { write_probes(o, probes) }
    })
}

/// Split step: the probe vectors of an f64 optimizer (see `lre_optimizer_probes_f32`).
///
/// # Safety
/// As `lre_optimizer_probes_f32`, with num_probes × ndim doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_probes_f64(
    opt: *const LreOptimizer,
    probes: *mut f64,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f64("lre_optimizer_probes_f64")?;
        // SAFETY: forwarded caller contract.
        unsafe { write_probes(o, probes) }
    })
}

/// # Safety
/// `probes` is NULL or valid for num_probes × ndim elements.
unsafe fn write_probes<T: Scalar>(o: Typed<'_, T>, probes: *mut T) -> Result<()> {
    // Without the "cuda" feature the host is the only variant.
    #[cfg_attr(not(feature = "cuda"), allow(clippy::infallible_destructuring_match))]
    let o = match o {
        Typed::Host(o) => o,
        // SAFETY: forwarded caller contract (device memory for a device optimizer).
        #[cfg(feature = "cuda")]
        Typed::Device(o) => return unsafe { super::device::write_probes(o, probes) },
    };
    let count = o.begun_probes()?;
    if count == 0 {
        return Ok(());
    }
    let n = o.ndim();
    // SAFETY: caller contract (valid for count × n elements).
    let dst = unsafe { pointers::slice_mut(probes, count * n, "probes") }?;
    for (i, row) in dst.chunks_exact_mut(n).enumerate() {
        row.copy_from_slice(o.probe(i)?);
    }
    Ok(())
}

/// Split step, phase two: `hvps` holds H·probe for each probe, num_probes × ndim floats
/// (row-major; NULL when num_probes is 0). Updates the curvature, the basis and the chain and
/// moves `params`. Without a begun step: `LRE_ERR_CALL_ORDER`. Non-finite HVPs:
/// `LRE_ERR_NUMERICAL`, nothing changed, and the step stays begun (finish again, or cancel).
///
/// # Safety
/// `opt` is a live optimizer; `params` is NULL or ndim floats; `hvps` is NULL or num_probes ×
/// ndim floats, not overlapping `params`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_finish_f32(
    opt: *mut LreOptimizer,
    params: *mut f32,
    hvps: *const f32,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f32("lre_optimizer_finish_f32")?;
        // SAFETY: forwarded caller contract.
        unsafe { finish(o, params, hvps) }
    })
}

/// Split step, phase two, for f64 optimizers (see `lre_optimizer_finish_f32`).
///
/// # Safety
/// As `lre_optimizer_finish_f32`, with doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_finish_f64(
    opt: *mut LreOptimizer,
    params: *mut f64,
    hvps: *const f64,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f64("lre_optimizer_finish_f64")?;
        // SAFETY: forwarded caller contract.
        unsafe { finish(o, params, hvps) }
    })
}

/// # Safety
/// `params` is NULL or ndim elements; `hvps` is NULL or num_probes × ndim elements, disjoint.
unsafe fn finish<T: Scalar>(o: Typed<'_, T>, params: *mut T, hvps: *const T) -> Result<()> {
    // Without the "cuda" feature the host is the only variant.
    #[cfg_attr(not(feature = "cuda"), allow(clippy::infallible_destructuring_match))]
    let o = match o {
        Typed::Host(o) => o,
        // SAFETY: forwarded caller contract (device pointers for a device optimizer).
        #[cfg(feature = "cuda")]
        Typed::Device(o) => return unsafe { super::device::finish(o, params, hvps) },
    };
    let n = o.ndim();
    let count = o.begun_probes()?;
    let hvps: &[T] = if count == 0 {
        &[]
    } else {
        // SAFETY: caller contract (count × n readable elements).
        unsafe { pointers::slice(hvps, count * n, "hvps") }?
    };
    check_disjoint(params, n, "params", hvps.as_ptr(), hvps.len(), "hvps")?;
    // SAFETY: caller contract (n writable elements), disjoint from `hvps` (checked).
    let params = unsafe { pointers::slice_mut(params, n, "params") }?;
    let rows: Vec<&[T]> = hvps.chunks_exact(n.max(1)).collect();
    o.finish(params, &rows)
}

/// Abandons a begun split step; nothing changes. A no-op without one.
///
/// # Safety
/// `opt` is a live optimizer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_cancel(opt: *mut LreOptimizer) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        with_optimizer!(&mut *opt, o => o.cancel());
        Ok(())
    })
}

/// A batch step: `per_sample_grads` holds `batch` rows of ndim floats (row-major), the
/// gradients of the individual samples (or residuals); `per_sample_values` holds `batch`
/// values (the residuals for gauss_newton; NULL where the curvature needs none). The curvature
/// forms the step's gradient (their sum; Jᵀr for gauss_newton) and, for empirical_fisher and
/// gauss_newton, uses the rows as its correction. `hvp` is reserved (pass NULL).
///
/// # Safety
/// `opt` is a live optimizer; `params` is NULL or ndim floats; `per_sample_grads` is NULL or
/// batch × ndim floats; `per_sample_values` is NULL or batch floats; none overlap `params`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_step_batch_f32(
    opt: *mut LreOptimizer,
    params: *mut f32,
    per_sample_grads: *const f32,
    batch: usize,
    per_sample_values: *const f32,
    hvp: HvpF32,
    user: *mut c_void,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f32("lre_optimizer_step_batch_f32")?;
        // SAFETY: forwarded caller contract.
        unsafe {
            step_batch(
                o,
                params,
                per_sample_grads,
                batch,
                per_sample_values,
                hvp,
                user,
            )
        }
    })
}

/// A batch step of an f64 optimizer (see `lre_optimizer_step_batch_f32`).
///
/// # Safety
/// As `lre_optimizer_step_batch_f32`, with doubles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_step_batch_f64(
    opt: *mut LreOptimizer,
    params: *mut f64,
    per_sample_grads: *const f64,
    batch: usize,
    per_sample_values: *const f64,
    hvp: HvpF64,
    user: *mut c_void,
) -> crate::Status {
    guard(|| {
        // SAFETY: the caller passes a live optimizer.
        let mut opt = unsafe { optimizer(opt, "opt") }?;
        let o = opt.f64("lre_optimizer_step_batch_f64")?;
        // SAFETY: forwarded caller contract.
        unsafe {
            step_batch(
                o,
                params,
                per_sample_grads,
                batch,
                per_sample_values,
                hvp,
                user,
            )
        }
    })
}

/// # Safety
/// As `lre_optimizer_step_batch_f32`.
unsafe fn step_batch<T: Scalar>(
    o: Typed<'_, T>,
    params: *mut T,
    grads: *const T,
    batch: usize,
    values: *const T,
    hvp: Hvp<T>,
    _user: *mut c_void,
) -> Result<()> {
    if hvp.is_some() {
        return Err(Error::unsupported(
            "the batch step takes no HVP callback (no curvature uses both); pass NULL",
        ));
    }
    // Without the "cuda" feature the host is the only variant.
    #[cfg_attr(not(feature = "cuda"), allow(clippy::infallible_destructuring_match))]
    let o = match o {
        Typed::Host(o) => o,
        // SAFETY: forwarded caller contract (device pointers for a device optimizer).
        #[cfg(feature = "cuda")]
        Typed::Device(o) => {
            return unsafe { super::device::step_batch(o, params, grads, batch, values) };
        }
    };
    let n = o.ndim();
    let rows_len = batch
        .checked_mul(n)
        .ok_or_else(|| Error::invalid(format!("batch = {batch} is too large")))?;
    // SAFETY: caller contract (batch × n readable elements).
    let grads = unsafe { pointers::slice(grads, rows_len, "per_sample_grads") }?;
    let values: Option<Vec<f64>> = if values.is_null() {
        None
    } else {
        // SAFETY: caller contract (batch readable elements).
        let v = unsafe { pointers::slice(values, batch, "per_sample_values") }?;
        check_disjoint(params, n, "params", v.as_ptr(), batch, "per_sample_values")?;
        Some(v.iter().map(|x| x.to_f64()).collect())
    };
    check_disjoint(
        params,
        n,
        "params",
        grads.as_ptr(),
        rows_len,
        "per_sample_grads",
    )?;
    // SAFETY: caller contract (n writable elements), disjoint from the inputs (checked).
    let params = unsafe { pointers::slice_mut(params, n, "params") }?;
    o.step_batch(params, grads, batch, values.as_deref())
}
