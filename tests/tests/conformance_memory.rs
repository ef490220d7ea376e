//! The conformance suite on the in-memory reference store.

use gesta_tests::conformance::MemoryHarness;

gesta_tests::conformance_tests!(MemoryHarness);

/// `run_all` runs every case too.
#[test]
fn run_all_cases() {
    gesta_tests::conformance::run_all(&mut MemoryHarness);
}
