//! Gives libvmsrs.so its SONAME, and the build directory the symlink an install would; builds
//! the interposed printf family (output.c: it consumes a va_list, so it is C).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvmsrs.so.{major}");
    link_soname_in_target_dir(&major);
    println!("cargo:rerun-if-changed=output.c");
    cc::Build::new()
        .file("output.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-Wno-format-nonliteral")
        .warnings(true)
        .compile("vmsrs_interpose_output");
}

/// Programs linked with `-L target/<profile> -lvmsrs` record the SONAME `libvmsrs.so.N` and
/// look for that name at run time, so give the build directory the symlink an install would.
fn link_soname_in_target_dir(major: &str) {
    let Some(out) = std::env::var_os("OUT_DIR") else { return };
    // OUT_DIR is target/<profile>/build/<pkg>-<hash>/out.
    let Some(profile_dir) = std::path::Path::new(&out).ancestors().nth(3) else { return };
    let link = profile_dir.join(format!("libvmsrs.so.{major}"));
    if std::fs::symlink_metadata(&link).is_err() {
        let _ = std::os::unix::fs::symlink("libvmsrs.so", &link);
    }
}
