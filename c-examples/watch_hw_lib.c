/* The library of `watch_hw dlopen` (tests/watch_hw.rs): one global, watched by a hardware
 * watchpoint once the program loads it. */
long lib_limit = 1;
