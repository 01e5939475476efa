//! Fuzz target `config_load`: see `fuzz/checks/config.rs` (`check_load`) for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/config.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_load(data));
