//! `device=cuda:N` where it cannot run: a clear error naming what is missing (the driver, cuBLAS,
//! the device), no panic and nothing printed, for the CPU-side optimizer (the C API's) and the
//! GPU one alike; a build without the "cuda" feature says so. Where the device is found, the
//! GPU optimizer is created and the CPU-side one is told to use it.
//! `cargo test --no-default-features --test device` checks the build without the feature.

#[path = "common/process.rs"]
mod process;

use lre::{CpuOptimizer, Status};

const CHILD: &str = "LRE_DEVICE_TEST_CHILD";

/// Runs in a child process (so its stderr can be checked): creates the optimizer and prints the
/// status and message.
#[test]
fn cuda_device_is_refused_clearly_and_silently() {
    if std::env::var_os(CHILD).is_some() {
        match CpuOptimizer::<f32>::from_spec("device=cuda:0", 8) {
            Ok(_) => println!("CREATED"),
            Err(e) => println!("STATUS {:?}\nMESSAGE {}", e.status, e.message),
        }
        #[cfg(feature = "cuda")]
        match lre::CudaOptimizer::<f32>::from_spec("device=cuda:0", 8) {
            Ok(_) => println!("GPU CREATED"),
            Err(e) => println!("GPU STATUS {:?}\nGPU MESSAGE {}", e.status, e.message),
        }
        return;
    }
    let stdout = process::rerun_silent(
        "cuda_device_is_refused_clearly_and_silently",
        &[(CHILD, "1".as_ref())],
    );
    let status = stdout.lines().find_map(|l| l.strip_prefix("STATUS "));
    let message = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MESSAGE "))
        .unwrap_or("");
    if cfg!(not(feature = "cuda")) {
        assert_eq!(status, Some("LRE_ERR_DEVICE"), "{stdout}");
        assert!(message.contains("not compiled"), "{message}");
    } else if status == Some("LRE_ERR_UNSUPPORTED") {
        // A GPU machine: the device was found and described, and the GPU optimizer created.
        assert!(message.contains("found cuda:0 ("), "{message}");
        assert!(stdout.contains("GPU CREATED"), "{stdout}");
    } else {
        // The GPU optimizer is refused exactly as the CPU-side one.
        assert!(
            stdout.contains(&format!("GPU MESSAGE {message}")),
            "{stdout}"
        );
        assert_eq!(status, Some("LRE_ERR_DEVICE"), "{stdout}");
        let named = [
            "no CUDA driver",
            "no cuBLAS",
            "device(s)",
            "CUDA driver reports",
        ];
        assert!(
            named.iter().any(|what| message.contains(what)),
            "the message should say what is missing: {message}"
        );
    }
}

/// The refusal happens again, identically, on a second try (cudarc's failed library load must
/// not turn into a panic the second time).
#[test]
fn the_refusal_is_repeatable() {
    let first = CpuOptimizer::<f64>::from_spec("device=cuda:1; dtype=f64", 4).err();
    let second = CpuOptimizer::<f64>::from_spec("device=cuda:1; dtype=f64", 4).err();
    let (first, second) = (first.expect("refused"), second.expect("refused"));
    assert_eq!(first.status, second.status);
    assert_eq!(first.message, second.message);
    assert_ne!(first.status, Status::LRE_ERR_PANIC);
    assert!(first.message.contains("cuda:1"), "{}", first.message);
}
