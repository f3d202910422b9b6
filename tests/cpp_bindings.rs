//! The C++ binding and the C/C++ package: builds bindings/cpp/tests/*.cpp against lre.hpp and
//! the library cargo built for this test run (C++17, and C++20 under ASan/UBSan), installs the
//! package into a temporary prefix with CMake, builds examples/cpp against it with CMake and the
//! README's C++ example with pkg-config, and runs them. Needs g++, cmake, pkg-config, patchelf
//! and readelf (.ci/run installs them).

mod common;
#[path = "common/process.rs"]
mod process;

use common::library_dir;
use process::{crate_root, readme_block, report, run, run_ok, scratch_dir};
use std::path::Path;
use std::process::Command;

const WARNINGS: [&str; 4] = ["-Wall", "-Wextra", "-Werror", "-pedantic"];

/// Compiles one test program against lre.hpp and the freshly built library in the scratch
/// directory `name`, runs it there, and fails unless it exits 0 and prints
/// "<label>: N passed, 0 failed".
fn build_and_run(name: &str, source: &str, flags: &[&str], label: &str) {
    let root = crate_root();
    let lib_dir = library_dir();
    let dir = scratch_dir(name);
    let exe = dir.join("test");
    run_ok(
        Command::new("g++")
            .args(flags)
            .args(WARNINGS)
            .arg("-g")
            .arg(format!("-I{}", root.join("include").display()))
            .arg(format!("-I{}", root.join("bindings/cpp").display()))
            .arg(root.join(source))
            .arg("-o")
            .arg(&exe)
            .arg(format!("-L{}", lib_dir.display()))
            .arg("-llre")
            .arg(format!("-Wl,-rpath,{}", lib_dir.display())),
        &format!("compiling {source}"),
    );
    // The rpath names the library under test; cargo's LD_LIBRARY_PATH must not override it.
    let output = run(Command::new(&exe)
        .current_dir(&dir)
        .env_remove("LD_LIBRARY_PATH"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{source} ({flags:?}) failed\n{}",
        report(&output)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(label) && l.ends_with(" passed, 0 failed")),
        "{source} did not print \"{label}: N passed, 0 failed\"\n{}",
        report(&output)
    );
}

/// With the stricter warnings users' own builds often turn on, so the header never breaks one.
#[test]
fn hpp_passes_as_cxx17() {
    build_and_run(
        "cpp-hpp17",
        "bindings/cpp/tests/lre_hpp_test.cpp",
        &[
            "-std=c++17",
            "-Wconversion",
            "-Wsign-conversion",
            "-Wshadow",
            "-Wold-style-cast",
        ],
        "C++ API (C++17)",
    );
}

/// C++20 adds the std::span overloads; the sanitizers catch leaked handles (LeakSanitizer),
/// double frees and undefined behaviour in the binding.
#[test]
fn hpp_passes_as_cxx20_under_sanitizers() {
    build_and_run(
        "cpp-hpp20",
        "bindings/cpp/tests/lre_hpp_test.cpp",
        &[
            "-std=c++20",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer",
        ],
        "C++ API (C++20)",
    );
}

#[test]
fn hpp_refuses_a_library_of_another_abi() {
    build_and_run(
        "cpp-abi",
        "bindings/cpp/tests/abi_mismatch.cpp",
        &["-std=c++17"],
        "ABI check",
    );
}

/// `readelf -d` of a binary: its NEEDED entries and soname.
fn dynamic_section(file: &Path) -> String {
    run_ok(
        Command::new("readelf").arg("-d").arg(file),
        &format!("readelf -d {}", file.display()),
    )
}

#[test]
fn installed_package_builds_with_cmake_and_pkg_config() {
    let root = crate_root();
    let dir = scratch_dir("cpp-install");
    let prefix = dir.join("prefix");
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let soname = format!("liblre.so.{major}");

    // Install the library this test run built, as a user would install a release build.
    run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(root.join("bindings/cpp"))
            .arg("-B")
            .arg(dir.join("build"))
            .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()))
            .arg(format!(
                "-DLRE_LIBRARY={}",
                library_dir().join("liblre.so").display()
            )),
        "configuring bindings/cpp",
    );
    run_ok(
        Command::new("cmake")
            .arg("--build")
            .arg(dir.join("build"))
            .args(["--target", "install"]),
        "installing",
    );
    let real = lib.join(format!("liblre.so.{version}"));
    assert!(
        dynamic_section(&real).contains(&format!("Library soname: [{soname}]")),
        "{} has no soname {soname}",
        real.display()
    );
    for (link, target) in [
        (soname.as_str(), format!("liblre.so.{version}")),
        ("liblre.so", soname.clone()),
    ] {
        let read = std::fs::read_link(lib.join(link))
            .unwrap_or_else(|e| panic!("{link} is not a symlink: {e}"));
        assert_eq!(read, Path::new(&target), "{link} points at {target}");
    }
    for header in ["lre.h", "lre.hpp"] {
        assert!(
            prefix.join("include").join(header).is_file(),
            "{header} installed"
        );
    }

    // examples/cpp through find_package(lre CONFIG REQUIRED) and lre::lre.
    let example = dir.join("example");
    run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(root.join("examples/cpp"))
            .arg("-B")
            .arg(&example)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())),
        "configuring examples/cpp",
    );
    run_ok(
        Command::new("cmake").arg("--build").arg(&example),
        "building examples/cpp",
    );
    let exe = example.join("lre_mlp");
    assert!(
        dynamic_section(&exe).contains(&format!("Shared library: [{soname}]")),
        "the example does not link the installed {soname}"
    );
    let out = run_ok(
        Command::new(&exe).env_remove("LD_LIBRARY_PATH"),
        "running examples/cpp",
    );
    check_example_output(&out);

    // The README's C++ example, one file, with the flags pkg-config gives.
    let pkg_config = |args: &[&str]| {
        run_ok(
            Command::new("pkg-config")
                .args(args)
                .arg("lre")
                .env("PKG_CONFIG_PATH", lib.join("pkgconfig")),
            "pkg-config",
        )
        .trim()
        .to_owned()
    };
    assert_eq!(pkg_config(&["--modversion"]), version);
    let flags = pkg_config(&["--cflags", "--libs"]);
    let source = dir.join("readme_example.cpp");
    std::fs::write(&source, readme_block("## C++", "cpp")).unwrap();
    let program = dir.join("readme_example");
    run_ok(
        Command::new("g++")
            .arg("-std=c++17")
            .args(WARNINGS)
            .arg(&source)
            .args(flags.split_whitespace())
            .arg(format!("-Wl,-rpath,{}", pkg_config(&["--variable=libdir"])))
            .arg("-o")
            .arg(&program),
        "compiling the README's C++ example with pkg-config --cflags --libs lre",
    );
    assert!(
        dynamic_section(&program).contains(&format!("Shared library: [{soname}]")),
        "the README example does not link the installed {soname}"
    );
    let out = run_ok(
        Command::new(&program).env_remove("LD_LIBRARY_PATH"),
        "running the README's C++ example",
    );
    assert!(
        out.contains("loss") && out.contains("invalid spec"),
        "the README example prints the loss and a caught error:\n{out}"
    );
}

/// examples/cpp prints both loss curves and "final loss: LRE <a>, Adam <b>"; both must have
/// trained (the loss at step 0 is about 0.31), and LRE must not be worse than Adam.
fn check_example_output(out: &str) {
    let final_line = out
        .lines()
        .find_map(|l| l.strip_prefix("final loss: LRE "))
        .unwrap_or_else(|| panic!("no \"final loss\" line:\n{out}"));
    let (lre, adam) = final_line
        .split_once(", Adam ")
        .unwrap_or_else(|| panic!("malformed final line: {final_line}"));
    let lre: f64 = lre.parse().expect("LRE's final loss");
    let adam: f64 = adam.parse().expect("Adam's final loss");
    assert!(
        lre < 1e-2 && adam < 1e-2 && lre <= adam,
        "final losses LRE {lre}, Adam {adam}:\n{out}"
    );
    let curve_rows = out
        .lines()
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() == 3 && cols.iter().all(|c| c.parse::<f64>().is_ok())
        })
        .count();
    assert!(curve_rows >= 10, "both loss curves are printed:\n{out}");
    assert!(
        out.contains("HVP callback calls: 0"),
        "the HVP callback line:\n{out}"
    );
}
