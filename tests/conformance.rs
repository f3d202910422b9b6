//! The backend conformance suite (tests/common/conformance.rs) on the CPU backend, f32 and f64,
//! with one thread and with two (the split starts above 2^16 rows per thread, so the sizes of
//! the suite run on one thread either way: the two-thread run checks that asking for threads
//! changes nothing at small sizes); and on the CUDA backend where a GPU exists
//! (tests/gpu/run.sh runs this binary there with LRE_REQUIRE_GPU=1).

mod common;
#[path = "common/conformance.rs"]
mod conformance;
#[cfg(feature = "cuda")]
#[path = "common/gpu.rs"]
mod gpu;
use common::Xorshift;

use lre::backend::Cpu;

#[test]
fn cpu_f64_conforms() {
    conformance::suite(|n| Cpu::<f64>::new(n, 1));
}

#[test]
fn cpu_f32_conforms() {
    conformance::suite(|n| Cpu::<f32>::new(n, 1));
}

#[test]
fn cpu_with_threads_conforms() {
    conformance::suite(|n| Cpu::<f32>::new(n, 2));
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_f64_conforms() {
    if let Some(device) = gpu::device() {
        conformance::suite(|n| {
            lre::backend::cuda::Cuda::<f64>::new(device.clone(), n).expect("backend")
        });
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_f32_conforms() {
    if let Some(device) = gpu::device() {
        conformance::suite(|n| {
            lre::backend::cuda::Cuda::<f32>::new(device.clone(), n).expect("backend")
        });
    }
}
