//! The CUDA 13.0 libraries from the PyPI wheels on a machine without a GPU or driver:
//! cuBLAS (with the runtime and cuBLASLt it needs) loads and exports every function the backend
//! calls (`lre::backend::cuda::CUBLAS_SYMBOLS`), and cuBLAS refuses to start cleanly without a
//! driver; with those libraries on LD_LIBRARY_PATH (so cudarc finds libcublas.so.13) but no
//! driver, `device=cuda:0` is still LRE_ERR_DEVICE naming the driver, with nothing on stderr.
#![cfg(feature = "cuda")]

#[path = "common/cuda_tools.rs"]
mod cuda_tools;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use lre::backend::cuda::{CUBLAS_SYMBOLS, cublas_present, driver_present};
use lre::{CpuOptimizer, CudaOptimizer};
use std::process::Command;

const CHILD: &str = "LRE_CUDA_LIBRARIES_TEST_CHILD";

/// Loads the libraries by path with Python's ctypes (this crate allows `unsafe` only in the
/// library), looks up each symbol, and calls cublasCreate_v2, which must fail with a status
/// rather than crash when there is no driver.
#[test]
fn the_cublas_wheel_exports_every_symbol_the_backend_calls() {
    let lib = cuda_tools::cuda_root().join("lib");
    let script = r#"
import ctypes, sys
lib = sys.argv[1]
for name in ["libcudart.so.13", "libcublasLt.so.13"]:
    ctypes.CDLL(f"{lib}/{name}", mode=ctypes.RTLD_GLOBAL)
cublas = ctypes.CDLL(f"{lib}/libcublas.so.13")
for symbol in sys.argv[2:]:
    print("SYMBOL", symbol, hasattr(cublas, symbol))
handle = ctypes.c_void_p()
print("CREATE", cublas.cublasCreate_v2(ctypes.byref(handle)))
"#;
    let out = process::run_ok(
        Command::new(cuda_tools::python())
            .args(["-c", script])
            .arg(&lib)
            .args(CUBLAS_SYMBOLS),
        "loading cuBLAS from the wheel",
    );
    for symbol in CUBLAS_SYMBOLS {
        assert!(
            out.contains(&format!("SYMBOL {symbol} True")),
            "libcublas.so.13 lacks {symbol}:\n{out}"
        );
    }
    let create = out.lines().find_map(|l| l.strip_prefix("CREATE "));
    if !driver_present() {
        // CUBLAS_STATUS_NOT_INITIALIZED: no driver to initialise.
        assert_eq!(create, Some("1"), "{out}");
    }
}

/// In a child process with the wheels' libraries on LD_LIBRARY_PATH: cudarc finds cuBLAS, and
/// creating an optimizer on cuda:0 is refused for the missing driver, silently.
#[test]
fn with_cublas_but_no_driver_the_device_is_refused_naming_the_driver() {
    if std::env::var_os(CHILD).is_some() {
        println!("CUBLAS {}", cublas_present());
        match CpuOptimizer::<f32>::from_spec("device=cuda:0", 8) {
            Ok(_) => println!("CREATED"),
            Err(e) => println!("STATUS {:?}\nMESSAGE {}", e.status, e.message),
        }
        // The GPU optimizer (what the C API creates for device=cuda:0) is refused alike.
        match CudaOptimizer::<f64>::from_spec("device=cuda:0; dtype=f64", 8) {
            Ok(_) => println!("GPU CREATED"),
            Err(e) => println!("GPU STATUS {:?}\nGPU MESSAGE {}", e.status, e.message),
        }
        return;
    }
    if driver_present() {
        return println!("this machine has a CUDA driver: tests/gpu/run.sh checks the device");
    }
    let lib = cuda_tools::cuda_root().join("lib");
    let stdout = process::rerun_silent(
        "with_cublas_but_no_driver_the_device_is_refused_naming_the_driver",
        &[(CHILD, "1".as_ref()), ("LD_LIBRARY_PATH", lib.as_os_str())],
    );
    assert!(
        stdout.contains("CUBLAS true"),
        "cudarc should find libcublas.so.13 in {}:\n{stdout}",
        lib.display()
    );
    assert!(stdout.contains("STATUS LRE_ERR_DEVICE"), "{stdout}");
    assert!(
        stdout.contains("\nMESSAGE device=cuda:0: no CUDA driver"),
        "{stdout}"
    );
    assert!(stdout.contains("GPU STATUS LRE_ERR_DEVICE"), "{stdout}");
    assert!(
        stdout.contains("GPU MESSAGE device=cuda:0: no CUDA driver"),
        "{stdout}"
    );
}
