//! The CUDA kernels (src/backend/cuda/kernels.cu) compiled by the real compiler on a machine
//! without a GPU: nvcc 13.0 from the PyPI wheels writes PTX for compute capability 8.0 (which
//! must equal the committed src/backend/cuda/kernels.ptx the backend loads) and 9.0, and ptxas
//! assembles every entry point for sm_80 and sm_90, printing registers and shared memory.
//! `LRE_BLESS=1 cargo test --test cuda_kernels` rewrites the committed PTX.
#![cfg(feature = "cuda")]

#[path = "common/cuda_tools.rs"]
mod cuda_tools;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use lre::backend::cuda::{KERNELS, PTX};
use process::{crate_root, run_ok};
use std::path::PathBuf;

/// nvcc's PTX for `compute_<arch>` (fused multiply-adds only where the source asks: the
/// Gaussian stream must repeat the CPU's operations).
fn compile(arch: u32) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kernels-{arch}.ptx"));
    run_ok(
        cuda_tools::tool("nvcc")
            .arg(format!("-arch=compute_{arch}"))
            .args(["--fmad=false", "-ptx"])
            .arg(crate_root().join("src/backend/cuda/kernels.cu"))
            .arg("-o")
            .arg(&out),
        &format!("nvcc for compute_{arch}"),
    );
    out
}

/// ptxas's report (`-v`) for `ptx` assembled for `sm_<arch>`; every kernel must be in it.
fn assemble(ptx: &PathBuf, arch: u32) -> String {
    let cubin = ptx.with_extension(format!("sm_{arch}.cubin"));
    let output = process::run(
        cuda_tools::tool("ptxas")
            .arg(format!("-arch=sm_{arch}"))
            .arg("-v")
            .arg(ptx)
            .arg("-o")
            .arg(&cubin),
    );
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "ptxas sm_{arch} {}:\n{}",
        ptx.display(),
        process::report(&output)
    );
    for name in KERNELS {
        assert!(
            report.contains(&format!("entry function '{name}' for 'sm_{arch}'")),
            "ptxas sm_{arch} did not compile {name}:\n{report}"
        );
    }
    report
}

#[test]
fn committed_ptx_is_what_nvcc_makes_of_the_source() {
    let fresh = std::fs::read_to_string(compile(80)).expect("nvcc's PTX");
    let path = crate_root().join("src/backend/cuda/kernels.ptx");
    if std::env::var_os("LRE_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("writing kernels.ptx");
        return;
    }
    assert!(
        fresh == PTX,
        "src/backend/cuda/kernels.ptx is stale; regenerate it with \
         `LRE_BLESS=1 cargo test --test cuda_kernels` and commit it"
    );
    // PTX ISA 9.0 is what CUDA 13.0 drivers (580) accept; newer ISAs are refused by them.
    assert!(PTX.contains("\n.version 9.0\n"), "PTX ISA changed");
    for name in KERNELS {
        assert!(
            PTX.contains(&format!(".entry {name}(")),
            "the PTX has no kernel {name}"
        );
    }
}

#[test]
fn every_kernel_assembles_for_sm_80_and_sm_90() {
    let committed = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kernels-committed.ptx");
    std::fs::write(&committed, PTX).expect("writing the committed PTX");
    for (ptx, arch) in [(committed.clone(), 80), (committed, 90), (compile(90), 90)] {
        let report = assemble(&ptx, arch);
        println!("== ptxas -v sm_{arch} {}", ptx.display());
        for line in report
            .lines()
            .filter(|l| l.contains("Used") || l.contains("entry"))
        {
            println!("{line}");
        }
        // Spilling registers to local memory would make these memory-bound loops slower.
        let spills: Vec<&str> = report.lines().filter(|l| l.contains("spill")).collect();
        assert_eq!(
            spills.len(),
            KERNELS.len(),
            "one stack line per kernel:\n{report}"
        );
        assert!(
            spills.iter().all(|l| l.contains(" 0 bytes spill stores")),
            "a kernel spills registers:\n{report}"
        );
    }
}
