//! Compiling and running the C test programs of tests/c/ against the library cargo built for
//! this test run. Included with `mod common;`, `#[path = "common/process.rs"] mod process;`,
//! `#[path = "common/setup.rs"] mod setup;` and `#[path = "common/c_program.rs"] mod c_program;`.
#![allow(dead_code)]

use crate::common::{library_dir, linkable_library_dir};
use crate::process::{crate_root, report, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/c/<name>` (C99, all warnings as errors) against the freshly built library.
pub fn compile(name: &str, extra: &[&str], variant: &str) -> PathBuf {
    compile_with("gcc", name, extra, variant)
}

/// As `compile`, with another C compiler driver (`mpicc`).
pub fn compile_with(compiler: &str, name: &str, extra: &[&str], variant: &str) -> PathBuf {
    let root = crate_root();
    let lib_dir = linkable_library_dir();
    // One binary per test (`variant`) and profile: tests run concurrently, and rewriting a
    // binary another test is running fails.
    let profile = library_dir()
        .parent()
        .and_then(Path::file_name)
        .map(|p| p.to_string_lossy().into_owned());
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{variant}-{}",
        name.trim_end_matches(".c"),
        profile.unwrap_or_default()
    ));
    let mut gcc = Command::new(compiler);
    gcc.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-I{}", root.join("tests/c").display()))
        .arg(root.join("tests/c").join(name))
        .args(extra)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-llre")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lm");
    let compiled = run(&mut gcc);
    assert!(
        compiled.status.success(),
        "compiling {name} failed: {gcc:?}\n{}",
        report(&compiled)
    );
    exe
}

/// A command that runs `exe` in the target's temporary folder. The rpath points at the library
/// located above; LD_LIBRARY_PATH (set by cargo) is dropped so that nothing else is loaded in
/// its place.
pub fn program(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_LIBRARY_PATH")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    cmd
}

/// Runs a compiled test program with `args` (optionally under valgrind memcheck, with `--quick`
/// first so it takes seconds) and checks that it succeeded and printed its "N passed, 0 failed"
/// summary.
pub fn run_program(exe: &Path, args: &[&str], valgrind: bool) {
    let mut cmd = if valgrind {
        let mut v = program(Path::new(crate::setup::system_command(
            "valgrind", "valgrind",
        )));
        v.args([
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=3",
        ])
        .arg(exe)
        .arg("--quick");
        v
    } else {
        program(exe)
    };
    let ran = run(cmd.args(args));
    let stdout = String::from_utf8_lossy(&ran.stdout);
    print!("{stdout}");
    assert!(ran.status.success(), "{cmd:?} failed\n{}", report(&ran));
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 0 failed")),
        "{} did not print its summary line\n{}",
        exe.display(),
        report(&ran)
    );
}
