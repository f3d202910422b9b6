//! examples/cuda/train.cu — a C++ program that trains with cudaMalloc'd device vectors through
//! lre.hpp — is compiled and linked here by nvcc 13.0 from the PyPI wheels (the CUDA runtime
//! linked statically), against the library under test. Where there is no GPU it must fail
//! cleanly at its first CUDA call (exit status 2, the call named on stderr); on a GPU it must
//! train (exit status 0; tests/gpu/run.sh runs the copy tests/gpu/prepare.sh builds).
#![cfg(feature = "cuda")]

mod common;
#[path = "common/cuda_tools.rs"]
mod cuda_tools;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use common::linkable_library_dir;
use lre::backend::cuda::driver_present;
use process::{crate_root, run, run_ok};

#[test]
fn the_cuda_example_compiles_and_fails_cleanly_without_a_gpu() {
    let root = crate_root();
    let lib_dir = linkable_library_dir();
    let exe = std::env::temp_dir().join(format!("lre-cuda-train-{}", std::process::id()));
    run_ok(
        cuda_tools::tool("nvcc")
            .arg("-std=c++17")
            .arg(format!("-I{}", root.join("include").display()))
            .arg(format!("-I{}", root.join("bindings/cpp").display()))
            .arg(root.join("examples/cuda/train.cu"))
            .arg("-o")
            .arg(&exe)
            .arg(format!("-L{}", lib_dir.display()))
            // The wheel's static runtime (nvcc's profile looks for it in lib64).
            .arg(format!(
                "-L{}",
                cuda_tools::cuda_root().join("lib").display()
            ))
            .arg("-llre")
            .arg(format!("-Xlinker=-rpath,{}", lib_dir.display())),
        "nvcc examples/cuda/train.cu",
    );
    let output = run(std::process::Command::new(&exe).env_remove("LD_LIBRARY_PATH"));
    let _ = std::fs::remove_file(&exe);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if driver_present() {
        eprintln!("a CUDA driver is present: the example's run is left to tests/gpu/run.sh");
        return;
    }
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("cudaMalloc d: "), "{stderr}");
}
