//! Builds tests/c/api_test.c against include/lre.h and the shared library cargo built for this
//! test run, runs it, and checks that the header is also valid C++17. Needs gcc and g++.

mod common;
use common::library_dir;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"))
}

fn report(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn c_program_passes() {
    let root = crate_root();
    let lib_dir = library_dir();
    let source = root.join("tests/c/api_test.c");
    // One binary per profile (target/<profile>/deps/<test>), so concurrent debug and release
    // runs do not overwrite each other's.
    let profile = std::env::current_exe()
        .ok()
        .and_then(|e| {
            Some(
                e.parent()?
                    .parent()?
                    .file_name()?
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .unwrap_or_default();
    println!("using {}", lib_dir.display());
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lre_c_api_test-{profile}"));

    let mut gcc = Command::new("gcc");
    gcc.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-llre")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lm");
    let compiled = run(&mut gcc, "gcc");
    assert!(
        compiled.status.success(),
        "compiling {} failed: {gcc:?}\n{}",
        source.display(),
        report(&compiled)
    );

    // The rpath points at the library located above; drop LD_LIBRARY_PATH (set by cargo) so
    // that nothing else is loaded in its place.
    let ran = run(
        Command::new(&exe).env_remove("LD_LIBRARY_PATH"),
        "the C test program",
    );
    let stdout = String::from_utf8_lossy(&ran.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&ran.stderr));
    assert!(
        ran.status.success(),
        "{} failed\n{}",
        exe.display(),
        report(&ran)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("C API: ") && l.ends_with(" passed, 0 failed")),
        "{} did not print its summary line\n{}",
        exe.display(),
        report(&ran)
    );
}

/// A translation unit that includes lre.h and uses a few of its declarations, compiled as C++17.
const CXX_UNIT: &str = r#"
#include "lre.h"

static_assert(sizeof(lre_status) == sizeof(int32_t), "lre_status is 32 bits");

int main() {
    lre_optimizer_t *opt = nullptr;
    lre_status s = lre_optimizer_new(nullptr, 4, &opt);
    lre_hvp_f32_fn hvp = [](void *, const float *, float *, size_t) -> int32_t { return 0; };
    float x[4] = {0, 0, 0, 0};
    const float g[4] = {1, 1, 1, 1};
    if (s == LRE_OK) {
        s = lre_optimizer_step_f32(opt, x, g, hvp, nullptr);
    }
    lre_optimizer_free(opt);
    return s == LRE_OK && lre_abi_version() == LRE_ABI_VERSION && lre_version() != nullptr ? 0 : 1;
}
"#;

#[test]
fn header_is_valid_cxx17() {
    let root = crate_root();
    let mut gxx = Command::new("g++");
    gxx.args([
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-fsyntax-only",
    ])
    .arg(format!("-I{}", root.join("include").display()))
    .args(["-x", "c++", "-"])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = gxx
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run g++ ({gxx:?}): {e}"));
    child
        .stdin
        .take()
        .expect("g++ stdin")
        .write_all(CXX_UNIT.as_bytes())
        .expect("write the C++ unit to g++");
    let output = child.wait_with_output().expect("wait for g++");
    assert!(
        output.status.success(),
        "include/lre.h does not compile as C++17: {gxx:?}\n{}\n--- unit ---\n{CXX_UNIT}",
        report(&output)
    );
}
