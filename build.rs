//! Builds the runtime's C parts: the output shim (class 2 formatting consumes a va_list, so it
//! is C) and the throw of `throw` rescue points (an ordinary function with unwind tables).

fn main() {
    println!("cargo:rerun-if-changed=src/output.c");
    println!("cargo:rerun-if-changed=src/rescue.c");
    cc::Build::new()
        .file("src/output.c")
        .file("src/rescue.c")
        .flag("-funwind-tables")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wno-format-nonliteral")
        .flag_if_supported("-Wno-format-security")
        .warnings(true)
        .compile("vmsrs_output");
}
