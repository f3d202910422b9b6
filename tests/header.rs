//! include/lre.h is generated from src/ffi by cbindgen and committed. This test regenerates it
//! and fails when the committed copy is stale. `LRE_BLESS=1 cargo test --test header` rewrites it.

use std::path::Path;

#[test]
fn committed_header_matches_the_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = root.join("include/lre.h");
    if std::env::var_os("LRE_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/lre.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/lre.h is stale; regenerate it with `LRE_BLESS=1 cargo test --test header` and commit it"
    );
}

#[test]
fn header_declares_the_design_api() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/lre.h"))
            .unwrap();
    for name in [
        "lre_abi_version",
        "lre_version",
        "lre_status_string",
        "lre_last_error_message",
        "lre_optimizer_new",
        "lre_optimizer_free",
        "lre_optimizer_chain_push",
        "lre_optimizer_spec",
        "lre_optimizer_set_param",
        "lre_optimizer_get_param",
        "lre_optimizer_step_f32",
        "lre_optimizer_step_f64",
        "lre_optimizer_eigenvalues",
        "typedef struct lre_optimizer_t lre_optimizer_t",
        "#define LRE_ABI_VERSION 1",
        "LRE_OK = 0",
    ] {
        assert!(header.contains(name), "include/lre.h lacks {name}");
    }
}
