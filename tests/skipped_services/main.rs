//! The last integration-test binary of the gateway (cargo runs test binaries in name order:
//! `alone`, `it`, then this one). It prints one line saying how many service variants of the
//! run did not run and which `TEST_*` variables would run them, from the ledger the others
//! wrote (`tests/it/common/skips.rs`), then empties the ledger. Prints nothing when every
//! variant ran (under `.ci/services`, which sets every variable).

use std::collections::BTreeMap;

#[path = "../it/common/skips.rs"]
#[expect(
    dead_code,
    reason = "the reporter reads the ledger; the other binaries write it"
)]
mod skips;

fn main() {
    let path = skips::ledger();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let _ = std::fs::remove_file(&path);
    let mut by_var: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        if let Some((var, _)) = line.split_once('\t') {
            *by_var.entry(var).or_default() += 1;
        }
    }
    let total: usize = by_var.values().sum();
    if total == 0 {
        return;
    }
    let vars: Vec<String> = by_var.iter().map(|(v, n)| format!("{v} ({n})")).collect();
    println!(
        "\nnote: {total} service variant{} did not run (they returned early and were reported as \
         passed); set {} to run them — `.ci/services cargo test` sets them all",
        if total == 1 { "" } else { "s" },
        vars.join(", ")
    );
}
