//! The committed C header is exactly what cbindgen generates from the sources.
//! Regenerate with `VMSRS_BLESS=1 cargo test --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = root.join("include/vmsrs.h");
    if std::env::var_os("VMSRS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/vmsrs.h");
        return;
    }
    let committed = std::fs::read(&path).expect("include/vmsrs.h exists");
    assert!(
        committed == generated,
        "include/vmsrs.h is stale: regenerate with `VMSRS_BLESS=1 cargo test --test header`"
    );
}
