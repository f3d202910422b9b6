//! The test setup: what the integration tests need beyond Rust, gcc and python3 is installed on
//! first use, so that a plain `cargo test` passes on a fresh machine with nothing installed by
//! hand. Python packages (cmake and pkg-config among them: PyPI ships both as wheels, so no root
//! is needed) go into virtual environments under target/tmp, pinned by requirement files and
//! reinstalled when those change. Debian packages are installed with apt-get when the tests run
//! as root; otherwise the test fails naming the packages to install. Nothing is skipped.
//! Included with `#[path = "common/setup.rs"] mod setup;` next to `process`.
#![allow(dead_code)]

use crate::process::{crate_root, run, run_ok};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The `bin` directory of the virtual environment `target/tmp/<name>` holding the packages of
/// `requirements` (relative to the crate root). It is created once, and again whenever the
/// requirements change or its interpreter is gone; tests of one binary share it.
pub fn python_env(name: &str, requirements: &str) -> PathBuf {
    static READY: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    let ready = ready.get_or_insert_with(HashMap::new);
    if let Some(bin) = ready.get(name) {
        return bin.clone();
    }
    let env = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let bin = env.join("bin");
    let requirements = crate_root().join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let stamp = env.join("installed-requirements.txt");
    // exists() follows the interpreter's symlink: a venv whose base Python is gone is rebuilt.
    let current = bin.join("python").exists()
        && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str());
    if !current {
        // Debian's python3 lacks venv's pip bootstrap until python3-venv is installed.
        system_packages("python3 -m venv", &["python3-venv"], || {
            succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"]))
        });
        run_ok(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&env),
            &format!("creating the virtual environment {}", env.display()),
        );
        run_ok(
            Command::new(bin.join("python"))
                .args(["-m", "pip", "install", "--quiet"])
                .args(["--disable-pip-version-check", "--no-input"])
                .arg("-r")
                .arg(&requirements),
            &format!(
                "installing {} into {}",
                requirements.display(),
                env.display()
            ),
        );
        std::fs::write(&stamp, &wanted).expect("writing the stamp");
    }
    ready.insert(name.to_owned(), bin.clone());
    bin
}

/// `name`, after making sure it is on PATH (from the Debian package `package`).
pub fn system_command<'a>(name: &'a str, package: &str) -> &'a str {
    system_packages(name, &[package], || on_path(name));
    name
}

/// Makes `present()` hold by installing the Debian `packages` when it does not. Installing needs
/// root and apt-get; without them, or if it does not help, the test fails naming the packages.
pub fn system_packages(what: &str, packages: &[&str], present: impl Fn() -> bool) {
    // One apt-get at a time: tests of one binary run on several threads.
    static APT: Mutex<()> = Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|e| e.into_inner());
    if present() {
        return;
    }
    let list = packages.join(" ");
    let root = run(Command::new("id").arg("-u")).stdout == b"0\n";
    assert!(
        root && on_path("apt-get"),
        "the tests need {what}, which is missing, and can install it only as root with apt-get: \
         install the Debian package(s) {list} (`apt-get install {list}`)"
    );
    let apt = |args: &[&str]| {
        run_ok(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            &format!("apt-get {} (the tests need {what})", args.join(" ")),
        )
    };
    apt(&["update", "-qq"]);
    apt(&[
        &["install", "-y", "-qq", "--no-install-recommends"],
        packages,
    ]
    .concat());
    assert!(present(), "{what} is still missing after installing {list}");
}

/// Whether an executable `name` is in a directory of PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}
