//! MariaDB without libvmsrs (the paper's Fig. 8 on a real server): one session's faulting
//! UDF (`c-examples/servers/udf_fault.c`) kills `mariadbd`, and with it every other session.
//! The drop-in counterpart, where the server survives, is tests/mariadb_dropin.rs.
//!
//! What mariadbd does (10.11): its own handler, `handle_fatal_signal` (installed in main with
//! SA_RESETHAND|SA_NODEFER), prints "mariadbd got signal N ;" and a stack trace, then
//! restores SIG_DFL and re-raises, so the process ends killed by the same signal (no core
//! here: the harness sets RLIMIT_CORE to 0).

mod common;
mod servers;

use servers::{Mariadb, MAX_CONNECTIONS};
use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::Duration;

/// Mode 1 (NULL store) or 2 (ud2) kills mariadbd by `signal`, and the concurrent session's
/// in-flight query and every later connection fail.
fn faulting_udf_kills_mariadbd(mode: u32, signal: i32) {
    let mut m = Mariadb::start(None);
    m.create_udf();
    assert_eq!(m.query("SELECT vmsrs_fault(0)").as_deref(), Ok("0"), "a normal UDF call");
    // The UDF reaches mariadbd's own global through its dynamic symbol table.
    assert_eq!(
        m.query("SELECT vmsrs_fault(6)"),
        Ok(MAX_CONNECTIONS.to_string()),
        "max_connections as the UDF sees it"
    );

    thread::scope(|s| {
        let slow = s.spawn(|| m.query("SELECT vmsrs_fault(5, 8000)"));
        m.wait_slow_query_running();
        let fault = m.query(&format!("SELECT vmsrs_fault({mode})"));
        let e = fault.expect_err("the faulting query cannot succeed");
        assert!(e.contains("ERROR 2013"), "the faulty session loses its connection: {e}");
        let other = slow.join().expect("slow-query thread");
        let e = other.expect_err("the concurrent session's query must fail when mariadbd dies");
        assert!(e.contains("ERROR 2013"), "the concurrent session loses its connection: {e}");
    });

    let st = m.exit_status(Duration::from_secs(30)).expect("mariadbd must die");
    assert_eq!(
        (st.signal(), st.code(), st.core_dumped()),
        (Some(signal), None, false),
        "mariadbd must end killed by signal {signal} (its handler re-raises it): {st}\n{}",
        m.server.log_tail(40)
    );
    let log = m.server.log();
    assert!(
        log.contains(&format!("mariadbd got signal {signal} ;")),
        "mariadbd's own fatal-signal report:\n{log}"
    );
    assert!(
        log.contains("Query (0x") && log.contains(&format!("SELECT vmsrs_fault({mode})")),
        "names the query:\n{log}"
    );
    let e = m.query("SELECT 1").expect_err("nobody is served after the crash");
    assert!(e.contains("ERROR 2002"), "no server behind the socket: {e}");
}

#[test]
fn without_libvmsrs_a_faulting_udf_kills_mariadbd_with_sigsegv() {
    faulting_udf_kills_mariadbd(1, libc::SIGSEGV);
}

#[test]
fn without_libvmsrs_a_trapping_udf_kills_mariadbd_with_sigill() {
    faulting_udf_kills_mariadbd(2, libc::SIGILL);
}
