//! The shared library exports the XLA FFI handlers lre.jax registers: the CPU ones always, the
//! CUDA ones (`<name>_cuda`) exactly when it is built with the cargo feature "cuda" (lre.jax
//! registers those only where they exist). Read from the dynamic symbol table with nm.

mod common;
#[path = "common/process.rs"]
mod process;

use common::library_dir;
use process::run_ok;
use std::process::Command;

#[test]
fn the_library_exports_the_xla_handlers_of_its_build() {
    let library = library_dir().join("liblre.so");
    let table = run_ok(
        Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&library),
        "listing the library's dynamic symbols",
    );
    let exported = |symbol: &str| {
        table
            .lines()
            .any(|line| line.split_whitespace().last() == Some(symbol))
    };
    for symbol in ["lre_xla_step", "lre_xla_probes"] {
        assert!(exported(symbol), "{} lacks {symbol}", library.display());
        let cuda = format!("{symbol}_cuda");
        assert_eq!(
            exported(&cuda),
            cfg!(feature = "cuda"),
            "{cuda} exported by {} (feature \"cuda\" on: {})",
            library.display(),
            cfg!(feature = "cuda")
        );
    }
}
