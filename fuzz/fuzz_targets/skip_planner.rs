//! Fuzz target `skip_planner`: see `fuzz/checks/planner.rs` (`check_plan`) for the properties
//! checked, including that `plan` does not allocate once warmed up.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks/planner.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check_plan(data));
