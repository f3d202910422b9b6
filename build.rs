//! Gives the shared library the soname `liblre.so.<ABI version>` on ELF platforms, so that
//! programs linked against it load only a library of the same C ABI, with no patchelf step when
//! it is installed. The ABI version is read from `LRE_ABI_VERSION` in src/ffi/mod.rs, where the
//! library's `lre_abi_version()` and the header's macro also come from.

use std::path::Path;

fn main() {
    let source = Path::new("src/ffi/mod.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(source).expect("reading src/ffi/mod.rs");
    let abi: u32 = text
        .lines()
        .find_map(|line| line.strip_prefix("pub const LRE_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .and_then(|value| value.parse().ok())
        .expect("src/ffi/mod.rs defines `pub const LRE_ABI_VERSION: u32 = <number>;`");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // Mach-O and PE have no soname (macOS would use -install_name).
    if !matches!(os.as_str(), "macos" | "ios" | "windows") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblre.so.{abi}");
    }
}
