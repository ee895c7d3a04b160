//! What the devstack tests share: strict mode, skips that show, free ports.
#![allow(dead_code)] // each test file uses a part

use std::io::Write;

/// In CI (`PRISM_ACCEPT_STRICT=1`) a missing engine or image fails instead of skipping.
pub fn strict() -> bool {
    std::env::var("PRISM_ACCEPT_STRICT").is_ok_and(|v| v == "1" || v == "true")
}

/// Prints a skip past the harness's capture, so it shows; panics in strict mode.
pub fn skip(why: &str) {
    assert!(!strict(), "strict mode: cannot run: {why}");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A free TCP port (the kernel picks; the listener is closed at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
