//! Fuzz target `range_spec`: see `fuzz/checks/config.rs` (`check_range_spec`) for the properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/config.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_range_spec(data));
