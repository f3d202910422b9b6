//! The GPU check's two scripts stay runnable: tests/gpu/prepare.sh (here: builds and collects
//! the test binaries) and tests/gpu/run.sh (on the GPU machine, which has no Rust toolchain:
//! runs only what was collected). Both parse; every binary listed in tests/gpu/binaries.txt is
//! a test of this crate; run.sh never calls cargo; a collection made by prepare.sh is under the
//! 64 MiB the device tool carries; the GPU kernel check's numpy reference is the Rust stream;
//! the JAX GPU step check (tests/gpu/jax_step.py) passes on JAX's CPU platform.

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use process::{crate_root, run_ok};
use std::process::Command;

const LIMIT: u64 = 64 << 20;

fn script(name: &str) -> String {
    let path = crate_root().join("tests/gpu").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn both_scripts_parse() {
    for name in ["prepare.sh", "run.sh"] {
        run_ok(
            Command::new("bash")
                .arg("-n")
                .arg(crate_root().join("tests/gpu").join(name)),
            name,
        );
    }
}

#[test]
fn the_listed_binaries_are_tests_and_run_sh_needs_no_cargo() {
    let listed: Vec<String> = script("binaries.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!listed.is_empty(), "tests/gpu/binaries.txt lists nothing");
    for name in &listed {
        assert!(
            crate_root().join(format!("tests/{name}.rs")).is_file(),
            "tests/gpu/binaries.txt: no tests/{name}.rs"
        );
    }
    let code = script("run.sh");
    let calls_cargo = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| {
            l.split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "cargo")
        });
    assert!(
        !calls_cargo,
        "run.sh must not call cargo (no Rust on the GPU machine)"
    );
    assert!(
        code.contains("tests/gpu/binaries.txt"),
        "run.sh runs the listed binaries"
    );
}

#[test]
fn a_collection_fits_what_the_device_tool_carries() {
    let bin = crate_root().join("tests/gpu/bin");
    let Ok(entries) = std::fs::read_dir(&bin) else {
        // Not prepared on this machine: prepare.sh itself refuses a collection over the limit.
        assert!(script("prepare.sh").contains("64 * 1024 * 1024"));
        return;
    };
    let size: u64 = entries
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert!(
        size < LIMIT,
        "tests/gpu/bin holds {size} bytes, over 64 MiB"
    );
}

/// tests/gpu/kernels.py judges the GPU's Gaussian columns by its own numpy copy of the stream:
/// that copy must give the Rust stream (`lre::backend::normal`) to within 1e-14.
#[test]
fn the_gpu_checks_gaussian_reference_is_the_rust_stream() {
    let python = setup::python_env("python-env", "bindings/python/requirements-test.txt");
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
import kernels
for stream in range(3):
    column = kernels.normal_column(kernels.stream_base(0xFEED, stream), 1001)
    print(" ".join(repr(float(v)) for v in column))
"#;
    let out = run_ok(
        Command::new(python.join("python"))
            .args(["-c", script])
            .arg(crate_root().join("tests/gpu")),
        "the numpy Gaussian stream",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (stream, line) in lines.iter().enumerate() {
        for (i, v) in line.split(' ').enumerate() {
            let numpy: f64 = v.parse().expect("a number");
            let rust = lre::backend::normal::normal(0xFEED, stream as u64, i as u64);
            assert!(
                (numpy - rust).abs() <= 1e-14 * (1.0 + rust.abs()),
                "stream {stream} entry {i}: numpy {numpy}, Rust {rust}"
            );
        }
    }
}

/// tests/gpu/jax_step.py, run here on JAX's CPU platform against this run's library, passes
/// every configuration (so on the GPU machine only the platform differs); without the platform
/// it asks for, it says so and exits 2.
#[test]
fn the_jax_gpu_check_passes_on_the_cpu_platform() {
    let python = setup::python_env("python-env", "bindings/python/requirements-test.txt");
    let run = |platform: &str| {
        process::run(
            Command::new(python.join("python"))
                .arg(crate_root().join("tests/gpu/jax_step.py"))
                .env("LRE_JAX_PLATFORM", platform)
                .env("LRE_LIBRARY", common::library_dir().join("liblre.so"))
                .env("PYTHONPATH", crate_root().join("bindings/python/src")),
        )
    };
    let cpu = run("cpu");
    let out = String::from_utf8_lossy(&cpu.stdout);
    assert!(cpu.status.success(), "{}", process::report(&cpu));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("PASS")).count(),
        6,
        "{out}"
    );
    let missing = run("rocm");
    assert_eq!(
        missing.status.code(),
        Some(2),
        "{}",
        process::report(&missing)
    );
    assert!(String::from_utf8_lossy(&missing.stdout).starts_with("NOT RUN"));
}
