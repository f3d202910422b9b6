//! The Julia binding without Julia: tools/julia_checker/check_ccalls.py checks every ccall,
//! @cfunction and header constant in the Julia package, examples/julia and the README's Julia
//! example against include/lre.h and the library built for this test run, that no ccall hands C
//! a possibly non-contiguous array, and the package's Project.toml (compat entries, declared
//! modules); it must fail on the deliberately broken wrappers and package in
//! tools/julia_checker/fixtures. The checker runs in a virtual environment under target/tmp with
//! the pinned tools/julia_checker/requirements.txt (libclang, tree-sitter-julia), which the first
//! run installs; nm and gcc come with gcc.

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;

use common::library_dir;
use process::{crate_root, readme_block, report, run, run_ok, scratch_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn check(paths: &[PathBuf], library: &Path) -> Output {
    let root = crate_root();
    let python = setup::python_env("julia-checker-env", "tools/julia_checker/requirements.txt")
        .join("python");
    run(Command::new(python)
        .arg(root.join("tools/julia_checker/check_ccalls.py"))
        .arg("--header")
        .arg(root.join("include/lre.h"))
        .arg("--library")
        .arg(library)
        .args(paths))
}

/// The .jl files under `path` (or `path` itself), as the checker finds them.
fn julia_files(path: &Path) -> Vec<PathBuf> {
    files_under(path, &|f| f.extension().is_some_and(|e| e == "jl"))
}

/// The files under `path` (or `path` itself) that the checker reads: .jl files and the
/// packages' Project.toml.
fn checked_files(path: &Path) -> Vec<PathBuf> {
    files_under(path, &|f| {
        f.extension().is_some_and(|e| e == "jl") || f.ends_with("Project.toml")
    })
}

fn files_under(path: &Path, wanted: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let entry = entry.unwrap().path();
        if entry.is_dir() {
            files.extend(files_under(&entry, wanted));
        } else if wanted(&entry) {
            files.push(entry);
        }
    }
    files
}

/// How often `needle` occurs in the .jl files under `paths`.
fn occurrences(paths: &[PathBuf], needle: &str) -> usize {
    paths
        .iter()
        .flat_map(|p| julia_files(p))
        .map(|f| std::fs::read_to_string(f).unwrap().matches(needle).count())
        .sum()
}

#[test]
fn real_wrapper_passes() {
    let root = crate_root();
    let readme_example = scratch_dir("julia-readme").join("readme_example.jl");
    std::fs::write(&readme_example, readme_block("## Julia", "julia")).unwrap();
    let paths = vec![
        root.join("bindings/julia/LRE"),
        root.join("examples/julia"),
        readme_example,
    ];
    let output = check(&paths, &library_dir().join("liblre.so"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Julia wrapper does not match lre.h\n{}",
        report(&output)
    );
    // Nothing was skipped: the checker saw every ccall and @cfunction in the text, every header
    // constant the package defines, and the package's Project.toml.
    let summary = format!(
        "julia ccall check: {} ccalls, {} @cfunctions, {} constants in",
        occurrences(&paths, "ccall(") - occurrences(&paths, "@ccall("),
        occurrences(&paths, "@cfunction("),
        occurrences(&paths, "\nconst LRE_"),
    );
    assert!(
        stdout.contains(&summary) && stdout.contains(" files and 1 Project.toml; 0 problems"),
        "expected \"{summary} ... files and 1 Project.toml; 0 problems\"\n{}",
        report(&output)
    );
}

#[test]
fn broken_wrappers_fail_naming_each_problem() {
    let fixtures = crate_root().join("tools/julia_checker/fixtures");
    let output = check(
        std::slice::from_ref(&fixtures),
        &library_dir().join("liblre.so"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the checker must fail on the broken wrappers\n{}",
        report(&output)
    );
    // Each line marked "# expect: <text>" must be reported with that text, and nothing else.
    let mut expected = 0;
    for file in checked_files(&fixtures) {
        let source = std::fs::read_to_string(&file).unwrap();
        for (i, line) in source.lines().enumerate() {
            let Some((_, text)) = line.split_once("# expect: ") else {
                continue;
            };
            expected += 1;
            let at = format!("{}:{}: ", file.display(), i + 1);
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(&at) && l.contains(text)),
                "no report \"{at}...{text}...\"\n{}",
                report(&output)
            );
        }
    }
    assert!(
        stdout.contains(&format!("; {expected} problems")),
        "{expected} problems expected, no more\n{}",
        report(&output)
    );
}

/// A stale library: the header declares functions that the library does not export.
#[test]
fn symbols_missing_from_the_library_are_reported() {
    let dir = scratch_dir("julia-stale-library");
    let source = dir.join("stale.c");
    let library = dir.join("libstale.so");
    std::fs::write(&source, "unsigned lre_abi_version(void) { return 1; }\n").unwrap();
    run_ok(
        Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source),
        "compiling a stub library",
    );
    let wrapper = crate_root().join("bindings/julia/LRE/src/LRE.jl");
    let output = check(&[wrapper], &library);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", report(&output));
    assert!(
        stdout.contains("lre_optimizer_new is not exported by the library")
            && !stdout.contains("lre_abi_version is not exported"),
        "{}",
        report(&output)
    );
}
