//! Builds the output shim: class 2 formatting consumes a va_list, so it is C.

fn main() {
    println!("cargo:rerun-if-changed=src/output.c");
    cc::Build::new()
        .file("src/output.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wno-format-nonliteral")
        .flag_if_supported("-Wno-format-security")
        .warnings(true)
        .compile("vmsrs_output");
}
