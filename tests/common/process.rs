//! Running external tools (compilers, cmake, python) from the integration tests that drive the
//! bindings. Included with `#[path = "common/process.rs"] mod process;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate root.
pub fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`; a tool that cannot be started fails the test (setup.rs installs what is missing).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`, fails the test with its output unless it succeeded, and returns its stdout.
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let output = run(cmd);
    assert!(
        output.status.success(),
        "{what} failed: {cmd:?}\n{}",
        report(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's exit status, stdout and stderr, for failure messages.
pub fn report(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An empty directory under CARGO_TARGET_TMPDIR for one test, per profile, so that concurrent
/// debug and release runs do not share it.
pub fn scratch_dir(name: &str) -> PathBuf {
    let profile = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.file_name()?.to_owned()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{profile}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot clear {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The body of the first fenced block of `lang` after the heading `section` in README.md.
pub fn readme_block(section: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(crate_root().join("README.md")).expect("README.md");
    let start = readme
        .find(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("README.md has no section \"{section}\""));
    let fence = format!("```{lang}\n");
    let body = readme[start..]
        .find(&fence)
        .unwrap_or_else(|| panic!("README.md's \"{section}\" has no ```{lang} block"))
        + start
        + fence.len();
    let end = readme[body..].find("```").expect("the block is closed") + body;
    readme[body..end].to_owned()
}

/// Runs the test `test` of this test binary again in a child process with `env` set (so that
/// what a call prints on stderr, or what the dynamic loader finds, can be checked). Fails unless
/// the child passed without printing a panic or a library-loading message on stderr; returns
/// the child's stdout.
pub fn rerun_silent(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", test, "--nocapture"])
        .envs(env.iter().copied())
        .output()
        .expect("rerunning this test binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("dynamically load"),
        "nothing may be printed on stderr:\n{stderr}"
    );
    stdout
}
