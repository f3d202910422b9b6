//! The C++ binding and the C/C++ package: builds bindings/cpp/tests/*.cpp against lre.hpp and
//! the library cargo built for this test run (C++17, and C++20 under ASan/UBSan); installs the
//! package into a temporary prefix with CMake and builds examples/cpp against it (shared and
//! static) and the README's C++ example with pkg-config; builds examples/cpp with the repository
//! added as a subdirectory, cargo building the library; and runs them all. cmake and pkg-config
//! come from PyPI into a virtual environment under target/tmp (bindings/cpp/requirements-test.txt);
//! g++ is installed by the test setup when missing (tests/common/setup.rs).

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use common::{library_dir, linkable_library_dir};
use process::{crate_root, readme_block, report, run, run_ok, scratch_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

const WARNINGS: [&str; 4] = ["-Wall", "-Wextra", "-Werror", "-pedantic"];

/// Compiles one test program against lre.hpp and the freshly built library in the scratch
/// directory `name`, runs it there, and fails unless it exits 0 and prints
/// "<label>: N passed, 0 failed".
fn build_and_run(name: &str, source: &str, flags: &[&str], label: &str) {
    let root = crate_root();
    let lib_dir = linkable_library_dir();
    let dir = scratch_dir(name);
    let exe = dir.join("test");
    run_ok(
        Command::new(setup::system_command("g++", "g++"))
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

/// The soname the library must have: its C ABI version, as the header states it.
fn soname() -> String {
    format!("liblre.so.{}", lre::ffi::LRE_ABI_VERSION)
}

/// The virtual environment's bin directory with cmake, ninja and pkg-config.
fn cmake_tools() -> PathBuf {
    setup::python_env("cpp-tools-env", "bindings/cpp/requirements-test.txt")
}

fn cmake() -> Command {
    Command::new(cmake_tools().join("cmake"))
}

/// `cmake -S source -B build`, generating for the environment's ninja (no make needed).
fn cmake_configure(source: &Path, build: &Path) -> Command {
    let mut cmd = cmake();
    cmd.arg("-S")
        .arg(source)
        .arg("-B")
        .arg(build)
        .args(["-G", "Ninja"])
        .arg(format!(
            "-DCMAKE_MAKE_PROGRAM={}",
            cmake_tools().join("ninja").display()
        ));
    cmd
}

/// The library cargo built carries its soname itself (build.rs), so installing needs no patchelf.
#[test]
fn library_soname_is_the_abi_version() {
    let soname = soname();
    assert!(
        dynamic_section(&library_dir().join("liblre.so"))
            .contains(&format!("Library soname: [{soname}]")),
        "the built liblre.so has no soname {soname}"
    );
}

/// Configures a throwaway CMake project that gets the lre targets through `find_lre` (CMake
/// code) and prints their compile features: users' C++ code needs C++17 from lre::lre.
fn assert_targets_require_cxx17(name: &str, find_lre: &str, args: &[String]) {
    let dir = scratch_dir(name);
    std::fs::write(
        dir.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.19)\nproject(features LANGUAGES C CXX)\n{find_lre}\n\
             foreach(t lre::lre lre::lre_static)\n  get_target_property(f ${{t}} \
             INTERFACE_COMPILE_FEATURES)\n  message(STATUS \"${{t}} features: ${{f}}\")\nendforeach()\n"
        ),
    )
    .unwrap();
    let out = run_ok(
        cmake_configure(&dir, &dir.join("build")).args(args),
        &format!("configuring the {name} project"),
    );
    for target in ["lre::lre", "lre::lre_static"] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("{target} features: ")) && l.contains("cxx_std_17")),
            "{target} does not require cxx_std_17:\n{out}"
        );
    }
}

/// Configures examples/cpp in `build` with the extra arguments and environment, builds it, runs
/// it and checks its output; returns the executable and what the build printed.
fn build_and_run_example(
    build: &Path,
    args: &[String],
    env: &[(&str, &Path)],
) -> (PathBuf, String) {
    run_ok(
        cmake_configure(&crate_root().join("examples/cpp"), build)
            .args(args)
            .envs(env.iter().copied()),
        &format!("configuring examples/cpp with {args:?}"),
    );
    let printed = run_ok(cmake().arg("--build").arg(build), "building examples/cpp");
    let exe = build.join("lre_mlp");
    let out = run_ok(
        Command::new(&exe).env_remove("LD_LIBRARY_PATH"),
        &format!("running examples/cpp built with {args:?}"),
    );
    check_example_output(&out);
    (exe, printed)
}

#[test]
fn installed_package_builds_with_cmake_and_pkg_config() {
    let root = crate_root();
    let dir = scratch_dir("cpp-install");
    let prefix = dir.join("prefix");
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let soname = soname();
    let realname = format!("{soname}.{version}");

    // Install the library this test run built, as a user would install a release build.
    run_ok(
        cmake_configure(&root.join("bindings/cpp"), &dir.join("build"))
            .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()))
            .arg(format!("-DLRE_LIBRARY_DIR={}", library_dir().display())),
        "configuring bindings/cpp",
    );
    run_ok(
        cmake()
            .arg("--build")
            .arg(dir.join("build"))
            .args(["--target", "install"]),
        "installing",
    );
    assert!(
        dynamic_section(&lib.join(&realname)).contains(&format!("Library soname: [{soname}]")),
        "{realname} has no soname {soname}"
    );
    for (link, target) in [(soname.as_str(), realname.as_str()), ("liblre.so", &soname)] {
        let read = std::fs::read_link(lib.join(link))
            .unwrap_or_else(|e| panic!("{link} is not a symlink: {e}"));
        assert_eq!(read, Path::new(target), "{link} points at {target}");
    }
    assert!(lib.join("liblre.a").is_file(), "liblre.a installed");
    for header in ["lre.h", "lre.hpp"] {
        assert!(
            prefix.join("include").join(header).is_file(),
            "{header} installed"
        );
    }

    // examples/cpp through find_package(lre CONFIG REQUIRED), with lre::lre and lre::lre_static.
    let prefix_arg = format!("-DCMAKE_PREFIX_PATH={}", prefix.display());
    assert_targets_require_cxx17(
        "cpp-install-features",
        "find_package(lre CONFIG REQUIRED)",
        std::slice::from_ref(&prefix_arg),
    );
    let (shared, _) =
        build_and_run_example(&dir.join("example"), std::slice::from_ref(&prefix_arg), &[]);
    assert!(
        dynamic_section(&shared).contains(&format!("Shared library: [{soname}]")),
        "the example does not link the installed {soname}"
    );
    let (static_exe, _) = build_and_run_example(
        &dir.join("example-static"),
        &[prefix_arg, "-DLRE_EXAMPLE_STATIC=ON".to_owned()],
        &[],
    );
    assert!(
        !dynamic_section(&static_exe).contains("liblre"),
        "the static example still needs liblre"
    );

    // The README's C++ example, one file, with the flags pkg-config gives.
    let pkg_config = |args: &[&str]| {
        run_ok(
            Command::new(cmake_tools().join("pkg-config"))
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

/// A project that adds the repository with add_subdirectory (as FetchContent does) builds the
/// library with cargo as part of its own build. It runs cargo in this test run's target
/// directory and profile, where the library is already built, so cargo has nothing to redo.
#[test]
fn example_builds_with_the_repository_as_a_subdirectory() {
    let root = crate_root();
    let dir = scratch_dir("cpp-subdirectory");
    let profile_dir = library_dir()
        .ancestors()
        .find(|d| {
            d.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .expect("the library is under target/debug or target/release")
        .to_owned();
    let profile = if profile_dir.ends_with("debug") {
        "dev"
    } else {
        "release"
    };
    // This run's cargo, profile, features and dependency resolution (naming a test target
    // makes cargo resolve features with the dev-dependencies, as `cargo test` does), so that
    // cargo finds the library up to date instead of relinking it under the running tests.
    let mut cargo_flags = vec!["--test", "cpp_bindings"];
    if !cfg!(feature = "cuda") {
        cargo_flags.push("--no-default-features");
    }
    let args = [
        format!("-DLRE_SOURCE_DIR={}", root.display()),
        format!("-DCARGO={}", env!("CARGO")),
        format!("-DLRE_CARGO_PROFILE={profile}"),
        format!("-DLRE_CARGO_FLAGS={}", cargo_flags.join(";")),
    ];
    let target_dir = profile_dir.parent().expect("the target directory");
    assert_targets_require_cxx17(
        "cpp-subdirectory-features",
        &format!("add_subdirectory(\"{}/bindings/cpp\" lre)", root.display()),
        &[],
    );
    let library = library_dir().join("liblre.so");
    let modified = || {
        std::fs::metadata(&library)
            .and_then(|m| m.modified())
            .unwrap()
    };
    let before = modified();
    // CARGO_TARGET_DIR is read when the project is configured.
    let (exe, built) = build_and_run_example(
        &dir.join("example"),
        &args,
        &[("CARGO_TARGET_DIR", target_dir)],
    );
    assert!(
        built.contains("Building liblre with cargo"),
        "cargo did not run in the build:\n{built}"
    );
    assert_eq!(
        modified(),
        before,
        "cargo rebuilt the library under test:\n{built}"
    );
    assert!(
        dynamic_section(&exe).contains(&format!("Shared library: [{}]", soname())),
        "the example does not link {}",
        soname()
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
