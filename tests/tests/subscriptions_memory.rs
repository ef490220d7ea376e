//! The subscription cases on the in-memory reference store.

gesta_tests::subscription_tests!(gesta_tests::conformance::MemoryHarness);
