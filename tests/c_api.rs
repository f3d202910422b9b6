//! Builds tests/c/api_test.c against include/lre.h and the shared library cargo built for this
//! test run, runs it (also under valgrind), and checks that the header is also valid C++17. Needs
//! gcc; g++ and valgrind are installed by the test setup when missing (tests/common/setup.rs).

#[path = "common/c_program.rs"]
mod c_program;
mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;
use c_program::{compile, run_program};
use process::{crate_root, report};

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn c_api_program_passes() {
    run_program(&compile("api_test.c", &[], "plain"), &[], false);
}

#[test]
fn c_state_and_failed_calls_program_passes() {
    run_program(&compile("state_test.c", &[], "plain"), &[], false);
}

#[test]
fn c_lent_state_program_passes() {
    run_program(&compile("lent_test.c", &[], "plain"), &[], false);
}

#[test]
fn c_hessian_split_and_batch_program_passes() {
    run_program(&compile("hessian_test.c", &[], "plain"), &[], false);
}

#[test]
fn c_describe_program_passes() {
    run_program(&compile("describe_test.c", &[], "plain"), &[], false);
}

#[test]
fn c_threads_program_passes() {
    run_program(
        &compile("threads_test.c", &["-pthread"], "plain"),
        &[],
        false,
    );
}

#[test]
fn c_busy_handle_program_passes() {
    run_program(&compile("busy_test.c", &["-pthread"], "plain"), &[], false);
}

#[test]
fn c_programs_are_clean_under_valgrind() {
    // No leak and no invalid access, across the whole API surface the programs exercise.
    for name in [
        "api_test.c",
        "state_test.c",
        "hessian_test.c",
        "describe_test.c",
        "lent_test.c",
    ] {
        run_program(&compile(name, &[], "valgrind"), &[], true);
    }
    run_program(
        &compile("busy_test.c", &["-pthread"], "valgrind"),
        &[],
        true,
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
    let mut gxx = Command::new(setup::system_command("g++", "g++"));
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
