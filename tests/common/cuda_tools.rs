//! NVIDIA's CUDA 13.0 compiler and libraries from PyPI wheels (src/backend/cuda/requirements.txt),
//! in a virtual environment under target/tmp that the test setup creates: nvcc, ptxas and the
//! cuBLAS/runtime libraries work on a machine without a GPU. Included with
//! `#[path = "common/cuda_tools.rs"] mod cuda_tools;` next to `process` and `setup`.
#![allow(dead_code)]

use crate::setup::python_env;
use std::path::PathBuf;

fn env_bin() -> PathBuf {
    python_env("cuda-env", "src/backend/cuda/requirements.txt")
}

/// The virtual environment's Python (its ctypes loads the wheels' libraries by path).
pub fn python() -> PathBuf {
    env_bin().join("python")
}

/// The wheels' CUDA directory (`…/site-packages/nvidia/cu13`: bin, lib, include, nvvm).
pub fn cuda_root() -> PathBuf {
    let lib = env_bin().parent().expect("venv").join("lib");
    let python = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
        })
        .expect("the venv's lib/python3.x");
    let root = python.join("site-packages/nvidia/cu13");
    assert!(root.join("bin").is_dir(), "{} has no bin", root.display());
    root
}

/// A command line tool of the wheels (nvcc, ptxas), with their bin directory first on PATH
/// (nvcc finds cicc, ptxas and its other parts there).
pub fn tool(name: &str) -> std::process::Command {
    let bin = cuda_root().join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = std::process::Command::new(bin.join(name));
    cmd.env("PATH", std::env::join_paths(dirs).expect("PATH"));
    cmd
}
