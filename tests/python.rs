//! The Python binding (bindings/python): installs the pinned test requirements into a virtual
//! environment under target/, checks the Rust mirror of XLA's FFI C API against the installed
//! jaxlib's header, installs the package with `pip install ./bindings/python` (bundling the
//! library this test run built) and runs its pytest suite (lre.core and lre.jax), and builds the
//! sdist and the wheel, which installs and passes lre.core's tests without Rust. lre.torch's
//! tests and example run in a second environment holding PyTorch.

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use common::library_dir;
use lre::ffi::xla::c_api;
use process::{crate_root, run_ok, scratch_dir};
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Held while a test builds the package: setuptools writes build/ and src/lre.egg-info/ inside
/// bindings/python, which two builds at once would share.
static PACKAGE_BUILD: Mutex<()> = Mutex::new(());

/// The virtual environment's python, with the pinned test requirements.
fn python() -> PathBuf {
    setup::python_env("python-env", "bindings/python/requirements-test.txt").join("python")
}

/// The PyTorch environment's python (bindings/python/requirements-torch.txt). Its first setup
/// downloads about 4 GB (PyPI's torch wheel and the CUDA packages it needs to import); later runs
/// reuse it.
fn torch_python() -> PathBuf {
    setup::python_env("torch-env", "bindings/python/requirements-torch.txt").join("python")
}

/// Runs `python script args…` in `dir` with this run's library and the package's source tree;
/// returns what it printed.
fn run_script(python: PathBuf, script: &Path, args: &[&str], dir: &Path) -> String {
    run_ok(
        Command::new(python)
            .arg(script)
            .args(args)
            .current_dir(dir)
            .env("LRE_LIBRARY", library_dir().join("liblre.so"))
            .env("PYTHONPATH", crate_root().join("bindings/python/src")),
        &format!("{} {}", script.display(), args.join(" ")),
    )
}

/// Runs the first Python block of the README's `section` in `dir`: what it printed, and the
/// numbers after "loss " on its lines.
fn run_readme_block(python: PathBuf, section: &str, dir: &Path) -> (String, Vec<f64>) {
    let script = dir.join("example.py");
    std::fs::write(&script, process::readme_block(section, "python")).unwrap();
    let printed = run_script(python, &script, &[], dir);
    let losses = printed
        .lines()
        .filter_map(|line| line.rsplit_once("loss ")?.1.trim().parse().ok())
        .collect();
    (printed, losses)
}

/// `python -m pip install`, quietly.
fn pip_install(python: &Path) -> Command {
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    pip
}

/// Every size, offset and constant of tests/c/xla_layout.c, from the C compiler, equals the
/// Rust mirror's.
#[test]
fn xla_ffi_mirror_matches_the_installed_jaxlib_header() {
    let include = run_ok(
        Command::new(python()).args(["-c", "import jax.ffi; print(jax.ffi.include_dir())"]),
        "finding jaxlib's include directory",
    );
    let dir = scratch_dir("xla-layout");
    let exe = dir.join("xla_layout");
    run_ok(
        Command::new("gcc")
            .args([
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-I",
                include.trim(),
            ])
            .arg(crate_root().join("tests/c/xla_layout.c"))
            .arg("-o")
            .arg(&exe),
        "compiling tests/c/xla_layout.c",
    );
    let printed = run_ok(&mut Command::new(&exe), "running xla_layout");
    let expected: Vec<(&str, usize)> = vec![
        (
            "sizeof(XLA_FFI_Extension_Base)",
            size_of::<c_api::ExtensionBase>(),
        ),
        (
            "XLA_FFI_Extension_Base.type",
            offset_of!(c_api::ExtensionBase, kind),
        ),
        (
            "XLA_FFI_Extension_Base.next",
            offset_of!(c_api::ExtensionBase, next),
        ),
        (
            "sizeof(XLA_FFI_Api_Version)",
            size_of::<c_api::ApiVersion>(),
        ),
        (
            "XLA_FFI_Api_Version.major_version",
            offset_of!(c_api::ApiVersion, major_version),
        ),
        (
            "XLA_FFI_Api_Version.minor_version",
            offset_of!(c_api::ApiVersion, minor_version),
        ),
        (
            "sizeof(XLA_FFI_Error_Create_Args)",
            size_of::<c_api::ErrorCreateArgs>(),
        ),
        (
            "XLA_FFI_Error_Create_Args.message",
            offset_of!(c_api::ErrorCreateArgs, message),
        ),
        (
            "XLA_FFI_Error_Create_Args.errc",
            offset_of!(c_api::ErrorCreateArgs, errc),
        ),
        ("sizeof(XLA_FFI_Buffer)", size_of::<c_api::Buffer>()),
        ("XLA_FFI_Buffer.dtype", offset_of!(c_api::Buffer, dtype)),
        ("XLA_FFI_Buffer.data", offset_of!(c_api::Buffer, data)),
        ("XLA_FFI_Buffer.rank", offset_of!(c_api::Buffer, rank)),
        ("XLA_FFI_Buffer.dims", offset_of!(c_api::Buffer, dims)),
        ("sizeof(XLA_FFI_Args)", size_of::<c_api::Operands>()),
        ("XLA_FFI_Args.size", offset_of!(c_api::Operands, size)),
        ("XLA_FFI_Args.types", offset_of!(c_api::Operands, types)),
        ("XLA_FFI_Args.args", offset_of!(c_api::Operands, items)),
        ("sizeof(XLA_FFI_Rets)", size_of::<c_api::Operands>()),
        ("XLA_FFI_Rets.rets", offset_of!(c_api::Operands, items)),
        ("sizeof(XLA_FFI_Attrs)", size_of::<c_api::Attrs>()),
        ("XLA_FFI_Attrs.attrs", offset_of!(c_api::Attrs, attrs)),
        ("sizeof(XLA_FFI_CallFrame)", size_of::<c_api::CallFrame>()),
        ("XLA_FFI_CallFrame.api", offset_of!(c_api::CallFrame, api)),
        (
            "XLA_FFI_CallFrame.stage",
            offset_of!(c_api::CallFrame, stage),
        ),
        ("XLA_FFI_CallFrame.args", offset_of!(c_api::CallFrame, args)),
        ("XLA_FFI_CallFrame.rets", offset_of!(c_api::CallFrame, rets)),
        (
            "XLA_FFI_CallFrame.attrs",
            offset_of!(c_api::CallFrame, attrs),
        ),
        (
            "XLA_FFI_CallFrame.future",
            offset_of!(c_api::CallFrame, future),
        ),
        ("sizeof(XLA_FFI_Metadata)", size_of::<c_api::Metadata>()),
        (
            "XLA_FFI_Metadata.api_version",
            offset_of!(c_api::Metadata, api_version),
        ),
        (
            "XLA_FFI_Metadata.traits",
            offset_of!(c_api::Metadata, traits),
        ),
        (
            "XLA_FFI_Metadata.state_type_id",
            offset_of!(c_api::Metadata, state_type_id),
        ),
        (
            "sizeof(XLA_FFI_Metadata_Extension)",
            size_of::<c_api::MetadataExtension>(),
        ),
        (
            "XLA_FFI_Metadata_Extension.metadata",
            offset_of!(c_api::MetadataExtension, metadata),
        ),
        (
            "XLA_FFI_Api.api_version",
            offset_of!(c_api::Api, api_version),
        ),
        (
            "XLA_FFI_Api.internal_api",
            offset_of!(c_api::Api, internal_api),
        ),
        (
            "XLA_FFI_Api.XLA_FFI_Error_Create",
            offset_of!(c_api::Api, error_create),
        ),
        (
            "XLA_FFI_Api.XLA_FFI_Stream_Get",
            offset_of!(c_api::Api, stream_get),
        ),
        (
            "XLA_FFI_Api.XLA_FFI_DeviceOrdinal_Get",
            offset_of!(c_api::Api, device_ordinal_get),
        ),
        ("sizeof(XLA_FFI_Api)", size_of::<c_api::Api>()),
        (
            "sizeof(XLA_FFI_Stream_Get_Args)",
            size_of::<c_api::StreamGetArgs>(),
        ),
        (
            "XLA_FFI_Stream_Get_Args.ctx",
            offset_of!(c_api::StreamGetArgs, ctx),
        ),
        (
            "XLA_FFI_Stream_Get_Args.stream",
            offset_of!(c_api::StreamGetArgs, stream),
        ),
        (
            "sizeof(XLA_FFI_DeviceOrdinal_Get_Args)",
            size_of::<c_api::DeviceOrdinalGetArgs>(),
        ),
        (
            "XLA_FFI_DeviceOrdinal_Get_Args.ctx",
            offset_of!(c_api::DeviceOrdinalGetArgs, ctx),
        ),
        (
            "XLA_FFI_DeviceOrdinal_Get_Args.device_ordinal",
            offset_of!(c_api::DeviceOrdinalGetArgs, device_ordinal),
        ),
        ("XLA_FFI_API_MAJOR", c_api::API_MAJOR as usize),
        ("XLA_FFI_API_MINOR", c_api::API_MINOR as usize),
        ("Metadata", c_api::EXTENSION_METADATA as usize),
        ("EXECUTE", c_api::STAGE_EXECUTE as usize),
        ("BUFFER", c_api::BUFFER as usize),
        ("S32", c_api::DTYPE_S32 as usize),
        ("U8", c_api::DTYPE_U8 as usize),
        ("F32", c_api::DTYPE_F32 as usize),
        ("F64", c_api::DTYPE_F64 as usize),
        ("INVALID_ARGUMENT", c_api::ERROR_INVALID_ARGUMENT as usize),
        (
            "FAILED_PRECONDITION",
            c_api::ERROR_FAILED_PRECONDITION as usize,
        ),
        ("UNIMPLEMENTED", c_api::ERROR_UNIMPLEMENTED as usize),
        ("INTERNAL", c_api::ERROR_INTERNAL as usize),
    ];
    let from_c: Vec<(String, usize)> = printed
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            (name.to_string(), value.parse().expect("a number"))
        })
        .collect();
    let mismatches: Vec<String> = expected
        .iter()
        .zip(&from_c)
        .filter(|((rust_name, rust), (c_name, c))| rust_name != c_name || rust != c)
        .map(|((rn, r), (cn, c))| format!("{rn} = {r} in Rust, {cn} = {c} in C"))
        .collect();
    assert_eq!(expected.len(), from_c.len(), "lines printed:\n{printed}");
    assert!(
        mismatches.is_empty(),
        "layout differs:\n{}",
        mismatches.join("\n")
    );
}

/// `pip install ./bindings/python` bundles the library, which the installed package then finds
/// on its own; the pytest suite passes against this run's library.
#[test]
fn python_package_installs_and_its_tests_pass() {
    let library = library_dir().join("liblre.so");
    let python = python();
    let building = PACKAGE_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    run_ok(
        pip_install(&python)
            .args(["--force-reinstall", "--no-deps", "--no-build-isolation"])
            .arg(crate_root().join("bindings/python"))
            .env("LRE_LIBRARY", &library),
        "pip install ./bindings/python",
    );
    drop(building);
    let outside = scratch_dir("python-installed");
    let found = run_ok(
        Command::new(&python)
            .args([
                "-c",
                "import lre, lre.jax; print(lre.version(), lre._library.load()._name)",
            ])
            .current_dir(&outside)
            .env_remove("LRE_LIBRARY"),
        "importing the installed package",
    );
    assert!(
        found.contains("site-packages/lre/liblre.so"),
        "the installed package should use its bundled library: {found}"
    );
    run_ok(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--ignore"])
            .arg(crate_root().join(TORCH_TESTS))
            .arg("--ignore")
            .arg(crate_root().join(JAX_SHARDED_TESTS))
            .arg(crate_root().join("bindings/python/tests"))
            .env("LRE_LIBRARY", &library),
        "pytest bindings/python/tests (all but lre.torch's)",
    );
}

/// lre.jax_sharded's tests, which need 4 simulated devices: jax reads the device count when it is
/// first imported, so they run in a pytest process of their own, from the source tree.
const JAX_SHARDED_TESTS: &str = "bindings/python/tests/test_jax_sharded.py";

/// lre.jax_sharded's pytest suite passes: shard_map over 2 and 4 CPU devices gives the unsharded
/// lre.jax trajectory.
#[test]
fn jax_sharded_tests_pass() {
    run_ok(
        Command::new(python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(crate_root().join(JAX_SHARDED_TESTS))
            .env("LRE_LIBRARY", library_dir().join("liblre.so"))
            .env("PYTHONPATH", crate_root().join("bindings/python/src")),
        "pytest bindings/python/tests/test_jax_sharded.py",
    );
}

/// The README's sharded JAX example (4 simulated devices, set by the example itself) runs and
/// converges.
#[test]
fn readme_jax_sharded_example_runs() {
    let dir = scratch_dir("readme-jax-sharded");
    let (printed, losses) = run_readme_block(python(), "## Sharded training", &dir);
    assert_eq!(losses.len(), 2, "two losses expected:\n{printed}");
    assert!(losses[0] > 10.0 && losses[1] < 1e-4, "{printed}");
}

/// lre.torch's tests, which need PyTorch: run in its own environment, from the source tree.
const TORCH_TESTS: &str = "bindings/python/tests/test_torch.py";

/// lre.torch's pytest suite passes (bit for bit against lre.core, state exchange with C++).
#[test]
fn torch_tests_pass() {
    run_ok(
        Command::new(torch_python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(crate_root().join(TORCH_TESTS))
            .env("LRE_LIBRARY", library_dir().join("liblre.so")),
        "pytest bindings/python/tests/test_torch.py",
    );
}

/// examples/torch/compare_adam.py runs end to end (--quick: 20 steps, one learning rate) and
/// prints a row per optimizer.
#[test]
fn torch_adam_comparison_example_runs() {
    quick_run_prints_a_row_per_optimizer(torch_python(), "examples/torch/compare_adam.py");
}

/// examples/jax/digits.py runs end to end (a seconds-long smoke run: every optimizer, the
/// table; the full run is documented in examples/jax/README.md).
#[test]
fn jax_digits_example_runs() {
    quick_run_prints_a_row_per_optimizer(python(), "examples/jax/digits.py");
}

/// `example --quick` passes and prints table rows for Adam and for LRE.
fn quick_run_prints_a_row_per_optimizer(python: PathBuf, example: &str) {
    let table = run_script(
        python,
        &crate_root().join(example),
        &["--quick"],
        crate_root(),
    );
    assert!(
        table.contains("| adam") && table.contains("| lre("),
        "{example} should print a row per optimizer:\n{table}"
    );
}

/// The README's JAX example runs and both of its optimizers solve the least-squares problem.
#[test]
fn readme_jax_example_runs() {
    let dir = scratch_dir("readme-jax");
    let (printed, losses) = run_readme_block(python(), "## Python and JAX", &dir);
    assert_eq!(losses.len(), 2, "two losses expected:\n{printed}");
    assert!(losses.iter().all(|&l| l < 1e-6), "{printed}");
    assert!(
        dir.join("lre.state").is_file(),
        "the example saves the state"
    );
}

/// The README's PyTorch example runs, each optimizer lowers the loss, and it saves its state.
#[test]
fn readme_torch_example_runs() {
    let dir = scratch_dir("readme-torch");
    let (printed, losses) = run_readme_block(torch_python(), "## PyTorch", &dir);
    assert_eq!(losses.len(), 3, "three losses expected:\n{printed}");
    assert!(
        losses[1] < 0.5 * losses[0] && losses[2] <= losses[1],
        "{printed}"
    );
    assert!(dir.join("lre.pt").is_file(), "the example saves the state");
}

/// The one documented build command, `python -m build bindings/python`, makes an sdist that
/// carries the Rust crate and, from that sdist, a `py3-none-manylinux_*` wheel bundling the
/// library (here this run's library, through LRE_LIBRARY, instead of a release build).
/// auditwheel agrees with the wheel's platform tag; the sdist's crate is complete (cargo
/// resolves it offline from its own lock file); the wheel installs into a fresh virtual
/// environment with no Rust on PATH, where lre.core's tests pass against the bundled library.
#[test]
fn wheel_installs_without_rust_and_its_core_tests_pass() {
    let dir = scratch_dir("python-wheel");
    // The release profile has no debug info; this run's library does (160 MB): strip a copy.
    let library = dir.join("liblre.so");
    run_ok(
        Command::new("strip")
            .args(["--strip-debug", "-o"])
            .arg(&library)
            .arg(library_dir().join("liblre.so")),
        "strip --strip-debug liblre.so",
    );
    let dist = dir.join("dist");
    let building = PACKAGE_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    run_ok(
        Command::new(python())
            .args(["-m", "build", "--no-isolation", "--outdir"])
            .arg(&dist)
            .arg(crate_root().join("bindings/python"))
            .env("LRE_LIBRARY", &library),
        "python -m build bindings/python",
    );
    drop(building);
    let built = |suffix: &str| -> PathBuf {
        let found: Vec<PathBuf> = std::fs::read_dir(&dist)
            .expect("the dist folder")
            .map(|entry| entry.expect("a dist entry").path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        assert_eq!(found.len(), 1, "one {suffix} expected: {found:?}");
        found[0].clone()
    };
    let (wheel, sdist) = (built(".whl"), built(".tar.gz"));

    let wheel_name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let version = env!("CARGO_PKG_VERSION");
    let prefix = format!("lre-{version}-py3-none-manylinux_");
    assert!(
        wheel_name.starts_with(&prefix),
        "wheel {wheel_name}: expected {prefix}*"
    );
    let platform = wheel_name
        .trim_end_matches(".whl")
        .rsplit('-')
        .next()
        .unwrap();
    let shown = run_ok(
        Command::new(python())
            .args(["-m", "auditwheel", "show"])
            .arg(&wheel),
        "auditwheel show",
    );
    let shown = shown.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        shown.contains(&format!(
            "consistent with the following platform tag: \"{platform}\""
        )),
        "auditwheel does not confirm the tag {platform}: {shown}"
    );

    run_ok(
        Command::new("tar")
            .arg("xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&dir),
        "unpacking the sdist",
    );
    let crate_copy = dir.join(format!("lre-{version}")).join("rust");
    let missing: Vec<PathBuf> = files_under(&crate_root().join("src"))
        .into_iter()
        .filter_map(|p| p.strip_prefix(crate_root()).ok().map(Path::to_path_buf))
        .filter(|relative| !crate_copy.join(relative).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the sdist lacks crate files: {missing:?}"
    );
    run_ok(
        Command::new(env!("CARGO"))
            .args(["fetch", "--locked", "--offline", "--manifest-path"])
            .arg(crate_copy.join("Cargo.toml")),
        "cargo fetch on the sdist's crate",
    );

    // A fresh environment whose PATH has no cargo or rustc.
    let venv = dir.join("venv");
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "creating a fresh virtual environment",
    );
    let mut path = vec![venv.join("bin")];
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    path.extend(
        std::env::split_paths(&inherited)
            .filter(|d| !d.join("cargo").exists() && !d.join("rustc").exists()),
    );
    let without_rust = |cmd: &mut Command| {
        cmd.env("PATH", std::env::join_paths(&path).expect("a PATH"))
            .env_remove("LRE_LIBRARY")
            .env_remove("CARGO")
            .env_remove("RUSTUP_HOME")
            .env_remove("CARGO_HOME")
            .current_dir(&dir);
    };
    let fresh = venv.join("bin").join("python");
    let mut install = pip_install(&fresh);
    install
        .arg("-c")
        .arg(crate_root().join("bindings/python/requirements-test.txt"))
        .arg(&wheel)
        .arg("pytest");
    without_rust(&mut install);
    run_ok(
        &mut install,
        "pip install the wheel (and pytest) without Rust",
    );
    let mut check = Command::new(&fresh);
    check.args([
        "-c",
        "import shutil, lre; assert shutil.which('cargo') is None and shutil.which('rustc') is None, \
         'Rust on PATH'; print(lre._library.load()._name)",
    ]);
    without_rust(&mut check);
    let loaded = run_ok(&mut check, "importing the installed wheel");
    assert!(
        Path::new(loaded.trim()).starts_with(&venv),
        "the wheel should load its bundled library: {loaded}"
    );
    let mut pytest = Command::new(&fresh);
    pytest
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "pythonpath=",
        ])
        .arg(crate_root().join("bindings/python/tests/test_core.py"));
    without_rust(&mut pytest);
    run_ok(&mut pytest, "lre.core's tests against the installed wheel");
}

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
