//! Fuzz target `envfile`: see `fuzz/checks/config.rs` (`check_envfile`) for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/config.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_envfile(data));
