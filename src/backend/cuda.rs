//! The CUDA device (cargo feature "cuda", on by default). cudarc loads the driver and cuBLAS at
//! run time, so building needs no CUDA toolkit and nothing CUDA is linked.
//!
//! What exists today is finding the device: [`open`] checks for the driver library, the cuBLAS
//! library (CUDA 13: `libcublas.so.13`), the device ordinal, then creates a context, a stream and
//! a cuBLAS handle on it. Each missing piece is an `LRE_ERR_DEVICE` naming it. The n-sized
//! operations of [`super::Backend`] are not implemented on the device yet, so an optimizer for a
//! device that was found is refused with `LRE_ERR_UNSUPPORTED` (see `refusal`).

use crate::error::{Error, Result, Status};
use cudarc::cublas::CudaBlas;
use cudarc::driver::CudaContext;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A device that answered.
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub memory_bytes: usize,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.compute_capability;
        write!(
            f,
            "cuda:{} ({}, compute capability {major}.{minor}, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        )
    }
}

fn device_error(message: String) -> Error {
    Error::new(Status::LRE_ERR_DEVICE, message)
}

/// Opens device `ordinal` (context, stream, cuBLAS handle) and describes it.
pub fn open(ordinal: usize) -> Result<DeviceInfo> {
    // cudarc panics (and its panic hook prints) when a library is missing, so probe first.
    // SAFETY: is_culib_present only tries to dlopen the driver's candidate names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(device_error(format!(
            "device=cuda:{ordinal}: no CUDA driver (libcuda.so could not be loaded; is the NVIDIA \
             driver installed?)"
        )));
    }
    // SAFETY: as above, for cuBLAS's candidate names.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(device_error(format!(
            "device=cuda:{ordinal}: no cuBLAS (libcublas.so.13 could not be loaded; install the CUDA \
             13 runtime libraries or add their directory to LD_LIBRARY_PATH)"
        )));
    }
    // A missing symbol in an old driver still panics inside cudarc: the second line of defence.
    catch_unwind(AssertUnwindSafe(|| query(ordinal)))
        .unwrap_or_else(|_| {
            Err(
                "the CUDA driver or cuBLAS is too old for this build (CUDA 13 is needed)"
                    .to_string(),
            )
        })
        .map_err(|why| device_error(format!("device=cuda:{ordinal}: {why}")))
}

fn query(ordinal: usize) -> std::result::Result<DeviceInfo, String> {
    let driver = |e: cudarc::driver::DriverError| format!("the CUDA driver reports {e}");
    let count = CudaContext::device_count().map_err(driver)?;
    if ordinal >= usize::try_from(count).unwrap_or(0) {
        return Err(format!("the driver sees {count} device(s)"));
    }
    let ctx = CudaContext::new(ordinal).map_err(driver)?;
    let stream = ctx.new_stream().map_err(driver)?;
    CudaBlas::new(stream).map_err(|e| format!("cuBLAS could not start: {e}"))?;
    Ok(DeviceInfo {
        ordinal,
        name: ctx.name().map_err(driver)?,
        compute_capability: ctx.compute_capability().map_err(driver)?,
        memory_bytes: ctx.total_mem().map_err(driver)?,
    })
}

/// Why an optimizer for `device=cuda:ordinal` cannot be created by this build.
pub fn refusal(ordinal: usize) -> Error {
    match open(ordinal) {
        Err(e) => e,
        Ok(device) => Error::new(
            Status::LRE_ERR_UNSUPPORTED,
            format!(
                "found {device}, but this version of LRE does not run the optimizer on a GPU yet \
                 (the CUDA backend's n-sized operations are not implemented); use device=cpu"
            ),
        ),
    }
}
