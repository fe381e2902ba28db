//! The ledger of service variants that did not run. With no `TEST_*` variable set (a plain
//! `cargo test`) the tests that need MySQL, Redis or another service return early and libtest
//! reports them as passed; each such early return is recorded here, and the `skipped_services`
//! test binary, which cargo runs after `it` and `alone`, prints one line with the count and the
//! variables that would run them (`.ci/services` sets them all). Under CI the variables are set,
//! nothing is recorded, and a test whose service is missing fails.
//!
//! The ledger is a file in cargo's scratch directory for integration tests, appended to with one
//! short line per skip (an `O_APPEND` write of a few bytes is not interleaved); the reporter
//! reads and deletes it.

use std::io::Write as _;
use std::path::PathBuf;

/// The ledger file (shared by the `it`, `alone` and `skipped_services` binaries).
pub fn ledger() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-service-variants.txt")
}

/// Records that a variant needing `var` did not run (and says so on stderr, as before).
pub fn not_run(var: &str, what: &str) {
    eprintln!("note: {var} is not set; {what} not run (.ci/services sets it)");
    let line = format!("{var}\t{what}\n");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger())
    {
        let _ = f.write_all(line.as_bytes());
    }
}
