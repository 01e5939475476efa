//! Builds the output shim (class 2 formatting consumes a va_list, so it is C) and gives
//! libvmsrs.so its SONAME.

fn main() {
    println!("cargo:rerun-if-changed=src/output.c");
    cc::Build::new()
        .file("src/output.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wno-format-nonliteral")
        .flag_if_supported("-Wno-format-security")
        .warnings(true)
        .compile("vmsrs_output");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvmsrs.so.{major}");
}
