//! The handlers of `handlers` for XLA's CUDA platform: `lre_xla_step_cuda` and
//! `lre_xla_probes_cuda` take the same operands and give the same results, but every buffer is
//! device memory. The n-sized state arrays are stepped in place on the device (lent to a
//! `CudaOptimizer`), and all work is queued on XLA's stream for the call. The small state and
//! the learning rate cross to the host once per call (the small state is parsed there), which
//! waits for the work XLA queued before the call.

use super::c_api::{self, CallFrame, XlaError};
use super::frame::{Element, Frame};
use super::handlers;
use crate::backend::cuda::{self, Device, DeviceIn, DeviceInOut};
use crate::backend::{LentMemory, Scalar};
use crate::error::{Result, Status};
use crate::optimizer::{CudaOptimizer, LentOptimizer};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Devices opened so far, by ordinal: opening loads the kernels and starts cuBLAS, far too slow
/// for every call. The lock also keeps two calls from switching one device's stream at once.
static DEVICES: Mutex<BTreeMap<u32, Arc<Device>>> = Mutex::new(BTreeMap::new());

/// One optimizer step on a GPU (see `handlers::lre_xla_step`).
///
/// # Safety
/// Called by XLA with a valid call frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_xla_step_cuda(frame: *mut CallFrame) -> *mut XlaError {
    // SAFETY: forwarded caller contract.
    unsafe { handlers::run(frame, step) }
}

/// The probe vectors of a split step on a GPU (see `handlers::lre_xla_probes`).
///
/// # Safety
/// Called by XLA with a valid call frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_xla_probes_cuda(frame: *mut CallFrame) -> *mut XlaError {
    // SAFETY: forwarded caller contract.
    unsafe { handlers::run(frame, probes) }
}

fn step(f: &Frame<'_>) -> Result<()> {
    let updates = f.num_results().saturating_sub(2);
    match f.result_dtype(updates, "updates")? {
        c_api::DTYPE_F32 => on_device(f, step_typed::<f32>),
        c_api::DTYPE_F64 => on_device(f, step_typed::<f64>),
        other => Err(handlers::wrong_float("updates", other)),
    }
}

fn probes(f: &Frame<'_>) -> Result<()> {
    let probes = f.num_results().saturating_sub(1);
    match f.result_dtype(probes, "probes")? {
        c_api::DTYPE_F32 => on_device(f, probes_typed::<f32>),
        c_api::DTYPE_F64 => on_device(f, probes_typed::<f64>),
        other => Err(handlers::wrong_float("probes", other)),
    }
}

/// Runs `body` on the call's device with its work queued on XLA's stream; the device's own
/// stream is set again afterwards (waiting for the call's work), so no stream of XLA's is kept
/// beyond the call.
fn on_device(f: &Frame<'_>, body: fn(&Frame<'_>, &Arc<Device>, u32) -> Result<()>) -> Result<()> {
    let ordinal = f.device_ordinal()?;
    let stream = f.stream()?;
    let mut devices = DEVICES.lock().unwrap_or_else(PoisonError::into_inner);
    let device = match devices.get(&ordinal) {
        Some(device) => Arc::clone(device),
        None => {
            let (device, _) = cuda::open(ordinal as usize)?;
            devices.insert(ordinal, Arc::clone(&device));
            device
        }
    };
    device.set_stream(stream.cast())?;
    let done = body(f, &device, ordinal);
    device.set_stream(std::ptr::null_mut())?;
    done
}

/// The call's optimizer, its lent arrays being results 1..=L (holding arguments 1..=L), the
/// number of arrays and the state buffer's (address, capacity).
fn lent_optimizer<T: Scalar + Element>(
    f: &Frame<'_>,
    device: &Arc<Device>,
    ordinal: u32,
) -> Result<(CudaOptimizer<T>, usize, (u64, usize))> {
    let (state, capacity) = f.arg_address::<u8>(0, "state", None)?;
    let mut host = vec![0u8; capacity];
    device.download(&mut host, state);
    let small = handlers::small_state(&host)?;
    let names = LentOptimizer::<T>::lent_names(small)?;
    let lent = names
        .iter()
        .enumerate()
        .map(|(i, name)| result_from_arg::<T>(f, device, 1 + i, name))
        .collect::<Result<Vec<_>>>()?;
    let opt = CudaOptimizer::<T>::from_lent_on(Arc::clone(device), ordinal, small, lent)?;
    Ok((opt, names.len(), (state, capacity)))
}

/// Result `i`, holding argument `i` (copied on the device unless XLA aliased them), as lent
/// memory.
fn result_from_arg<T: Element>(
    f: &Frame<'_>,
    device: &Device,
    i: usize,
    name: &str,
) -> Result<LentMemory> {
    let (output, len) = f.result_address::<T>(i, name, None)?;
    let (input, _) = f.arg_address::<T>(i, name, Some(len))?;
    let bytes = len * size_of::<T>();
    device.copy(output, input, bytes);
    Ok(LentMemory::Device {
        address: output,
        bytes,
    })
}

/// A caller vector of n values at a device address of the call.
fn input<'f, T>(address: u64, n: usize) -> DeviceIn<'f, T> {
    // SAFETY: every address given here is an XLA buffer of this call on this device, checked
    // to hold n values of T, and read only while the call runs.
    unsafe { DeviceIn::from_raw(address as *const T, n) }
}

fn step_typed<T: Scalar + Element>(
    f: &Frame<'_>,
    device: &Arc<Device>,
    ordinal: u32,
) -> Result<()> {
    let (mut opt, lent, (state, capacity)) = lent_optimizer::<T>(f, device, ordinal)?;
    let n = opt.ndim();
    let bytes = n * size_of::<T>();
    let (grads, _) = f.arg_address::<T>(1 + lent, "grads", Some(n))?;
    let (params, _) = f.arg_address::<T>(2 + lent, "params", Some(n))?;
    opt.set_lr(learning_rate(f, device, 3 + lent)?)?;
    handlers::check_capacity(opt.small_bound()?, capacity)?;
    let (updates, _) = f.result_address::<T>(1 + lent, "updates", Some(n))?;
    // The parameters are stepped in the updates result, which aliases no argument.
    device.copy(updates, params, bytes);
    // SAFETY: `updates` is a result of this call holding n values of T, written only here.
    let stepped_params = || unsafe { DeviceInOut::from_raw(updates as *mut T, n) };
    let stepped = if f.num_args() > 4 + lent {
        let (hvps, len) = f.arg_address::<T>(4 + lent, "hvps", None)?;
        opt.begin(input(grads, n)).and_then(|count| {
            handlers::check_rows("hvps", len, n, count)?;
            let rows: Vec<_> = (0..count)
                .map(|r| input(hvps + (r * bytes) as u64, n))
                .collect();
            opt.finish(stepped_params(), &rows)
        })
    } else {
        opt.step(stepped_params(), input(grads, n))
    };
    let skipped = match stepped {
        Ok(()) => {
            let small = opt.small_state();
            let backend = opt.backend().clone();
            drop(opt);
            let mut framed = vec![0u8; capacity];
            handlers::frame_small(&small, &mut framed);
            let (out, _) = f.result_address::<u8>(0, "state", Some(capacity))?;
            device.upload(out, &framed);
            backend.subtract(input(params, n), stepped_params());
            false
        }
        // As on the CPU: a skipped step leaves the state as it was and returns zero updates.
        Err(e) if e.status == Status::LRE_ERR_NUMERICAL => {
            drop(opt);
            let (out, _) = f.result_address::<u8>(0, "state", Some(capacity))?;
            device.copy(out, state, capacity);
            device.clear(updates, bytes);
            true
        }
        Err(e) => return Err(e),
    };
    let (flag, _) = f.result_address::<i32>(2 + lent, "skipped", Some(1))?;
    device.upload(flag, &[i32::from(skipped)]);
    Ok(())
}

fn probes_typed<T: Scalar + Element>(
    f: &Frame<'_>,
    device: &Arc<Device>,
    ordinal: u32,
) -> Result<()> {
    let (mut opt, lent, (state, capacity)) = lent_optimizer::<T>(f, device, ordinal)?;
    let n = opt.ndim();
    let bytes = n * size_of::<T>();
    let (out, out_len) = f.result_address::<T>(1 + lent, "probes", None)?;
    let written = f
        .arg_address::<T>(1 + lent, "grads", Some(n))
        .and_then(|(grads, _)| match opt.begin(input(grads, n)) {
            Err(e) if e.status == Status::LRE_ERR_NUMERICAL => Ok(0),
            other => other,
        })
        .and_then(|count| {
            handlers::check_rows("probes", out_len, n, count)?;
            for i in 0..count {
                device.copy(out + (i * bytes) as u64, opt.probe(i)?.ptr, bytes);
            }
            let rest = out + (count * bytes) as u64;
            device.clear(rest, out_len * size_of::<T>() - count * bytes);
            Ok(())
        });
    opt.cancel();
    drop(opt);
    let (state_out, _) = f.result_address::<u8>(0, "state", Some(capacity))?;
    device.copy(state_out, state, capacity);
    written
}

/// The learning rate (argument `at`, a float32 or float64 scalar on the device).
fn learning_rate(f: &Frame<'_>, device: &Device, at: usize) -> Result<f64> {
    match f.arg_dtype(at, "learning_rate")? {
        c_api::DTYPE_F32 => {
            let (address, _) = f.arg_address::<f32>(at, "learning_rate", Some(1))?;
            let mut lr = [0f32];
            device.download(&mut lr, address);
            Ok(f64::from(lr[0]))
        }
        c_api::DTYPE_F64 => {
            let (address, _) = f.arg_address::<f64>(at, "learning_rate", Some(1))?;
            let mut lr = [0f64];
            device.download(&mut lr, address);
            Ok(lr[0])
        }
        other => Err(handlers::wrong_float("learning_rate", other)),
    }
}
